//! `ablate sweep --dry-run`: the plan of a sweep, each trial's model size, and what is
//! already done.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::{SweepArgs, EXIT_OK};
use crate::config::{Experiment, Trial};
use crate::results::records::TrialState;
use crate::results::scan::scan;

use super::CommandResult;

/// A trial of the plan and where it stands.
#[derive(Debug, Clone)]
pub struct PlannedTrial {
    /// The trial.
    pub trial: Trial,
    /// Its state from `status.json` (`pending` when there is none).
    pub state: TrialState,
    /// Epochs done so far.
    pub epochs_done: u32,
}

/// A sweep's plan: every trial and its state.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The results folder of the sweep (`OUT/<name>`).
    pub dir: PathBuf,
    /// The trials, in launch order.
    pub trials: Vec<PlannedTrial>,
}

impl Plan {
    /// Expands the experiment and reads `DIR/trials/<id>/status.json` of each trial.
    pub fn new(experiment: &Experiment, out: &Path) -> anyhow::Result<Plan> {
        let dir = out.join(experiment.name());
        let trials = experiment.trials();
        let ids: Vec<String> = trials.iter().map(|t| t.id.to_string()).collect();
        let entries = scan(&dir, &ids)
            .with_context(|| format!("cannot read the trial records in {}", dir.display()))?;
        let trials = trials
            .into_iter()
            .zip(entries)
            .map(|(trial, e)| PlannedTrial {
                trial,
                state: e.state(),
                epochs_done: e.status.as_ref().map_or(0, |s| s.epochs_done),
            })
            .collect();
        Ok(Plan { dir, trials })
    }

    /// How many trials are in each state.
    pub fn count(&self, state: TrialState) -> usize {
        self.trials.iter().filter(|t| t.state == state).count()
    }

