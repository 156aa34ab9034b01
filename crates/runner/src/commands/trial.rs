//! `ablate trial DIR`: trains one trial in this process. The sweep starts one child per trial;
//! it can also be run by hand to debug a trial.
//!
//! Reads `DIR/config.toml`, loads the data, builds the net and runs the trainer with
//! checkpoints in `DIR/checkpoint/` (resuming from them when present). Metrics go to
//! `DIR/iterations.jsonl` and `DIR/epochs.jsonl` ([`TrialWriter`]), the status to
//! `DIR/status.json`, the log to `DIR/log.txt`. A completed trial also writes `final.json`,
//! `model.safetensors` and `inside.json` (gates per class, sample images, feature maps).
//!
//! Exit codes: see [`crate::exec::exit_codes`]. SIGINT/SIGTERM make the trainer checkpoint and
//! stop (exit 4). Tests make a trial misbehave through [`super::test_hooks`] (only in builds with
//! the `test-hooks` feature).

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use ablate_data::{Dataset, Normalize, TrialSeeds};
use ablate_model::train::{
    class_gates, feature_maps, fit, EpochRecord, FinalRecord, IterationRecord, MetricsSink,
    SinkError, TrainOutcome,
};
use ablate_model::Net;
use anyhow::{anyhow, Context};

use crate::cli::TrialArgs;
use crate::config::{read_trial_config, ResolvedConfig, TrialFile};
use crate::device::DeviceFailure;
use crate::exec::child::DEVICE_ENV;
use crate::exec::exit_codes::{
    TRIAL_COMPLETED, TRIAL_DIVERGED, TRIAL_ERROR, TRIAL_INTERRUPTED, TRIAL_NO_SPACE,
};
use crate::exec::lock::SweepLock;
use crate::exec::signals::StopFlag;
use crate::results::damage;
use crate::results::records::{
    files, now_rfc3339, write_json_atomic, ClassLine, EpochLine, FeatureMap as MapLine, FinalJson,
    GateBlock, InsideJson, IterationLine, SampleImage, TrialState, TrialStatus,
};
use crate::results::sink::TrialWriter;

use super::test_hooks::TestHooks;
use super::CommandResult;

/// The lock file of a trial folder, held by the `ablate trial` process writing it.
pub const TRIAL_LOCK: &str = "trial.lock";

/// Channels of each block's conv output kept for the feature-map figures.
pub const FEATURE_CHANNELS: usize = 9;
/// Test images shown in the feature-map figures.
pub const SAMPLE_IMAGES: usize = 4;
/// Seed of the choice of sample images: the same images for every trial of a dataset.
pub const SAMPLE_SEED: u64 = 0x5eed_1a6e;
/// Seed of the stratified `train_limit` / `test_limit` subsets: the same images for every trial,
/// so that trials differ only in configuration and seed.
pub const SUBSET_SEED: u64 = 0;

/// `ablate trial DIR`. A write that fails for lack of disk space ends it with
/// [`TRIAL_NO_SPACE`] (the sweep then stops): the checkpoint before it stays, so the trial
/// resumes once space is freed.
pub fn run(args: TrialArgs) -> CommandResult {
    match run_trial(args) {
        Err(e) if super::out_of_space(&*e) => {
            eprintln!("error: {}", super::error_line(&*e));
            Ok(TRIAL_NO_SPACE)
        }
        other => other,
    }
}

