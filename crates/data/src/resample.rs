//! Resampling the training set (`data.resample`): the training-data sample as a source of
//! variance, the largest one in Bouthillier et al. (2021, "Accounting for Variance in Machine
//! Learning Benchmarks"). Each draw is stratified by class, so every class keeps its count
//! (bootstrap) or its share (subsample), and depends only on the sample seed
//! (`crate::seeds`).
//!
//! - `bootstrap`: as many images as the set holds, drawn with replacement within each class
//!   (about 63% of the distinct images, some several times);
//! - `subsample`: a stratified subset without replacement of `resample_fraction` of the set
//!   ([`ImageSet::stratified_indices`]).
//!
//! The test split is never resampled.

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::imageset::ImageSet;
use crate::rng::{self, Stream};

/// The `data.resample` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resample {
    /// The training set as loaded (the default).
    #[default]
    None,
    /// A class-stratified bootstrap sample of the same size.
    Bootstrap,
    /// A class-stratified subsample of `resample_fraction` of the images.
    Subsample,
}

/// `data.resample_fraction` when not given.
pub const DEFAULT_FRACTION: f64 = 0.5;

impl Resample {
    /// The TOML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Resample::None => "none",
            Resample::Bootstrap => "bootstrap",
            Resample::Subsample => "subsample",
        }
    }

    /// Whether this is the default; left out of serialized configurations so trial ids made
    /// before the key existed stay the same.
    pub fn is_none(&self) -> bool {
        *self == Resample::None
    }
}

/// The indices of `set` that make its resample, in ascending order (with repeats for a
/// bootstrap); `0..len` for [`Resample::None`].
pub fn resample_indices(
    set: &ImageSet,
    num_classes: usize,
    mode: Resample,
    fraction: f64,
    seed: u64,
) -> Vec<usize> {
    match mode {
        Resample::None => (0..set.len).collect(),
        Resample::Subsample => {
            let keep = ((set.len as f64 * fraction).round() as usize).clamp(1, set.len.max(1));
            set.stratified_indices(keep, num_classes, seed)
        }
        Resample::Bootstrap => {
            let classes = num_classes.max(
                set.labels
                    .iter()
                    .map(|&l| l as usize + 1)
                    .max()
                    .unwrap_or(0),
            );
            let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
            for (i, &l) in set.labels.iter().enumerate() {
                by_class[l as usize].push(i);
            }
            let mut out = Vec::with_capacity(set.len);
            for (c, members) in by_class.iter().enumerate() {
                let mut r = rng::rng(seed, Stream::Resample, c as u64, 0);
                let n = members.len();
                for _ in 0..n {
                    let j = rng::below(&mut r as &mut dyn RngCore, n as u32) as usize;
                    out.push(members[j]);
                }
            }
            out.sort_unstable();
            out
        }
    }
}

/// The resampled set (a copy; `set` itself when the mode is [`Resample::None`]).
pub fn resample(
    set: &ImageSet,
    num_classes: usize,
    mode: Resample,
    fraction: f64,
    seed: u64,
) -> ImageSet {
    if mode == Resample::None {
        return set.clone();
    }
    set.subset(&resample_indices(set, num_classes, mode, fraction, seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(per_class: &[usize]) -> ImageSet {
        let mut labels = Vec::new();
        for (c, &n) in per_class.iter().enumerate() {
            labels.extend(std::iter::repeat_n(c as u8, n));
        }
        let len = labels.len();
        ImageSet {
            images: (0..len * 3).map(|i| (i % 251) as u8).collect(),
            labels,
            len,
            channels: 3,
            height: 1,
            width: 1,
        }
    }

    #[test]
    fn bootstrap_keeps_class_counts_and_depends_on_the_seed() {
        let s = set(&[40, 25, 35]);
        let a = resample_indices(&s, 3, Resample::Bootstrap, 0.5, 1);
        assert_eq!(a.len(), 100);
        assert_eq!(s.subset(&a).class_counts(3), vec![40, 25, 35]);
        assert_eq!(a, resample_indices(&s, 3, Resample::Bootstrap, 0.5, 1));
        assert_ne!(a, resample_indices(&s, 3, Resample::Bootstrap, 0.5, 2));
        let mut distinct = a.clone();
        distinct.dedup();
        // About 1 - 1/e of the images are distinct.
        assert!(
            distinct.len() > 50 && distinct.len() < 75,
            "{}",
            distinct.len()
        );
    }

    #[test]
    fn subsample_keeps_shares_without_repeats() {
        let s = set(&[40, 20, 40]);
        let a = resample_indices(&s, 3, Resample::Subsample, 0.5, 4);
        assert_eq!(a.len(), 50);
        assert_eq!(s.subset(&a).class_counts(3), vec![20, 10, 20]);
        let mut d = a.clone();
        d.dedup();
        assert_eq!(d.len(), 50);
        assert_ne!(a, resample_indices(&s, 3, Resample::Subsample, 0.5, 5));
        assert_eq!(
            resample_indices(&s, 3, Resample::None, 0.5, 4),
            (0..100).collect::<Vec<_>>()
        );
    }
}
