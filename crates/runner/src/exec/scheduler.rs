//! Device slots and the queue that feeds them.
//!
//! Each device has `jobs_per_device` slots; a free slot takes the next pending trial. The
//! scheduler is a plain state machine (no processes, no clocks), the same for CPU and CUDA, so
//! it is tested directly; [`super::run`] drives it with child processes.

use std::collections::VecDeque;

use crate::device::DeviceId;
use crate::results::records::TrialState;

/// Errors in a `--devices` list.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    /// The list is empty.
    #[error("--devices is empty; use `cpu` or `cuda:0,cuda:1,...`")]
    Empty,
    /// An entry is not `cpu` or `cuda:N`.
    #[error(
        "unknown device `{0}` in --devices; expected `cpu` or `cuda:N` (e.g. `cuda:0,cuda:1`)"
    )]
    Unknown(String),
    /// A device is listed twice.
    #[error("device `{0}` is listed twice in --devices")]
    Duplicate(String),
    /// CUDA asked for in a binary built without it.
    #[error(
        "device `{0}` needs CUDA, but this `ablate` was built without the `cuda` feature; \
         rebuild with `cargo build --release --features cuda` or use `--devices cpu`"
    )]
    NoCuda(String),
    /// `--jobs-per-device 0`.
    #[error("--jobs-per-device must be at least 1")]
    NoSlots,
}

/// Parses a `--devices` list such as `cpu` or `cuda:0,cuda:1`. CUDA devices are accepted only
/// when `cuda_available` (the binary was built with the `cuda` feature).
pub fn parse_devices(list: &str, cuda_available: bool) -> Result<Vec<DeviceId>, DeviceError> {
    let mut out: Vec<DeviceId> = Vec::new();
    for raw in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let dev = if raw.eq_ignore_ascii_case("cpu") {
            DeviceId::Cpu
        } else if raw == "cuda" {
            DeviceId::Cuda(0)
        } else {
            DeviceId::parse(raw).map_err(|_| DeviceError::Unknown(raw.to_string()))?
        };
        if matches!(dev, DeviceId::Cuda(_)) && !cuda_available {
            return Err(DeviceError::NoCuda(raw.to_string()));
        }
        if out.contains(&dev) {
            return Err(DeviceError::Duplicate(dev.to_string()));
        }
        out.push(dev);
    }
    if out.is_empty() {
        return Err(DeviceError::Empty);
    }
    Ok(out)
}

/// One place a trial can run: a device and the CPU threads its child may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// The device.
    pub device: DeviceId,
    /// Slot number on its device (0-based).
    pub index: usize,
    /// CPU threads for the child (`RAYON_NUM_THREADS`).
    pub threads: usize,
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", self.device, self.index)
    }
}

/// Makes `jobs_per_device` slots per device. The `cores` CPU threads are divided among the
/// concurrent CPU slots (at least one each); a CUDA slot gets the same share of the cores that
/// are left, for data loading.
pub fn make_slots(
    devices: &[DeviceId],
    jobs_per_device: usize,
    cores: usize,
) -> Result<Vec<Slot>, DeviceError> {
    if jobs_per_device == 0 {
        return Err(DeviceError::NoSlots);
    }
    let total = devices.len() * jobs_per_device;
    let threads = (cores / total.max(1)).max(1);
    let mut slots = Vec::with_capacity(total);
    for &device in devices {
        for index in 0..jobs_per_device {
            slots.push(Slot {
                device,
                index,
                threads,
            });
        }
    }
    Ok(slots)
}

/// What the scheduler decided about a finished attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The trial is done for this sweep with this state.
    Done(TrialState),
    /// The trial failed and goes back to the queue (attempt `n` of this sweep failed).
    Retry(u32),
}

/// The queue of trials (by index) and the slots (by index) they run on.
#[derive(Debug, Clone)]
pub struct Scheduler {
    queue: VecDeque<usize>,
    busy: Vec<Option<usize>>,
    attempts: Vec<u32>,
    retries: u32,
    stopping: bool,
}

impl Scheduler {
    /// A scheduler over `slots` slots for the trials `jobs` (indices below `n_jobs`), in order,
    /// retrying each failed trial up to `retries` times.
    pub fn new(
        slots: usize,
        n_jobs: usize,
        jobs: impl IntoIterator<Item = usize>,
        retries: u32,
    ) -> Self {
        Self {
            queue: jobs.into_iter().collect(),
            busy: vec![None; slots],
            attempts: vec![0; n_jobs],
            retries,
            stopping: false,
        }
    }

    /// The next (slot, trial) to launch, if a slot is free, a trial waits and no stop was asked.
    pub fn next_launch(&mut self) -> Option<(usize, usize)> {
        if self.stopping {
            return None;
        }
        let slot = self.busy.iter().position(Option::is_none)?;
        let job = self.queue.pop_front()?;
        self.busy[slot] = Some(job);
        self.attempts[job] += 1;
        Some((slot, job))
    }

    /// Records the end of the attempt running on `slot`. Failed trials are queued again (at the
    /// back) while they have retries left and no stop was asked; diverged ones never are.
    pub fn finished(&mut self, slot: usize, state: TrialState) -> Decision {
        let job = self.busy[slot]
            .take()
            .expect("finished() on a slot that runs nothing");
        if state == TrialState::Failed && !self.stopping && self.attempts[job] <= self.retries {
            self.queue.push_back(job);
            return Decision::Retry(self.attempts[job]);
        }
        Decision::Done(state)
    }