fn run_trial(args: TrialArgs) -> CommandResult {
    let dir = args.dir;
    if !dir.join(files::CONFIG).is_file() {
        anyhow::bail!(
            "{} is not a trial folder (no {})",
            dir.display(),
            files::CONFIG
        );
    }
    // A trial killed with its sweep may still be checkpointing: wait for it.
    let _lock = SweepLock::acquire_waiting(&dir.join(TRIAL_LOCK), Duration::from_secs(300))?;
    init_logging(&dir)?;
    let stop = StopFlag::install().context("cannot install the signal handler")?;
    let device_name = std::env::var(DEVICE_ENV).unwrap_or_else(|_| "cpu".into());

    // Record the start before anything can fail, so a failure is attributed to this attempt.
    let status_path = dir.join(files::STATUS);
    let mut status: TrialStatus =
        damage::read_status(&status_path)?.unwrap_or_else(TrialStatus::pending);
    status.status = TrialState::Running;
    status.attempts += 1;
    status.pid = Some(std::process::id());
    status.device = Some(device_name.clone());
    // The human name (CPU model, GPU name) read without opening the device: known even when
    // opening it fails.
    status.device_name = crate::device::describe::device_name(&device_name);
    status.started_at.get_or_insert_with(now_rfc3339);
    status.ended_at = None;
    status.error = None;
    status.exit_code = None;
    status.signal = None;
    write_json_atomic(&status_path, &status)?;
    let mut writer = TrialWriter::new(&dir, status);

    match train(&dir, &device_name, &stop, &mut writer) {
        Ok(code) => Ok(code),
        Err(e) => {
            let text = super::error_chain(&*e);
            // Say when the device itself failed (out of memory, lost): the sweep retries the
            // trial under --retries like any failure, and the record tells why.
            let text = match DeviceFailure::classify(&text) {
                Some(f) => format!("{}: {text}", f.label()),
                None => text,
            };
            tracing::error!("trial failed: {text}");
            let _ = writer.flush();
            let code = if super::out_of_space(&*e) {
                TRIAL_NO_SPACE
            } else {
                TRIAL_ERROR
            };
            // With a full disk this write may fail too; the sweep records the exit either way.
            let ended = writer.end(TrialState::Failed, code, Some(text));
            if code != TRIAL_NO_SPACE {
                ended?;
            }
            Err(e)
        }
    }
}

fn init_logging(dir: &Path) -> anyhow::Result<()> {
    let path = dir.join(files::LOG);
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open the trial log {}", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("ABLATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Ignore a subscriber set earlier in this process (tests, embedding).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .try_init();
    Ok(())
}

/// A trial's data and the seed of each source of randomness (`train.seed_varies`; all the
/// trial's seed by default): the dataset with its `train_limit` / `test_limit` subsets and
/// the training split resampled (`data.resample`) from the sample seed. The network is then
/// initialized from `seeds.init` and trained on batches drawn from `seeds.order`
/// (`ablate_model::train::train_loader`).
pub fn trial_data(config: &ResolvedConfig, seed: u64) -> anyhow::Result<(Dataset, TrialSeeds)> {
    let seeds = config
        .train
        .seed_varies
        .seeds(seed, config.train.fixed_seed);
    let mut data = ablate_data::load(&config.data, SUBSET_SEED).context("cannot load the data")?;
    ablate_data::apply_resample(&mut data, &config.data, seeds.sample);
    Ok((data, seeds))
}

fn train(
    dir: &Path,
    device_name: &str,
    stop: &StopFlag,
    writer: &mut TrialWriter,
) -> anyhow::Result<i32> {
    let trial: TrialFile = read_trial_config(&dir.join(files::CONFIG))?;
    let hooks = TestHooks::from_env(trial.seed)?;
    let config = trial.config();
    tracing::info!(
        "trial {} ({} seed {}) on {device_name}, pid {}",
        trial.trial_id,
        trial.variant,
        trial.seed,
        std::process::id()
    );
    let dev = crate::device::open(device_name)?;
    let (data, seeds) = trial_data(&config, trial.seed)?;
    let (mut net, params, macs) = build_net(&config, &data, &dev, seeds.init, writer)?;
    hooks.before_training(&mut net)?;

    // Damaged metric records: keep the intact ones, continue from a checkpoint they cover.
    damage::repair_before_resume(dir)?;
    let checkpoint_dir = dir.join(files::CHECKPOINT);
    let mut sink = FileSink {
        writer,
        stop,
        hooks,
        finished: None,
    };
    let outcome = fit(
        &mut net,
        &data,
        &config.data,
        &config.train,
        seeds.order,
        Some(checkpoint_dir.as_path()),
        &mut sink,
    );
    let FileSink {
        writer, finished, ..
    } = sink;
    let outcome = outcome.context("training failed")?;
    match outcome {
        TrainOutcome::Completed { epochs } => {
            let fin =
                finished.ok_or_else(|| anyhow!("the trainer completed without a final record"))?;
            let model = CompletedModel {
                net: &net,
                data: &data,
                config: &config.data,
                params,
                macs,
            };
            write_completed(dir, writer, &model, &fin, epochs)?;
            Ok(TRIAL_COMPLETED)
        }
        TrainOutcome::Diverged { epoch, step } => {
            writer.flush()?;
            let msg = format!("diverged: non-finite loss at epoch {epoch}, step {step}");
            tracing::warn!("{msg}");
            writer.end(TrialState::Diverged, TRIAL_DIVERGED, Some(msg))?;
            Ok(TRIAL_DIVERGED)
        }
        TrainOutcome::Interrupted { epoch } => {
            writer.flush()?;
            tracing::info!("interrupted during epoch {epoch}; checkpoint written, resumable");
            writer.end(TrialState::Interrupted, TRIAL_INTERRUPTED, None)?;
            Ok(TRIAL_INTERRUPTED)
        }
    }
}

