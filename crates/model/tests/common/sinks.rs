//! A metrics sink for the training tests: records everything in a [`MemorySink`] and asks the
//! trainer to stop by a [`Stop`] rule, so that a test can interrupt a run where it wants and
//! resume it.

use std::cell::Cell;

use ablate_model::train::{
    EpochRecord, FinalRecord, IterationRecord, MemorySink, MetricsSink, SinkError,
};

/// When a [`StopSink`] asks to stop.
#[derive(Clone, Copy, Debug, Default)]
pub enum Stop {
    /// Never: the run goes to its end.
    #[default]
    Never,
    /// Once this many steps were reported.
    AfterSteps(usize),
    /// At the trainer's poll after this many polls (the generic path reports steps in groups,
    /// so a stop keyed on the steps seen would come late there).
    AtPoll(usize),
}

/// Records every record; asks to stop by its rule.
#[derive(Default)]
pub struct StopSink {
    /// What was reported.
    pub mem: MemorySink,
    stop: Stop,
    polls: Cell<usize>,
}

impl StopSink {
    /// A sink that asks to stop by `stop`.
    pub fn new(stop: Stop) -> StopSink {
        StopSink {
            stop,
            ..StopSink::default()
        }
    }

    /// Stops once `n` steps were reported.
    pub fn after_steps(n: usize) -> StopSink {
        StopSink::new(Stop::AfterSteps(n))
    }
}

impl MetricsSink for StopSink {
    fn iteration(&mut self, r: &IterationRecord) -> Result<(), SinkError> {
        self.mem.iteration(r)
    }
    fn epoch(&mut self, r: &EpochRecord) -> Result<(), SinkError> {
        self.mem.epoch(r)
    }
    fn finished(&mut self, r: &FinalRecord) -> Result<(), SinkError> {
        self.mem.finished(r)
    }
    fn should_stop(&self) -> bool {
        self.polls.set(self.polls.get() + 1);
        match self.stop {
            Stop::Never => false,
            Stop::AfterSteps(n) => self.mem.iterations.len() >= n,
            Stop::AtPoll(n) => self.polls.get() > n,
        }
    }
}
