//! The command line: every subcommand and option, with the help text users see.
//!
//! `main.rs` parses [`Cli`] and hands each subcommand to `commands::*`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Override;

/// Exit codes, shown at the end of `ablate --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success (for `sweep`: every trial completed)
  1  error: bad experiment file or arguments' values, missing data, I/O, lock held
  2  usage error: unknown option, missing argument (also clap's code for bad syntax)
  3  `sweep`: it ran to the end but some trials failed or diverged
     (`trial`: the loss diverged)
  4  interrupted by Ctrl-C; run the same command again to resume";

/// Exit code of a command that worked.
pub const EXIT_OK: i32 = 0;
/// Exit code of an error (printed as `error: ...`).
pub const EXIT_ERROR: i32 = 1;
/// Exit code of a usage error (clap uses it for bad arguments).
pub const EXIT_USAGE: i32 = 2;

/// Ablation sweeps of channel-attention modules (SE, ECA, spatial, CBAM) on a small CIFAR-10 CNN.
///
/// An experiment file (TOML) names a base configuration and the keys to sweep;
/// `ablate sweep` trains every (configuration, seed) in its own process, keeps
/// each trial's records under `results/<name>/trials/<id>/`, rebuilds the
/// Parquet files from them and writes a report. See docs/experiments.md.
#[derive(Debug, Parser)]
#[command(name = "ablate", version, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run (or resume) a sweep: every trial of an experiment file.
    ///
    /// Completed trials are skipped; unfinished ones continue from their last
    /// checkpoint. Ctrl-C stops launching, lets running trials checkpoint and
    /// leaves everything resumable.
    #[command(after_help = EXIT_CODES_HELP)]
    Sweep(SweepArgs),
    /// Run one trial from its folder (the sweep starts these as child processes).
    ///
    /// DIR holds the trial's `config.toml`; the trial writes its log,
    /// checkpoints, metrics and status next to it.
    Trial(TrialArgs),
    /// Write the report (tables, charts) of a results folder.
    Report(ReportArgs),
    /// Evaluate saved weights on a dataset's test split.
    ///
    /// Prints the loss, the accuracy and the accuracy of each class. Weights are
    /// safetensors with PyTorch state_dict names (ours, or a PyTorch
    /// `state_dict` saved with `safetensors.torch.save_file`).
    Eval(EvalArgs),
    /// Inspect or convert datasets.
    #[command(subcommand)]
    Data(DataCommand),
    /// Training and inference throughput (images/s) of models on a device.
    ///
    /// Random inputs, warm-up steps, then timed steps with the device drained before the clock
    /// stops (the same measurement as PyTorch's reference script `torch_seed.py bench`).
    Bench(BenchArgs),
    /// Check the model against reference values written by PyTorch (golden files).
    ///
    /// Rebuilds each file's model, input and targets, runs one forward and backward (and, for
    /// the repo's fixtures, three Adam steps) on the device with the chosen kernels, and
    /// compares logits, loss, every gradient and the BatchNorm statistics with PyTorch's,
    /// printing the largest errors. Exit code 3 when a comparison is out of tolerance.
    Golden(GoldenArgs),
    /// List what this binary can run trials on: the CPU, and each CUDA device (name, memory)
    /// in a build with the `cuda` feature, or why none is usable.
    Devices,
    /// One task of the Slurm job array of `ablate sweep --slurm` (its batch script runs this).
    #[command(hide = true)]
    SlurmTask(SlurmTaskArgs),
}