/// The trial's network, initialized from `init`, with its parameter and MAC counts, which go
/// into the status.
fn build_net(
    config: &ResolvedConfig,
    data: &Dataset,
    dev: &candle_core::Device,
    init: u64,
    writer: &mut TrialWriter,
) -> anyhow::Result<(Net, u64, u64)> {
    tracing::info!(
        "data {}: {} train and {} test images, {} classes",
        data.name,
        data.train.len,
        data.test.len,
        data.num_classes()
    );
    let net = Net::new(&config.model, data.num_classes(), dev, init)
        .context("cannot build the network")?;
    let (params, macs) = (net.param_count(), net.macs());
    writer.update_status(|s| {
        s.params = Some(params);
        s.macs = Some(macs);
    })?;
    Ok((net, params, macs))
}

/// What a completed trial's final files describe.
struct CompletedModel<'a> {
    net: &'a Net,
    data: &'a Dataset,
    config: &'a ablate_data::DataConfig,
    params: u64,
    macs: u64,
}

/// A completed trial's last records, `final.json`, the weights and `inside.json`, then the
/// completed state.
fn write_completed(
    dir: &Path,
    writer: &mut TrialWriter,
    model: &CompletedModel<'_>,
    fin: &FinalRecord,
    epochs: u32,
) -> anyhow::Result<()> {
    let records = writer.flush_all(epochs, fin.iterations)?.to_vec();
    let final_json = final_json(fin, &records, model.data, model.params, model.macs);
    write_json_atomic(&dir.join(files::FINAL), &final_json)?;
    model
        .net
        .save_safetensors(&dir.join(files::MODEL))
        .context("cannot save the final weights")?;
    let inside = inside(model.net, model.data, model.config)?;
    write_json_atomic(&dir.join(files::INSIDE), &inside)?;
    writer.end(TrialState::Completed, TRIAL_COMPLETED, None)?;
    tracing::info!(
        "completed {epochs} epochs: test accuracy {:.2}%",
        fin.eval.accuracy * 100.0
    );
    Ok(())
}

/// The trainer's sink: records to files (a write error fails the trial with its cause),
/// stops on a signal.
struct FileSink<'a> {
    writer: &'a mut TrialWriter,
    stop: &'a StopFlag,
    hooks: TestHooks,
    finished: Option<FinalRecord>,
}

impl MetricsSink for FileSink<'_> {
    fn iteration(&mut self, r: &IterationRecord) -> Result<(), SinkError> {
        if self.hooks.kills_at(r.iteration) {
            // Records on disk but no checkpoint for them: the hard case for a resume.
            let _ = self.writer.flush();
        }
        self.hooks.before_step(r.iteration);
        let line = IterationLine {
            epoch: r.epoch,
            step: r.step,
            iteration: r.iteration,
            loss: r.loss,
        };
        self.writer.iteration(line)?;
        Ok(())
    }

    fn epoch(&mut self, r: &EpochRecord) -> Result<(), SinkError> {
        let line = EpochLine {
            epoch: r.epoch,
            train_loss: r.train_loss,
            train_acc: r.train_acc,
            test_loss: r.test_loss,
            test_acc: r.test_acc,
            lr: r.lr,
            seconds: r.seconds,
            images_per_sec: r.images_per_sec,
        };
        self.writer.epoch(line)?;
        tracing::info!(
            "epoch {}: train loss {:.4} acc {:.2}%, test loss {:.4} acc {:.2}%, lr {:.2e}, {:.1}s",
            r.epoch,
            r.train_loss,
            r.train_acc * 100.0,
            r.test_loss,
            r.test_acc * 100.0,
            r.lr,
            r.seconds
        );
        Ok(())
    }

    fn finished(&mut self, r: &FinalRecord) -> Result<(), SinkError> {
        self.finished = Some(r.clone());
        Ok(())
    }

    fn should_stop(&self) -> bool {
        self.stop.is_raised()
    }
}

