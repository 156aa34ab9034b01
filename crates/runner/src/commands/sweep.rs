//! `ablate sweep FILE`: runs (or resumes) every trial of an experiment on the device slots, then
//! rebuilds the Parquet files and writes the report.
//!
//! The results folder `OUT/<name>/` is locked for the whole sweep. Each trial runs in its own
//! child process (`ablate trial DIR`); completed and diverged trials are skipped, the others
//! (pending, failed, interrupted, or left `running` by a killed sweep) run, resuming from their
//! last checkpoint. See docs/running.md.
//!
//! With seeds by precision (`[seeds] start, max, ci_half_width`) the sweep runs in rounds
//! (`super::seed_rounds`): after each round it adds seeds to the variants whose interval is
//! still too wide, and runs those trials, until none needs more.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::cli::SweepArgs;
use crate::config::{write_trial_config, Experiment};
use crate::device::DeviceId;
use crate::exec::child::ChildCommand;
use crate::exec::exit_codes::{SWEEP_INTERRUPTED, SWEEP_OK, SWEEP_TRIALS_FAILED};
use crate::exec::lock::SweepLock;
use crate::exec::progress::Progress;
use crate::exec::run::{run_trials, RunOptions, TrialJob};
use crate::exec::scheduler::{make_slots, parse_devices};
use crate::exec::signals::StopFlag;
use crate::exec::slurm;
use crate::results::parquet;
use crate::results::records::{files, write_atomic, write_json_atomic, TrialState, TrialStatus};

use super::plan::{Plan, PlannedTrial};
use super::seed_rounds;
use super::sweep_slurm::SlurmOutcome;
use super::CommandResult;

/// File name of the lock in a sweep's results folder.
pub const LOCK_FILE: &str = "sweep.lock";
/// File name of the experiment as run.
pub const EXPERIMENT_FILE: &str = "experiment.toml";

/// `ablate sweep FILE [...]`.
pub fn run(args: SweepArgs) -> CommandResult {
    if args.dry_run {
        return super::plan::run(&args);
    }
    let mut experiment = seed_rounds::load_experiment_with_flags(&args)?;
    let devices = parse_devices(&args.devices, cfg!(feature = "cuda"))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let slots = make_slots(&devices, args.jobs_per_device as usize, cores)?;

    let dir = args.out.join(experiment.name());
    std::fs::create_dir_all(dir.join("trials"))
        .with_context(|| format!("cannot create the results folder {}", dir.display()))?;
    let _lock = SweepLock::acquire(&dir.join(LOCK_FILE))?;
    write_atomic(
        &dir.join(EXPERIMENT_FILE),
        experiment.to_toml_string()?.as_bytes(),
    )?;

    let precision = experiment.seed_plan().precision();
    if let Some(p) = &precision {
        seed_rounds::resume(&mut experiment, &dir, p)?;
    }
    let stop = StopFlag::install().context("cannot install the Ctrl-C handler")?;
    if !args.slurm {
        refuse_if_slurm_job_active(&dir)?;
        // Under Slurm the GPUs are the nodes', not this machine's.
        let cuda: Vec<usize> = devices
            .iter()
            .filter_map(|d| match d {
                DeviceId::Cuda(i) => Some(*i),
                DeviceId::Cpu => None,
            })
            .collect();
        crate::device::check_cuda_ordinals(&cuda)?;
    }
    // Trials started by this command: a later round does not run a failed one again.
    let mut attempted: HashSet<String> = HashSet::new();
    for round in 1.. {
        let plan = Plan::new(&experiment, &args.out)?;
        prepare_trial_folders(&experiment, &plan)?;
        if precision.is_some() {
            println!(
                "round {round}: {} trials ({} seeds per variant at most)",
                plan.trials.len(),
                experiment
                    .assigned()
                    .and_then(|a| a.iter().max().copied())
                    .unwrap_or(0)
            );
        }
        if args.slurm {
            match super::sweep_slurm::run(&args, &experiment, &dir, &devices, &stop, &attempted)? {
                SlurmOutcome::Ended => {}
                SlurmOutcome::Detached => return Ok(SWEEP_OK),
                SlurmOutcome::StoppedWaiting => return Ok(SWEEP_INTERRUPTED),
            }
        } else if run_locally(&plan, &experiment, &slots, &args, &stop, &attempted)? {
            return finish(&args, &experiment, &dir, true);
        }
        attempted.extend(plan.trials.iter().map(|t| t.trial.id.to_string()));
        let Some(p) = &precision else { break };
        let decided = seed_rounds::decide(&experiment, &dir, p)?;
        for line in seed_rounds::describe(&decided, p) {
            println!("  {line}");
        }
        let current = experiment
            .assigned()
            .map(<[usize]>::to_vec)
            .unwrap_or_default();
        if decided.done(&current) {
            println!("seeds by precision: no variant needs more seeds");
            break;
        }
        experiment.set_assigned(decided.next);
    }
    finish(&args, &experiment, &dir, false)
}