/// `ablate sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The experiment file, e.g. `experiments/se_ablation.toml`.
    pub file: PathBuf,
    /// Where trials run: `cpu`, or CUDA devices such as `cuda:0,cuda:1` (CUDA needs a
    /// build with `--features cuda`).
    #[arg(long, value_name = "LIST", default_value = "cpu")]
    pub devices: String,
    /// Trials run at the same time on each device (CPU trials share the cores).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs_per_device: u32,
    /// Extra attempts for a trial that fails (a diverged trial is not retried).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub retries: u32,
    /// Print the plan (trial ids, variants, seeds, what is already done) and run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Override a key of the experiment file, e.g. `--set train.epochs=2 --set seeds=[0]`
    /// (repeatable; the value is TOML, a bare word is a string; a swept key given here is
    /// no longer swept).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<Override>,
    /// The results root: the sweep writes `OUT/<name>/`.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub out: PathBuf,
    /// Do not write the report at the end of the sweep.
    #[arg(long)]
    pub no_report: bool,
    /// Submit the trials to Slurm as one job array (one task per trial; `--devices cuda:...`
    /// or `--gpus-per-task` asks each task for GPUs), wait for it, then collect the results as a
    /// local sweep does. The results folder must be shared with the nodes. See docs/running.md.
    #[arg(long)]
    pub slurm: bool,
    /// With --slurm: an option for `sbatch` (repeatable), e.g. `--sbatch-arg=--partition=gpu
    /// --sbatch-arg=--time=04:00:00`.
    #[arg(
        long = "sbatch-arg",
        value_name = "ARG",
        allow_hyphen_values = true,
        requires = "slurm"
    )]
    pub sbatch_args: Vec<String>,
    /// With --slurm: CPUs per array task (the trial's threads). Default: 4, or fewer when the
    /// partition's nodes have fewer (read from `sinfo`).
    #[arg(long, value_name = "N", requires = "slurm",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub cpus_per_task: Option<u32>,
    /// With --slurm: GPUs per array task (`--gres=gpu:N`); the trial runs on the first GPU
    /// Slurm gives the task. Default: 1 when `--devices` names a CUDA device, else none.
    #[arg(long, value_name = "N", requires = "slurm")]
    pub gpus_per_task: Option<u32>,
    /// With --slurm: submit and return. Running the same command again waits for the job
    /// (it never submits a trial twice) and collects the results.
    #[arg(long, requires = "slurm")]
    pub no_wait: bool,
    /// Choose the seeds by precision: add seeds round by round to the variants whose 95%
    /// confidence interval of the difference with the baseline is wider than ± PTS points
    /// of test accuracy (as `[seeds] ci_half_width`; replaces a seed list).
    #[arg(long, value_name = "PTS")]
    pub ci_half_width: Option<f64>,
    /// Seeds by precision: seeds every variant starts with (`0..N`; default 3).
    #[arg(long, value_name = "N")]
    pub seeds_start: Option<u32>,
    /// Seeds by precision: the most seeds a variant gets (default 20).
    #[arg(long, value_name = "N")]
    pub seeds_max: Option<u32>,
}

/// `ablate slurm-task` (run by the batch script of `ablate sweep --slurm`).
#[derive(Debug, Args)]
pub struct SlurmTaskArgs {
    /// The job's trial list: one trial folder per line, line `$SLURM_ARRAY_TASK_ID` is this
    /// task's.
    pub list: PathBuf,
    /// The trial's device: `cpu` or `cuda:0`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Extra attempts for a trial that fails.
    #[arg(long, default_value_t = 0)]
    pub retries: u32,
}

/// `ablate trial`.
#[derive(Debug, Args)]
pub struct TrialArgs {
    /// The trial's folder (holding its `config.toml`).
    pub dir: PathBuf,
}

/// `ablate report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A sweep's results folder, e.g. `results/se_ablation`.
    pub dir: PathBuf,
    /// Feature-map figures for this many test images (default: the report's choice).
    #[arg(long, value_name = "N")]
    pub feature_maps: Option<usize>,
    /// How the p-values of the comparisons with the baseline are adjusted for multiple
    /// comparisons: `holm` (family-wise error rate), `bh` (Benjamini-Hochberg, false
    /// discovery rate) or `none`.
    #[arg(long, value_enum, default_value_t = AdjustArg::Holm)]
    pub adjust: AdjustArg,
    /// The level of the verdicts (better / worse / no detectable difference).
    #[arg(long, value_name = "P", default_value_t = 0.05)]
    pub alpha: f64,
    /// The difference worth detecting, in points of test accuracy: the report says how
    /// many seeds each comparison needs to detect it with 80% power.
    #[arg(long, value_name = "PTS", default_value_t = 0.5)]
    pub effect: f64,
}

/// `ablate report --adjust`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AdjustArg {
    /// Holm's step-down method.
    Holm,
    /// Benjamini-Hochberg.
    Bh,
    /// No adjustment.
    None,
}

/// `ablate eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The weights: a `.safetensors` file (e.g. `results/<name>/trials/<id>/model.safetensors`).
    #[arg(long, value_name = "FILE")]
    pub weights: PathBuf,
    /// The model: the `[model]` table's keys as `key=value` pairs, comma-separated, defaults
    /// filled in: `attention=none` is the seed CNN, `attention=se,reduction=8` SE with r=8,
    /// lists as `blocks=1+3`.
    #[arg(long, value_name = "SPEC", default_value = "attention=none")]
    pub model: String,
    /// The dataset: `synthetic`, a CIFAR-10 binary folder or `cifar-10-binary.tar.gz`, a
    /// CIFAR-100 binary folder or `cifar-100-binary.tar.gz` (fine labels), or an image folder
    /// (`train/<class>/*.png`, `test/<class>/...`) as a folder or `.tar.gz`.
    #[arg(long, value_name = "SOURCE")]
    pub data: String,
    /// Images per forward pass.
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    /// Evaluate on at most this many test images (a stratified, seeded subset).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Print one JSON object (`accuracy`, `loss`, `per_class`, ...) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write each test image's predicted class index, one per line in the split's order
    /// (to compare with another implementation image by image).
    #[arg(long, value_name = "FILE")]
    pub predictions: Option<PathBuf>,
}