    /// Trials per state, final states first, states without trials left out:
    /// `3 completed, 1 failed, 2 pending`.
    pub fn state_counts(&self) -> String {
        [
            TrialState::Completed,
            TrialState::Diverged,
            TrialState::Failed,
            TrialState::Interrupted,
            TrialState::Running,
            TrialState::Pending,
        ]
        .into_iter()
        .filter_map(|s| {
            let n = self.count(s);
            (n > 0).then(|| format!("{n} {s}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
    }

    /// How many trials a sweep would (re)run: all but completed and diverged ones.
    pub fn to_run(&self) -> usize {
        self.trials.iter().filter(|t| !t.state.is_final()).count()
    }
}

/// Trainable parameters of each variant's model (PyTorch's `sum(p.numel())`), by variant id:
/// `269,722` for the data's classes (100 or 20 for CIFAR-100), or, for an image folder whose
/// classes are known once it is read, `269,722*` counted for 10.
fn param_counts(experiment: &Experiment) -> std::collections::HashMap<String, String> {
    experiment
        .variants()
        .iter()
        .map(|v| {
            let classes = ablate_data::known_classes(&v.config.data);
            let net = ablate_model::Net::new(
                &v.config.model,
                classes.unwrap_or(10),
                &candle_core::Device::Cpu,
                0,
            );
            let text = match net {
                Ok(net) => {
                    let n = group_thousands(net.param_count());
                    if classes.is_some() {
                        n
                    } else {
                        format!("{n}*")
                    }
                }
                Err(_) => "?".to_string(),
            };
            (v.variant_id.clone(), text)
        })
        .collect()
}

/// `1234567` -> `1,234,567`.
fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Writes the plan as text: a summary, then one line per trial with its model's parameters.
pub fn write_plan(experiment: &Experiment, plan: &Plan, w: &mut dyn Write) -> std::io::Result<()> {
    write_header(experiment, plan, w)?;
    write_seeds_and_trials(experiment, plan, w)?;
    let params = param_counts(experiment);
    if params.values().any(|p| p.ends_with('*')) {
        writeln!(
            w,
            "params      * counted for 10 classes (an image folder's are known once it is read)"
        )?;
    }
    write_trials(plan, &params, w)
}

/// The experiment's name, description, file, results folder and swept keys.
fn write_header(experiment: &Experiment, plan: &Plan, w: &mut dyn Write) -> std::io::Result<()> {
    writeln!(w, "experiment  {}", experiment.name())?;
    if !experiment.description().is_empty() {
        writeln!(w, "            {}", experiment.description())?;
    }
    writeln!(w, "file        {}", experiment.path().display())?;
    writeln!(w, "results     {}", plan.dir.display())?;
    let axes = experiment.axis_keys();
    writeln!(
        w,
        "swept       {}",
        if axes.is_empty() {
            "nothing (the base configuration)".to_string()
        } else {
            axes.join(", ")
        }
    )?;
    Ok(())
}

/// The seeds (a list, or the precision rule and where it stands) and the trial counts.
fn write_seeds_and_trials(
    experiment: &Experiment,
    plan: &Plan,
    w: &mut dyn Write,
) -> std::io::Result<()> {
    let variants = experiment.variants().len();
    let seeds = experiment.seeds();
    match (experiment.seed_plan().precision(), experiment.assigned()) {
        (Some(p), Some(counts)) => {
            writeln!(
                w,
                "seeds       by precision: 0..{} to start, more (up to {} per variant) until the 95% CI of the difference with the baseline is within ±{} points",
                p.start, p.max, p.ci_half_width
            )?;
            writeln!(
                w,
                "            now: {} seeds per variant (the rounds finished so far decided it)",
                counts
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
            writeln!(
                w,
                "trials      {} ({} variant{}, seeds by precision): {}; {} to run",
                plan.trials.len(),
                variants,
                if variants == 1 { "" } else { "s" },
                plan.state_counts(),
                plan.to_run()
            )?;
        }
        _ => {
            writeln!(
                w,
                "seeds       {}",
                seeds
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
            writeln!(
                w,
                "trials      {} ({} variant{} x {} seed{}): {}; {} to run",
                plan.trials.len(),
                variants,
                if variants == 1 { "" } else { "s" },
                seeds.len(),
                if seeds.len() == 1 { "" } else { "s" },
                plan.state_counts(),
                plan.to_run()
            )?;
        }
    }
    Ok(())
}

/// One line per trial: id, seed, state, epochs done, the model's parameters, the variant.
fn write_trials(
    plan: &Plan,
    params: &std::collections::HashMap<String, String>,
    w: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(w)?;
    writeln!(
        w,
        "{:<12}  {:>6}  {:<11}  {:>6}  {:>10}  variant",
        "trial", "seed", "status", "epochs", "params"
    )?;
    for t in &plan.trials {
        writeln!(
            w,
            "{:<12}  {:>6}  {:<11}  {:>6}  {:>10}  {}",
            t.trial.id,
            t.trial.seed,
            t.state.as_str(),
            format!("{}/{}", t.epochs_done, t.trial.config.train.epochs),
            params.get(&t.trial.variant_id).map_or("?", String::as_str),
            t.trial.variant
        )?;
    }
    Ok(())
}

/// `ablate sweep FILE --dry-run`: prints the plan, runs nothing. With seeds by precision the
/// trials are those of the round a sweep would run now (the finished rounds replayed).
pub fn run(args: &SweepArgs) -> CommandResult {
    let mut experiment = super::seed_rounds::load_experiment_with_flags(args)?;
    if let Some(p) = experiment.seed_plan().precision() {
        let dir = args.out.join(experiment.name());
        super::seed_rounds::resume(&mut experiment, &dir, &p)?;
    }
    let plan = Plan::new(&experiment, &args.out)?;
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    write_plan(&experiment, &plan, &mut w)
        .and_then(|_| w.flush())
        .context("cannot write the plan to stdout")?;
    Ok(EXIT_OK)
}