/// Runs the plan's unfinished trials that this command has not started yet on the local
/// slots. `true` when interrupted.
fn run_locally(
    plan: &Plan,
    experiment: &Experiment,
    slots: &[crate::exec::scheduler::Slot],
    args: &SweepArgs,
    stop: &StopFlag,
    attempted: &HashSet<String>,
) -> anyhow::Result<bool> {
    let (jobs, mut order) = jobs_to_run(plan);
    order.retain(|&i| !attempted.contains(&jobs[i].trial_id));
    let already_done = plan.trials.len() - order.len();

    println!(
        "sweep {}: {} trials, {} already done, {} to run on {} slot{} ({})",
        experiment.name(),
        plan.trials.len(),
        already_done,
        order.len(),
        slots.len(),
        if slots.len() == 1 { "" } else { "s" },
        slots
            .iter()
            .map(|s| format!("{s} x{} threads", s.threads))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let opts = RunOptions {
        child: ChildCommand::current_exe().context("cannot find the ablate executable")?,
        slots: slots.to_vec(),
        retries: args.retries,
        poll: Duration::from_millis(50),
    };
    let mut progress = Progress::new(opts.slots.len(), plan.trials.len(), already_done, false);
    progress.set_trials(
        jobs.iter().map(|j| j.label.clone()).collect(),
        jobs.iter().map(|j| j.epochs_planned).collect(),
    );
    let report = run_trials(&jobs, order, &opts, stop, &mut progress);
    progress.finish();
    let report = report?;
    if let Some(trial) = report.no_space {
        // The Parquet files are not rewritten: those of the last sweep stay as they were.
        anyhow::bail!(
            "no space left on device in {}; the sweep stopped, every trial keeps its last \
             checkpoint and records",
            trial.display()
        );
    }
    Ok(report.interrupted)
}

/// A local sweep must not run the trials of a Slurm job of this sweep that is still queued or
/// running (`ablate sweep --slurm --no-wait`): they would run twice.
fn refuse_if_slurm_job_active(dir: &Path) -> anyhow::Result<()> {
    let active = match slurm::active_jobs(&dir.join(slurm::SLURM_DIR)) {
        Ok(active) => active,
        Err(e @ slurm::SlurmError::Spawn { .. }) => {
            eprintln!(
                "warning: cannot check this sweep's Slurm jobs ({e}); if one still runs, its \
                 trials may run twice"
            );
            Vec::new()
        }
        Err(e) => return Err(e.into()),
    };
    if !active.is_empty() {
        let ids: Vec<&str> = active.iter().map(|j| j.job_id.as_str()).collect();
        anyhow::bail!(
            "Slurm job {} of this sweep is still queued or running; `ablate sweep FILE --slurm` \
             waits for it and collects, `scancel {}` stops it",
            ids.join(", "),
            ids.join(" ")
        );
    }
    Ok(())
}

/// Rebuilds the Parquet files, prints the summary, writes the report (unless interrupted or
/// `--no-report`) and returns the sweep's exit code.
fn finish(
    args: &SweepArgs,
    experiment: &Experiment,
    dir: &Path,
    interrupted: bool,
) -> CommandResult {
    let rows = parquet::rebuild(dir)
        .with_context(|| format!("cannot rebuild the Parquet files in {}", dir.display()))?;
    let final_plan = Plan::new(experiment, &args.out)?;
    print_summary(&final_plan, &rows);

    if interrupted {
        println!(
            "interrupted: run the same command again to resume ({} trials not completed)",
            final_plan.to_run()
        );
        return Ok(SWEEP_INTERRUPTED);
    }
    if !args.no_report {
        super::report::generate_for_sweep(dir);
    }
    let all_completed = final_plan
        .trials
        .iter()
        .all(|t| t.state == TrialState::Completed);
    Ok(if all_completed {
        SWEEP_OK
    } else {
        SWEEP_TRIALS_FAILED
    })
}

/// Creates each trial's folder with its `config.toml` and a pending `status.json` when missing.
/// An existing `config.toml` is kept: the trial id is a hash of the configuration, so it is the
/// same configuration.
fn prepare_trial_folders(experiment: &Experiment, plan: &Plan) -> anyhow::Result<()> {
    for t in &plan.trials {
        let d = trial_dir(&plan.dir, t);
        std::fs::create_dir_all(&d)
            .with_context(|| format!("cannot create the trial folder {}", d.display()))?;
        let config = d.join(files::CONFIG);
        if !config.exists() {
            write_trial_config(&config, experiment.name(), &t.trial)?;
        }
        let status = d.join(files::STATUS);
        if !status.exists() {
            write_json_atomic(&status, &TrialStatus::pending())?;
        }
    }
    Ok(())
}

fn trial_dir(sweep_dir: &Path, t: &PlannedTrial) -> std::path::PathBuf {
    sweep_dir.join("trials").join(t.trial.id.as_str())
}

/// The jobs of every planned trial, and the indices of those to run (not completed or
/// diverged), in plan order.
fn jobs_to_run(plan: &Plan) -> (Vec<TrialJob>, Vec<usize>) {
    let jobs = plan
        .trials
        .iter()
        .map(|t| TrialJob {
            trial_id: t.trial.id.to_string(),
            dir: trial_dir(&plan.dir, t),
            label: format!("{} {} seed={}", t.trial.id, t.trial.variant, t.trial.seed),
            epochs_planned: t.trial.config.train.epochs,
        })
        .collect();
    let order = plan
        .trials
        .iter()
        .enumerate()
        .filter(|(_, t)| !t.state.is_final())
        .map(|(i, _)| i)
        .collect();
    (jobs, order)
}

fn print_summary(plan: &Plan, rows: &parquet::RebuildSummary) {
    println!("trials: {}", plan.state_counts());
    for t in &plan.trials {
        if matches!(t.state, TrialState::Failed | TrialState::Diverged) {
            let status: Option<TrialStatus> =
                crate::results::damage::read_status(&trial_dir(&plan.dir, t).join(files::STATUS))
                    .ok()
                    .flatten();
            let first = status
                .and_then(|s| s.error)
                .and_then(|e| e.lines().next().map(str::to_string))
                .unwrap_or_default();
            println!(
                "  {} {} seed={} {}: {}",
                t.trial.id, t.trial.variant, t.trial.seed, t.state, first
            );
        }
    }
    println!(
        "wrote {}: trials {} rows, epochs {}, iterations {}, classes {}, gates {}, samples {}, feature maps {}",
        plan.dir.display(),
        rows.trials,
        rows.epochs,
        rows.iterations,
        rows.classes,
        rows.gates,
        rows.samples,
        rows.feature_maps
    );
}
