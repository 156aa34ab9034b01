//! Sweep progress: an overall bar and one line per running trial on a terminal (indicatif), plain
//! log lines otherwise.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::results::records::{EpochLine, IterationLine, TrialState};

/// Counts shown on the overall bar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Trials of the sweep (including those done before this run).
    pub total: usize,
    /// Completed or diverged, before or during this run.
    pub done: usize,
    /// Running now.
    pub running: usize,
    /// Failed (in this run, after retries).
    pub failed: usize,
}

/// What a running trial last reported (read from its JSON-lines files).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TrialProgress {
    /// Last training step.
    pub iteration: Option<IterationLine>,
    /// Last finished epoch.
    pub epoch: Option<EpochLine>,
}

enum Mode {
    Bars {
        multi: MultiProgress,
        overall: ProgressBar,
        lines: Vec<Option<ProgressBar>>,
    },
    Plain {
        last_epoch: Vec<u32>,
    },
}

/// The progress display of a sweep.
pub struct Progress {
    mode: Mode,
    labels: Vec<String>,
    planned: Vec<u32>,
    counts: Counts,
}

impl Progress {
    /// Bars when stdout is a terminal (and `plain` is false), plain lines otherwise. `slots` is the
    /// number of device slots.
    pub fn new(slots: usize, total: usize, already_done: usize, plain: bool) -> Self {
        let counts = Counts {
            total,
            done: already_done,
            ..Counts::default()
        };
        let mode = if !plain && std::io::stdout().is_terminal() {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout_with_hz(4));
            let overall = multi.add(ProgressBar::new(total as u64));
            overall.set_style(
                ProgressStyle::with_template(
                    "{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} trials  {msg}  ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            overall.set_prefix("sweep");
            overall.set_position(already_done as u64);
            overall.enable_steady_tick(Duration::from_millis(250));
            Mode::Bars {
                multi,
                overall,
                lines: vec![None; slots],
            }
        } else {
            Mode::Plain {
                last_epoch: vec![0; slots],
            }
        };
        let mut p = Self {
            mode,
            labels: Vec::new(),
            planned: Vec::new(),
            counts,
        };
        p.refresh_counts();
        p
    }

    /// Sets the label and planned epochs of each trial (by trial index).
    pub fn set_trials(&mut self, labels: Vec<String>, planned: Vec<u32>) {
        self.labels = labels;
        self.planned = planned;
    }

    fn label(&self, job: usize) -> &str {
        self.labels.get(job).map_or("?", String::as_str)
    }

    /// Prints a line above the bars (or to stdout).
    pub fn println(&self, msg: &str) {
        match &self.mode {
            Mode::Bars { multi, .. } => {
                let _ = multi.println(msg);
            }
            Mode::Plain { .. } => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{msg}");
                let _ = out.flush();
            }
        }
    }

    fn refresh_counts(&mut self) {
        if let Mode::Bars { overall, .. } = &self.mode {
            let c = self.counts;
            overall.set_position(c.done as u64);
            overall.set_message(format!("running {}  failed {}", c.running, c.failed));
        }
    }

    /// A trial started on `slot` (its `attempt` in this run).
    pub fn started(&mut self, slot: usize, slot_name: &str, job: usize, attempt: u32) {
        self.counts.running += 1;
        let retry = if attempt > 1 {
            format!(" (retry {})", attempt - 1)
        } else {
            String::new()
        };
        let label = format!("{}{retry}", self.label(job));
        match &mut self.mode {
            Mode::Bars { multi, lines, .. } => {
                let pb = multi.add(ProgressBar::new_spinner());
                pb.set_style(
                    ProgressStyle::with_template("  {prefix:.dim} {msg}").expect("valid template"),
                );
                pb.set_prefix(slot_name.to_string());
                pb.set_message(format!("{label}  starting"));
                lines[slot] = Some(pb);
            }
            Mode::Plain { last_epoch } => {
                last_epoch[slot] = 0;
                let msg = format!("[{slot_name}] start {label}");
                self.println(&msg);
            }
        }
        self.refresh_counts();
    }

    /// The trial on `slot` reported progress.
    pub fn update(&mut self, slot: usize, job: usize, p: &TrialProgress) {
        let planned = self.planned.get(job).copied().unwrap_or(0);
        let label = self.label(job).to_string();
        let mut text = format!("{label}  ");
        match (p.iteration, p.epoch) {
            (Some(it), _) => text.push_str(&format!(
                "epoch {}/{planned} step {} loss {:.4}",
                it.epoch, it.step, it.loss
            )),
            (None, Some(e)) => text.push_str(&format!("epoch {}/{planned}", e.epoch)),
            (None, None) => text.push_str("starting"),
        }
        if let Some(e) = p.epoch {
            text.push_str(&format!(
                "  train acc {:.1}%  test acc {:.1}%",
                e.train_acc * 100.0,
                e.test_acc * 100.0
            ));
        }
        let mut plain_line = None;
        match &mut self.mode {
            Mode::Bars { lines, .. } => {
                if let Some(Some(pb)) = lines.get(slot) {
                    pb.set_message(text);
                }
            }
            Mode::Plain { last_epoch } => {
                if let Some(e) = p.epoch {
                    if e.epoch > last_epoch[slot] {
                        last_epoch[slot] = e.epoch;
                        plain_line = Some(format!(
                            "{label}  epoch {}/{planned}  train loss {:.4}  test loss {:.4}  test acc {:.2}%",
                            e.epoch,
                            e.train_loss,
                            e.test_loss,
                            e.test_acc * 100.0
                        ));
                    }
                }
            }
        }
        if let Some(msg) = plain_line {
            self.println(&msg);
        }
    }

    /// The trial on `slot` ended with `state` (`retrying` when it goes back to the queue).
    pub fn finished(
        &mut self,
        slot: usize,
        job: usize,
        state: TrialState,
        retrying: bool,
        detail: &str,
    ) {
        self.counts.running = self.counts.running.saturating_sub(1);
        if !retrying {
            match state {
                TrialState::Completed | TrialState::Diverged => self.counts.done += 1,
                TrialState::Failed => self.counts.failed += 1,
                _ => {}
            }
        }
        if let Mode::Bars { multi, lines, .. } = &mut self.mode {
            if let Some(pb) = lines[slot].take() {
                pb.finish_and_clear();
                multi.remove(&pb);
            }
        }
        let what = if retrying {
            format!("{state}, will retry")
        } else {
            state.to_string()
        };
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(": {detail}")
        };
        self.println(&format!("{} {what}{detail}", self.label(job)));
        self.refresh_counts();
    }

    /// Current counts.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Removes the bars.
    pub fn finish(&mut self) {
        if let Mode::Bars { overall, lines, .. } = &mut self.mode {
            for pb in lines.iter_mut().filter_map(Option::take) {
                pb.finish_and_clear();
            }
            overall.finish_and_clear();
        }
    }
}