/// `ablate bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The device: `cpu` or `cuda:N`.
    #[arg(long, value_name = "DEVICE", default_value = "cpu")]
    pub device: String,
    /// Images per step; a comma-separated list measures each (e.g. `64,512`).
    #[arg(long, value_name = "N,...", default_value = "64", value_delimiter = ',',
          value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: Vec<u64>,
    /// Timed steps per measurement.
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub steps: u64,
    /// Untimed steps before each measurement.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub warmup: u64,
    /// What to measure: `both` (training, then inference), `train` or `infer` (the other
    /// column then reads `-`, `null` in JSON).
    #[arg(long, value_name = "PHASE", value_enum, default_value_t = BenchPhase::Both)]
    pub phase: BenchPhase,
    /// A model to measure, as `ablate eval --model` takes it (repeatable; default: the seed CNN
    /// and SE r=16, `attention=none` and `attention=se,reduction=16`).
    #[arg(long = "model", value_name = "SPEC")]
    pub models: Vec<String>,
    /// The kernels: `fast` (our CPU kernels; the generic path off the CPU), `generic` (what a
    /// GPU runs, also on the CPU) or `reference` (plain candle ops on the CPU). Default: the
    /// `ABLATE_KERNELS` environment variable, else `fast`.
    #[arg(long, value_name = "KIND")]
    pub kernels: Option<String>,
    /// One JSON object per model and batch size, in the form of `torch_seed.py bench`.
    #[arg(long)]
    pub json: bool,
}

/// `ablate bench --phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchPhase {
    Both,
    Train,
    Infer,
}

/// `ablate golden`.
#[derive(Debug, Args)]
pub struct GoldenArgs {
    /// Golden files: the repo's fixtures (`crates/model/tests/fixtures/golden_*.safetensors`,
    /// written by `scripts/golden.py`) or `torch_seed.py golden`'s files (then `--model`).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The device: `cpu` or `cuda:N`.
    #[arg(long, value_name = "DEVICE", default_value = "cpu")]
    pub device: String,
    /// The kernels: `fast`, `generic` or `reference` (see `ablate bench --help`). Default: the
    /// `ABLATE_KERNELS` environment variable, else `fast`.
    #[arg(long, value_name = "KIND")]
    pub kernels: Option<String>,
    /// The model of files that do not name theirs (`torch_seed.py golden`'s), as `ablate eval
    /// --model` takes it.
    #[arg(long, value_name = "SPEC")]
    pub model: Option<String>,
    /// Comparisons printed per file, largest error first (all with `--all`).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub top: usize,
    /// Print every comparison.
    #[arg(long)]
    pub all: bool,
    /// One JSON object per file instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `ablate data ...`.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Counts per split and class, image size, per-channel mean and std.
    Info(DataInfoArgs),
    /// Write a dataset in another layout (e.g. the official CIFAR-10 binary files).
    Export(DataExportArgs),
}

/// `ablate data info`.
#[derive(Debug, Args)]
pub struct DataInfoArgs {
    /// `synthetic`, `cifar10`, `cifar100`, a CIFAR-10 or CIFAR-100 binary folder or archive, or
    /// an image folder (folder or `.tar.gz`).
    pub source: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `ablate data export`.
#[derive(Debug, Args)]
pub struct DataExportArgs {
    /// `synthetic`, `cifar10`, `cifar100`, a CIFAR-10 or CIFAR-100 binary folder or archive, or
    /// an image folder (folder or `.tar.gz`).
    pub source: String,
    /// The output layout.
    #[arg(long, value_enum, default_value_t = ExportFormat::CifarBin)]
    pub format: ExportFormat,
    /// The output folder.
    pub out: PathBuf,
}

/// Layouts `ablate data export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// The official CIFAR-10 binary layout: `data_batch_1..5.bin`, `test_batch.bin`,
    /// `batches.meta.txt`.
    CifarBin,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
