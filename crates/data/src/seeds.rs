//! Which sources of randomness a trial's seed drives (`train.seed_varies`), so a sweep can
//! vary one source at a time and measure how much each contributes to the seed-to-seed
//! noise (Bouthillier et al., 2021, "Accounting for Variance in Machine Learning
//! Benchmarks"). The sources:
//!
//! - `init`: the initial weights;
//! - `order`: the order of the training images, their augmentation (crops, flips, color
//!   jitter, rotations) and the dropout masks: the randomness of the training loop;
//! - `sample`: which training images are used, when `data.resample` draws a bootstrap or a
//!   subsample of the training set ([`crate::resample`]).
//!
//! The seed drives the sources `seed_varies` names; the others are drawn from
//! `train.fixed_seed`. The default, `all`, is the behaviour from before these keys existed:
//! the seed drives everything.

use serde::{Deserialize, Serialize};

/// The `train.seed_varies` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeedVaries {
    /// The seed drives every source (the default).
    #[default]
    All,
    /// Only the initial weights.
    Init,
    /// Only the data order, augmentation and dropout masks.
    Order,
    /// Only the training-data sample (`data.resample`).
    Sample,
}

impl SeedVaries {
    /// The TOML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SeedVaries::All => "all",
            SeedVaries::Init => "init",
            SeedVaries::Order => "order",
            SeedVaries::Sample => "sample",
        }
    }

    /// Whether this is the default ([`SeedVaries::All`]); it is left out of serialized
    /// configurations so trial ids made before the key existed stay the same.
    pub fn is_all(&self) -> bool {
        *self == SeedVaries::All
    }

    /// The seed of each source for a trial with seed `seed`.
    pub fn seeds(self, seed: u64, fixed_seed: u64) -> TrialSeeds {
        let pick = |source: SeedVaries| {
            if self == SeedVaries::All || self == source {
                seed
            } else {
                fixed_seed
            }
        };
        TrialSeeds {
            init: pick(SeedVaries::Init),
            order: pick(SeedVaries::Order),
            sample: pick(SeedVaries::Sample),
        }
    }
}

/// The seed of each source of randomness of one trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrialSeeds {
    /// Initial weights.
    pub init: u64,
    /// Data order, augmentation and dropout masks.
    pub order: u64,
    /// Training-data sample (`data.resample`).
    pub sample: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_the_seed_everywhere_and_one_source_varies_alone() {
        let s = SeedVaries::All.seeds(7, 0);
        assert_eq!((s.init, s.order, s.sample), (7, 7, 7));
        let s = SeedVaries::Init.seeds(7, 3);
        assert_eq!((s.init, s.order, s.sample), (7, 3, 3));
        let s = SeedVaries::Order.seeds(7, 3);
        assert_eq!((s.init, s.order, s.sample), (3, 7, 3));
        let s = SeedVaries::Sample.seeds(7, 3);
        assert_eq!((s.init, s.order, s.sample), (3, 3, 7));
    }
}