fn final_json(
    fin: &FinalRecord,
    epochs: &[EpochLine],
    data: &Dataset,
    params: u64,
    macs: u64,
) -> FinalJson {
    let classes = (0..data.num_classes())
        .map(|c| ClassLine {
            class_index: c as u32,
            class: data.classes[c].clone(),
            correct: fin.eval.class_correct(c),
            total: fin.eval.class_total(c),
            confusion: fin
                .eval
                .confusion
                .get(c)
                .cloned()
                .unwrap_or_else(|| vec![0; data.num_classes()]),
        })
        .collect();
    FinalJson {
        outcome: TrialState::Completed,
        epochs_done: epochs.len() as u32,
        final_test_acc: Some(fin.eval.accuracy),
        final_test_loss: Some(fin.eval.loss),
        best_test_acc: epochs
            .iter()
            .map(|e| e.test_acc)
            .fold(None, |b: Option<f64>, x| Some(b.map_or(x, |b| b.max(x)))),
        params,
        macs,
        classes,
        error: None,
    }
}

/// The fixed choice of sample images: `SAMPLE_IMAGES` distinct test indices drawn with
/// splitmix64 from `SAMPLE_SEED`, so every trial on the same test split shows the same images.
pub fn sample_indices(test_len: usize) -> Vec<usize> {
    let want = SAMPLE_IMAGES.min(test_len);
    let mut state = SAMPLE_SEED;
    let mut out = Vec::with_capacity(want);
    while out.len() < want {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let i = (z % test_len as u64) as usize;
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// Gate values per class (channel-attention models), the sample images and their feature maps.
fn inside(
    net: &Net,
    data: &Dataset,
    data_cfg: &ablate_data::DataConfig,
) -> anyhow::Result<InsideJson> {
    let normalize = Normalize::from_config(data_cfg);
    let stats = class_gates(net, &data.test, &normalize, data.num_classes())
        .context("cannot compute the gates per class")?;
    let mut gates: Vec<GateBlock> = Vec::new();
    for g in &stats {
        if gates.last().is_none_or(|b| b.block != g.block) {
            gates.push(GateBlock {
                block: g.block,
                mean_gate: vec![Vec::new(); data.num_classes()],
            });
        }
        let block = gates.last_mut().expect("pushed above");
        let row = &mut block.mean_gate[g.class_index as usize];
        let ch = g.channel as usize;
        if row.len() <= ch {
            row.resize(ch + 1, f32::NAN);
        }
        row[ch] = g.mean_gate as f32;
    }
    let indices = sample_indices(data.test.len);
    let maps = feature_maps(net, &data.test, &indices, &normalize, FEATURE_CHANNELS)
        .context("cannot compute the feature maps")?;
    let samples = maps
        .samples
        .iter()
        .map(|s| SampleImage {
            sample: s.sample,
            class_index: s.class_index,
            class: data
                .classes
                .get(s.class_index as usize)
                .cloned()
                .unwrap_or_default(),
            predicted: s.predicted,
            height: data.test.height as u32,
            width: data.test.width as u32,
            pixels: data.test.image(s.index).to_vec(),
        })
        .collect();
    let feature_maps = maps
        .maps
        .into_iter()
        .map(|m| MapLine {
            sample: m.sample,
            block: m.block,
            channel: m.channel,
            height: m.height,
            width: m.width,
            values: m.values,
        })
        .collect();
    Ok(InsideJson {
        gates,
        samples,
        feature_maps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_choice_is_fixed_and_distinct() {
        let a = sample_indices(10_000);
        assert_eq!(a, sample_indices(10_000));
        assert_eq!(a.len(), SAMPLE_IMAGES);
        let mut d = a.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), a.len());
        assert_eq!(sample_indices(2).len(), 2);
        assert!(sample_indices(0).is_empty());
    }
}