    /// Stops launching; running trials finish (the driver tells them to checkpoint and exit).
    pub fn stop(&mut self) {
        self.stopping = true;
    }

    /// Whether a stop was asked.
    pub fn is_stopping(&self) -> bool {
        self.stopping
    }

    /// Nothing runs and nothing will be launched.
    pub fn is_done(&self) -> bool {
        self.busy.iter().all(Option::is_none) && (self.stopping || self.queue.is_empty())
    }

    /// The (slot, trial) pairs running now.
    pub fn running(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.busy
            .iter()
            .enumerate()
            .filter_map(|(s, j)| j.map(|j| (s, j)))
    }

    /// Trials still waiting for a slot.
    pub fn queued(&self) -> impl Iterator<Item = usize> + '_ {
        self.queue.iter().copied()
    }

    /// Attempts of trial `job` in this sweep so far.
    pub fn attempts(&self, job: usize) -> u32 {
        self.attempts[job]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices_and_refuses_cuda_without_the_feature() {
        assert_eq!(parse_devices("cpu", false).unwrap(), vec![DeviceId::Cpu]);
        assert_eq!(
            parse_devices("cuda:0, cuda:1", true).unwrap(),
            vec![DeviceId::Cuda(0), DeviceId::Cuda(1)]
        );
        assert_eq!(
            parse_devices("cuda:0", false).unwrap_err(),
            DeviceError::NoCuda("cuda:0".into())
        );
        assert!(parse_devices("cuda:0", false)
            .unwrap_err()
            .to_string()
            .contains("--features cuda"));
        assert_eq!(
            parse_devices("gpu", true).unwrap_err(),
            DeviceError::Unknown("gpu".into())
        );
        assert_eq!(parse_devices(" , ", true).unwrap_err(), DeviceError::Empty);
        assert_eq!(
            parse_devices("cpu,cpu", true).unwrap_err(),
            DeviceError::Duplicate("cpu".into())
        );
    }

    #[test]
    fn cpu_slots_divide_the_cores() {
        let s = make_slots(&[DeviceId::Cpu], 4, 16).unwrap();
        assert_eq!(s.len(), 4);
        assert!(s.iter().all(|s| s.threads == 4));
        assert_eq!(s[3].index, 3);
        let s = make_slots(&[DeviceId::Cpu], 3, 2).unwrap();
        assert!(s.iter().all(|s| s.threads == 1));
        let s = make_slots(&[DeviceId::Cuda(0), DeviceId::Cuda(1)], 2, 16).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s[2].to_string(), "cuda:1#0");
        assert_eq!(
            make_slots(&[DeviceId::Cpu], 0, 4),
            Err(DeviceError::NoSlots)
        );
    }

    #[test]
    fn free_slots_take_the_next_trial_in_order() {
        let mut s = Scheduler::new(2, 3, 0..3, 0);
        assert_eq!(s.next_launch(), Some((0, 0)));
        assert_eq!(s.next_launch(), Some((1, 1)));
        assert_eq!(s.next_launch(), None, "both slots busy");
        assert_eq!(
            s.finished(1, TrialState::Completed),
            Decision::Done(TrialState::Completed)
        );
        assert_eq!(s.next_launch(), Some((1, 2)));
        assert_eq!(
            s.finished(0, TrialState::Completed),
            Decision::Done(TrialState::Completed)
        );
        assert!(!s.is_done());
        assert_eq!(
            s.finished(1, TrialState::Completed),
            Decision::Done(TrialState::Completed)
        );
        assert!(s.is_done());
    }

    #[test]
    fn failed_trials_are_retried_but_diverged_ones_are_not() {
        let mut s = Scheduler::new(1, 2, 0..2, 1);
        assert_eq!(s.next_launch(), Some((0, 0)));
        assert_eq!(s.finished(0, TrialState::Failed), Decision::Retry(1));
        assert_eq!(s.next_launch(), Some((0, 1)), "retry goes to the back");
        assert_eq!(
            s.finished(0, TrialState::Diverged),
            Decision::Done(TrialState::Diverged)
        );
        assert_eq!(s.next_launch(), Some((0, 0)));
        assert_eq!(s.attempts(0), 2);
        assert_eq!(
            s.finished(0, TrialState::Failed),
            Decision::Done(TrialState::Failed)
        );
        assert!(s.is_done());
    }

    #[test]
    fn stop_launches_nothing_more_and_waits_for_running_ones() {
        let mut s = Scheduler::new(2, 4, 0..4, 3);
        s.next_launch();
        s.next_launch();
        s.stop();
        assert_eq!(s.next_launch(), None);
        assert!(!s.is_done());
        assert_eq!(
            s.finished(0, TrialState::Failed),
            Decision::Done(TrialState::Failed),
            "no retry while stopping"
        );
        assert_eq!(
            s.finished(1, TrialState::Interrupted),
            Decision::Done(TrialState::Interrupted)
        );
        assert!(s.is_done());
        assert_eq!(s.queued().collect::<Vec<_>>(), vec![2, 3]);
    }
}
