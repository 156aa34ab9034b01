//! Seeded random streams. Every random decision of this crate comes from a
//! `ChaCha8Rng` keyed by (seed, purpose, a, b) (e.g. (seed, augment, epoch, image
//! index)), so results never depend on thread scheduling or on the order in
//! which images are processed. Draws use only `next_u32`/`next_u64`, which
//! ChaCha guarantees to be value-stable, so numbers do not change with `rand`
//! versions.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What a random stream is used for (part of its key, so streams never collide).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub(crate) enum Stream {
    /// Per-epoch shuffle: a = epoch.
    Shuffle = 1,
    /// Per-image augmentation: a = epoch, b = image index.
    Augment = 2,
    /// Stratified subsets: a = class.
    Subset = 3,
    /// Synthetic images: a = split, b = image index.
    Synthetic = 4,
    /// Training-set resampling (`data.resample`): a = class.
    Resample = 5,
}

/// The stream keyed by (seed, purpose, a, b).
pub(crate) fn rng(seed: u64, stream: Stream, a: u64, b: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[0..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&(stream as u64).to_le_bytes());
    key[16..24].copy_from_slice(&a.to_le_bytes());
    key[24..32].copy_from_slice(&b.to_le_bytes());
    ChaCha8Rng::from_seed(key)
}

/// Uniform integer in `[0, n)` (Lemire's method with rejection; `n > 0`).
pub(crate) fn below(r: &mut dyn RngCore, n: u32) -> u32 {
    debug_assert!(n > 0);
    let threshold = n.wrapping_neg() % n;
    loop {
        let m = (r.next_u32() as u64) * (n as u64);
        if (m as u32) >= threshold {
            return (m >> 32) as u32;
        }
    }
}

/// Uniform float in `[0, 1)` with 24 random bits.
pub(crate) fn unit(r: &mut dyn RngCore) -> f32 {
    (r.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
}

/// Uniform float in `[lo, hi)`.
pub(crate) fn uniform(r: &mut dyn RngCore, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * unit(r)
}

/// A standard normal draw (Box-Muller).
pub(crate) fn normal(r: &mut dyn RngCore) -> f32 {
    let u1 = 1.0 - unit(r); // (0, 1]
    let u2 = unit(r);
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_stable_and_distinct() {
        let a = rng(1, Stream::Augment, 2, 3).next_u64();
        assert_eq!(a, rng(1, Stream::Augment, 2, 3).next_u64());
        assert_ne!(a, rng(1, Stream::Augment, 3, 2).next_u64());
        assert_ne!(a, rng(1, Stream::Shuffle, 2, 3).next_u64());
    }

    #[test]
    fn below_is_in_range_and_covers_it() {
        let mut r = rng(0, Stream::Shuffle, 0, 0);
        let mut seen = [0usize; 9];
        for _ in 0..9000 {
            seen[below(&mut r, 9) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c > 800 && c < 1200), "{seen:?}");
        for _ in 0..1000 {
            let u = unit(&mut r);
            assert!((0.0..1.0).contains(&u));
        }
    }
}
