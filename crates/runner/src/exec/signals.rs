//! Ctrl-C and SIGTERM handling, shared by the sweep and the trial child.
//!
//! The handler only counts signals; the sweep loop and the trainer poll the count. The first
//! signal asks for a clean stop (checkpoint and exit), a second one for an immediate one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Counts the stop signals received (SIGINT, SIGTERM).
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicUsize>);

impl StopFlag {
    /// A flag not connected to any signal (for tests and embedding).
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs the process-wide SIGINT/SIGTERM handler that raises this flag. Call once per
    /// process.
    pub fn install() -> Result<Self, ctrlc::Error> {
        let flag = Self::new();
        let inner = flag.0.clone();
        ctrlc::set_handler(move || {
            inner.fetch_add(1, Ordering::SeqCst);
        })?;
        Ok(flag)
    }

    /// Raises the flag as a signal would.
    pub fn raise(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    /// Signals received so far.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    /// Whether a stop was asked.
    pub fn is_raised(&self) -> bool {
        self.count() > 0
    }
}
