//! A deterministic, seedable 10-class 32x32 RGB dataset that a small CNN can
//! learn: each class is a shape or texture (stripes in three orientations,
//! checkerboard, disc, square, ring, frame, cross, triangle) at a random
//! position, size and phase, drawn in a random foreground colour on a random
//! background colour (at least 0.3 apart in luma), plus Gaussian pixel noise
//! (sigma 0.05). Colour carries no class information; shape does.
//!
//! Image `i` of a split is a function of (seed, split, i) only, so any size
//! is cheap to generate in parallel and a prefix of a larger set is the
//! smaller set. Labels cycle `0, 1, ..., 9, 0, ...`.

use rand::RngCore;
use rayon::prelude::*;

use crate::imageset::{Dataset, ImageSet};
use crate::rng::{self, Stream};

/// Class names of the synthetic dataset, in label order.
pub const CLASSES: [&str; 10] = [
    "hstripes", "vstripes", "diagonal", "checker", "disc", "square", "ring", "frame", "cross",
    "triangle",
];

/// Image side in pixels.
pub const SIZE: usize = 32;

/// The synthetic dataset with `train` and `test` images from generator `seed`.
pub fn generate(train: usize, test: usize, seed: u64) -> Dataset {
    Dataset {
        name: "synthetic".into(),
        classes: CLASSES.iter().map(|s| s.to_string()).collect(),
        train: split(train, seed, 0),
        test: split(test, seed, 1),
    }
}

fn split(n: usize, seed: u64, which: u64) -> ImageSet {
    let plane = SIZE * SIZE;
    let mut images = vec![0u8; n * 3 * plane];
    images
        .par_chunks_mut(3 * plane)
        .enumerate()
        .for_each(|(i, out)| {
            let mut r = rng::rng(seed, Stream::Synthetic, which, i as u64);
            draw((i % CLASSES.len()) as u8, &mut r, out);
        });
    ImageSet {
        images,
        labels: (0..n).map(|i| (i % CLASSES.len()) as u8).collect(),
        len: n,
        channels: 3,
        height: SIZE,
        width: SIZE,
    }
}

fn luma(c: [f32; 3]) -> f32 {
    0.2989 * c[0] + 0.587 * c[1] + 0.114 * c[2]
}

fn color(r: &mut dyn RngCore) -> [f32; 3] {
    [rng::unit(r), rng::unit(r), rng::unit(r)]
}

/// Draws one image of class `label` into `out` (`[3, 32, 32]`).
fn draw(label: u8, r: &mut dyn RngCore, out: &mut [u8]) {
    let bg = color(r);
    let mut fg = color(r);
    while (luma(fg) - luma(bg)).abs() < 0.3 {
        fg = color(r);
    }
    let cx = 16.0 + rng::uniform(r, -5.0, 5.0);
    let cy = 16.0 + rng::uniform(r, -5.0, 5.0);
    let radius = rng::uniform(r, 6.0, 11.0);
    let period = rng::uniform(r, 4.0, 8.0);
    let phase = rng::uniform(r, 0.0, period);
    let thick = rng::uniform(r, 2.0, 3.5);
    let plane = SIZE * SIZE;
    for y in 0..SIZE {
        for x in 0..SIZE {
            let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
            let (dx, dy) = (fx - cx, fy - cy);
            let stripe = |t: f32| ((t + phase) / period).rem_euclid(2.0) < 1.0;
            let on = match label {
                0 => stripe(fy),
                1 => stripe(fx),
                2 => stripe((fx + fy) * std::f32::consts::FRAC_1_SQRT_2),
                3 => stripe(fx) ^ stripe(fy),
                4 => dx * dx + dy * dy < radius * radius,
                5 => dx.abs() < radius * 0.8 && dy.abs() < radius * 0.8,
                6 => {
                    let d = (dx * dx + dy * dy).sqrt();
                    d < radius && d > radius - thick
                }
                7 => {
                    let m = dx.abs().max(dy.abs());
                    m < radius * 0.85 && m > radius * 0.85 - thick
                }
                8 => {
                    (dx.abs() < thick * 0.6 && dy.abs() < radius)
                        || (dy.abs() < thick * 0.6 && dx.abs() < radius)
                }
                _ => dy.abs() < radius * 0.8 && dx.abs() < (dy + radius * 0.8) * 0.55,
            };
            let base = if on { fg } else { bg };
            for c in 0..3 {
                let v = base[c] + 0.05 * rng::normal(r);
                out[c * plane + y * SIZE + x] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_balanced_and_prefix_stable() {
        let a = generate(50, 20, 3);
        let b = generate(50, 20, 3);
        assert_eq!(a, b);
        assert_eq!(a.train.len, 50);
        assert_eq!(a.test.len, 20);
        assert_eq!(a.train.class_counts(10), vec![5; 10]);
        assert_ne!(a.train.images, generate(50, 20, 4).train.images);
        assert_ne!(a.train.image(0), a.test.image(0));
        let small = generate(10, 1, 3);
        assert_eq!(
            small.train.images[..],
            a.train.images[..small.train.images.len()]
        );
    }

    #[test]
    fn images_have_contrast() {
        // Every image uses two colours at least 0.3 apart in luma: its luma
        // range (noise aside) is wide.
        let ds = generate(40, 0, 0);
        for i in 0..ds.train.len {
            let img = ds.train.image(i);
            let l: Vec<f32> = (0..1024)
                .map(|p| luma([img[p] as f32, img[1024 + p] as f32, img[2048 + p] as f32]) / 255.0)
                .collect();
            let mut s = l.clone();
            s.sort_by(f32::total_cmp);
            assert!(s[1000] - s[24] > 0.2, "image {i} is flat");
        }
    }
}
