//! Test hooks of `ablate trial`: environment variables that make a trial misbehave on purpose,
//! read only when the runner is built with the `test-hooks` cargo feature, which only the
//! runner's own tests turn on (a dev-dependency of the crate on itself). A release or plain
//! `cargo build` has none of them: [`TestHooks`] is then an empty type whose hooks never fire.
//!
//! Each value is `ARG` (every trial) or `ARG@SEEDS` (only the trials whose seed is in the
//! `+`-separated list, e.g. `3@1+2`):
//!
//! - `ABLATE_TEST_PANIC_AT_STEP=N`: panic before recording global training step `N` (0-based);
//! - `ABLATE_TEST_KILL_AT_STEP=N`: SIGKILL itself before recording step `N` (no checkpoint);
//! - `ABLATE_TEST_DIVERGE=1`: start from NaN weights, so the first loss is not finite.
//!
//! See `crates/runner/tests/README.md` for how the tests use them.

#[cfg(feature = "test-hooks")]
pub use enabled::TestHooks;

#[cfg(not(feature = "test-hooks"))]
pub use disabled::TestHooks;

#[cfg(not(feature = "test-hooks"))]
mod disabled {
    use ablate_model::Net;

    /// No hooks: this build has none.
    #[derive(Debug, Default, Clone)]
    pub struct TestHooks;

    impl TestHooks {
        /// No hooks.
        pub fn from_env(_seed: u64) -> anyhow::Result<Self> {
            Ok(Self)
        }

        /// Leaves the net alone.
        pub fn before_training(&self, _net: &mut Net) -> anyhow::Result<()> {
            Ok(())
        }

        /// Never kills.
        pub fn kills_at(&self, _iteration: u64) -> bool {
            false
        }

        /// Does nothing.
        pub fn before_step(&self, _iteration: u64) {}
    }
}

#[cfg(feature = "test-hooks")]
mod enabled {
    use ablate_model::Net;
    use anyhow::Context;

    /// The hooks read from the environment (see the module docs).
    #[derive(Debug, Default, Clone)]
    pub struct TestHooks {
        panic_at: Option<u64>,
        kill_at: Option<u64>,
        diverge: bool,
    }

    impl TestHooks {
        /// The hooks that apply to the trial of `seed`.
        pub fn from_env(seed: u64) -> anyhow::Result<Self> {
            let read = |name: &str| -> anyhow::Result<Option<u64>> {
                let Ok(v) = std::env::var(name) else {
                    return Ok(None);
                };
                parse_hook(&v, seed).with_context(|| format!("bad test hook {name}={v:?}"))
            };
            Ok(Self {
                panic_at: read("ABLATE_TEST_PANIC_AT_STEP")?,
                kill_at: read("ABLATE_TEST_KILL_AT_STEP")?,
                diverge: read("ABLATE_TEST_DIVERGE")?.is_some_and(|v| v != 0),
            })
        }

        /// `ABLATE_TEST_DIVERGE`: replaces every weight by NaN.
        pub fn before_training(&self, net: &mut Net) -> anyhow::Result<()> {
            if !self.diverge {
                return Ok(());
            }
            tracing::warn!("test hook ABLATE_TEST_DIVERGE: NaN weights");
            let mut poisoned = std::collections::HashMap::new();
            for (name, t) in net.state_dict()? {
                let nan = (t.ones_like()? * f64::NAN)?;
                poisoned.insert(name, nan);
            }
            net.load_state_dict(&poisoned)?;
            Ok(())
        }

        /// Whether the trial kills itself before recording `iteration` (its records are then
        /// flushed first: records on disk but no checkpoint for them, the hard case for a
        /// resume).
        pub fn kills_at(&self, iteration: u64) -> bool {
            self.kill_at == Some(iteration)
        }

        /// Panics or kills the process when a hook says so.
        pub fn before_step(&self, iteration: u64) {
            if self.panic_at == Some(iteration) {
                panic!("test hook ABLATE_TEST_PANIC_AT_STEP: panic at step {iteration}");
            }
            if self.kill_at == Some(iteration) {
                tracing::warn!("test hook ABLATE_TEST_KILL_AT_STEP: SIGKILL at step {iteration}");
                #[cfg(unix)]
                // SAFETY: kill(2) on our own pid.
                unsafe {
                    libc::kill(libc::getpid(), libc::SIGKILL);
                }
                std::process::abort();
            }
        }
    }

    /// `ARG` or `ARG@SEED+SEED...`: the argument if the hook applies to `seed`.
    fn parse_hook(v: &str, seed: u64) -> anyhow::Result<Option<u64>> {
        let (arg, seeds) = match v.split_once('@') {
            Some((a, s)) => (a, Some(s)),
            None => (v, None),
        };
        let arg: u64 = arg.trim().parse().context("the argument is not a number")?;
        if let Some(seeds) = seeds {
            let list: Vec<u64> = seeds
                .split('+')
                .map(|s| s.trim().parse::<u64>())
                .collect::<Result<_, _>>()
                .context("the seeds after @ are not numbers")?;
            if !list.contains(&seed) {
                return Ok(None);
            }
        }
        Ok(Some(arg))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn hooks_apply_to_the_listed_seeds_only() {
            assert_eq!(parse_hook("3", 7).unwrap(), Some(3));
            assert_eq!(parse_hook("3@1+2", 2).unwrap(), Some(3));
            assert_eq!(parse_hook("3@1+2", 0).unwrap(), None);
            assert!(parse_hook("x", 0).is_err());
            assert!(parse_hook("1@a", 0).is_err());
        }
    }
}
