//! Train-time augmentations with the semantics of torchvision's transforms
//! (torchvision 0.2x, tensor implementation, `torchvision/transforms/functional_tensor.py`
//! and `transforms.py`), plus normalization:
//!
//! - [`crop`]: `RandomCrop(size, padding=p)`: zero-pad `p` on each side, then take
//!   the window at a uniform offset in `[0, 2p]` x `[0, 2p]` (top drawn first).
//! - [`hflip`]: `RandomHorizontalFlip(p)`: flip when a uniform draw is `< p`.
//! - color jitter: `ColorJitter(brightness, contrast, saturation, hue)`: factors
//!   uniform in `[max(0, 1-b), 1+b]` (hue in `[-h, h]`), applied in a random
//!   order (a uniform permutation of the four ops, like `torch.randperm(4)`);
//!   [`adjust_brightness`], [`adjust_contrast`], [`adjust_saturation`],
//!   [`adjust_hue`] (via HSV, `_rgb2hsv`/`_hsv2rgb`).
//! - [`rotate`]: `RandomRotation(degrees)`: angle uniform in `[-d, d]`,
//!   counter-clockwise for positive angles, about the image centre, nearest
//!   neighbour (round half to even, like `grid_sample`), zero fill, same size.
//!
//! Deviation from torchvision on PIL images: the ops run on f32 pixels in [0, 1]
//! and are quantized only once, never to u8 in between (torchvision's PIL path
//! rounds to u8 after each op, and its PIL hue shift works on 8-bit HSV). The
//! random numbers come from our seeded ChaCha8 streams, not from torch's
//! generator, so the draws (not their distributions) differ from PyTorch's.

use rand::RngCore;

use crate::config::{AugmentKind, DataConfig};
use crate::rng;

/// ITU-R 601-2 luma weights used by torchvision's `rgb_to_grayscale`.
const GRAY: [f32; 3] = [0.2989, 0.587, 0.114];

/// One augmentation and its parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AugmentOp {
    /// `RandomCrop(size = image size, padding)`, zero fill.
    Crop {
        /// Zero padding on each side.
        padding: usize,
    },
    /// `RandomHorizontalFlip(p)`.
    Flip {
        /// Flip probability.
        p: f32,
    },
    /// `ColorJitter(brightness, contrast, saturation, hue)`; a zero strength skips that op.
    ColorJitter {
        /// Brightness strength, factor in `[max(0, 1-b), 1+b]`.
        brightness: f32,
        /// Contrast strength.
        contrast: f32,
        /// Saturation strength.
        saturation: f32,
        /// Hue shift range `[-hue, hue]` (fraction of a turn, at most 0.5).
        hue: f32,
    },
    /// `RandomRotation(degrees)`, nearest, zero fill.
    Rotate {
        /// Angle range in degrees.
        degrees: f32,
    },
}

/// A sequence of augmentations applied to each train image, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Augment {
    ops: Vec<AugmentOp>,
}

/// Per-channel normalization `(x - mean) / std` of pixels scaled to [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalize {
    /// Per-channel mean (RGB).
    pub mean: [f32; 3],
    /// Per-channel std (RGB).
    pub std: [f32; 3],
}

impl Normalize {
    /// `mean`/`std` of the config, or the identity when `normalize = false`.
    pub fn from_config(cfg: &DataConfig) -> Normalize {
        if cfg.normalize {
            Normalize {
                mean: cfg.mean,
                std: cfg.std,
            }
        } else {
            Normalize::identity()
        }
    }

    /// Pixels scaled to [0, 1] only (mean 0, std 1).
    pub fn identity() -> Normalize {
        Normalize {
            mean: [0.0; 3],
            std: [1.0; 3],
        }
    }

    /// Writes `(src[c] - mean[c]) / std[c]` into `dst`; both `[channels, plane]`.
    /// Channels beyond the third reuse the third's values.
    pub fn apply(&self, src: &[f32], dst: &mut [f32], plane: usize) {
        for (c, (s, d)) in src
            .chunks_exact(plane)
            .zip(dst.chunks_exact_mut(plane))
            .enumerate()
        {
            let k = c.min(2);
            let (mean, std) = (self.mean[k], self.std[k]);
            // torchvision's `Normalize`: `sub_(mean).div_(std)`, the same roundings.
            for (o, &x) in d.iter_mut().zip(s) {
                *o = (x - mean) / std;
            }
        }
    }
}

/// Reusable buffers for augmenting one image at a time.
#[derive(Debug, Default, Clone)]
pub struct Scratch {
    a: Vec<f32>,
    b: Vec<f32>,
    map: Vec<u32>,
}

impl Scratch {
    /// Both image buffers sized for `src`, the first holding it as f32 in [0, 1]; and the map.
    fn start(&mut self, src: &[u8]) -> (&mut Vec<f32>, &mut Vec<f32>, &mut Vec<u32>) {
        self.a.resize(src.len(), 0.0);
        self.b.resize(src.len(), 0.0);
        to_unit(src, &mut self.a);
        (&mut self.a, &mut self.b, &mut self.map)
    }
}

impl Augment {
    /// The augmentations of `data.augment` with their parameters; `None` when the
    /// list is empty (no op would change anything).
    pub fn from_config(cfg: &DataConfig) -> Option<Augment> {
        let ops: Vec<AugmentOp> = cfg
            .augment
            .iter()
            .map(|k| match k {
                AugmentKind::Crop => AugmentOp::Crop {
                    padding: cfg.crop_padding as usize,
                },
                AugmentKind::Flip => AugmentOp::Flip { p: cfg.flip_prob },
                AugmentKind::ColorJitter => AugmentOp::ColorJitter {
                    brightness: cfg.color_jitter[0],
                    contrast: cfg.color_jitter[1],
                    saturation: cfg.color_jitter[2],
                    hue: cfg.color_jitter[3],
                },
                AugmentKind::Rotate => AugmentOp::Rotate {
                    degrees: cfg.rotate_degrees,
                },
            })
            .collect();
        if ops.is_empty() {
            None
        } else {
            Some(Augment { ops })
        }
    }

    /// These ops, in this order.
    pub fn new(ops: Vec<AugmentOp>) -> Augment {
        Augment { ops }
    }

    /// The ops, in order.
    pub fn ops(&self) -> &[AugmentOp] {
        &self.ops
    }

    /// Augments one u8 image `[c, h, w]` and returns it as f32 in [0, 1] (a
    /// slice of `scratch`), drawing every random number from `rng`.
    pub fn apply<'s>(
        &self,
        src: &[u8],
        c: usize,
        h: usize,
        w: usize,
        rng: &mut dyn RngCore,
        scratch: &'s mut Scratch,
    ) -> &'s [f32] {
        let (mut cur, mut other, map) = scratch.start(src);
        for op in &self.ops {
            match *op {
                AugmentOp::Crop { padding } => {
                    if padding == 0 {
                        continue;
                    }
                    let top = rng::below(rng, 2 * padding as u32 + 1) as usize;
                    let left = rng::below(rng, 2 * padding as u32 + 1) as usize;
                    crop(cur, other, c, h, w, padding, top, left);
                    std::mem::swap(&mut cur, &mut other);
                }
                AugmentOp::Flip { p } => {
                    if rng::unit(rng) < p {
                        hflip(cur, c, h, w);
                    }
                }
                AugmentOp::ColorJitter {
                    brightness,
                    contrast,
                    saturation,
                    hue,
                } => {
                    let j = Jitter::draw(rng, brightness, contrast, saturation, hue);
                    if c == 3 {
                        j.apply(cur, h * w);
                    }
                }
                AugmentOp::Rotate { degrees } => {
                    let angle = rng::uniform(rng, -degrees, degrees);
                    rotate_map(h, w, angle, map);
                    gather(cur, other, c, h * w, map);
                    std::mem::swap(&mut cur, &mut other);
                }
            }
        }
        cur
    }
}

/// The crop offset and flip of one image, drawn outside [`Augment::apply`] (PyTorch's
/// streams, `crate::torch_rng`: the reference script draws them per batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropFlip {
    /// Row of the window in the padded image, in `[0, 2 * padding]`.
    pub top: usize,
    /// Column of the window in the padded image, in `[0, 2 * padding]`.
    pub left: usize,
    /// Whether the image is flipped horizontally.
    pub flip: bool,
}

impl Augment {
    /// Like [`Augment::apply`], with the crop offset and flip given. Only for crop and flip
    /// (`RandomStreams::check_data`); any other op is skipped.
    pub fn apply_drawn<'s>(
        &self,
        src: &[u8],
        (c, h, w): (usize, usize, usize),
        drawn: &CropFlip,
        scratch: &'s mut Scratch,
    ) -> &'s [f32] {
        let (mut cur, mut other, _) = scratch.start(src);
        for op in &self.ops {
            match *op {
                AugmentOp::Crop { padding } => {
                    if padding > 0 {
                        crop(cur, other, c, h, w, padding, drawn.top, drawn.left);
                        std::mem::swap(&mut cur, &mut other);
                    }
                }
                AugmentOp::Flip { .. } => {
                    if drawn.flip {
                        hflip(cur, c, h, w);
                    }
                }
                AugmentOp::ColorJitter { .. } | AugmentOp::Rotate { .. } => {
                    debug_assert!(false, "apply_drawn with {op:?}");
                }
            }
        }
        cur
    }

    /// The crop padding and flip probability, for drawing [`CropFlip`]s (no crop: padding 0;
    /// no flip: probability 0).
    pub fn crop_flip_params(&self) -> (usize, f32) {
        let mut padding = 0;
        let mut flip = 0.0;
        for op in &self.ops {
            match *op {
                AugmentOp::Crop { padding: p } => padding = p,
                AugmentOp::Flip { p } => flip = p,
                _ => {}
            }
        }
        (padding, flip)
    }
}

/// The factors and order of one color-jitter draw (torchvision's `ColorJitter.get_params`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Jitter {
    /// Order of the ops: 0 brightness, 1 contrast, 2 saturation, 3 hue.
    pub order: [u8; 4],
    /// Brightness factor, `None` when the strength is 0.
    pub brightness: Option<f32>,
    /// Contrast factor.
    pub contrast: Option<f32>,
    /// Saturation factor.
    pub saturation: Option<f32>,
    /// Hue shift.
    pub hue: Option<f32>,
}

impl Jitter {
    /// Draws the order (a uniform permutation) then the four factors.
    pub fn draw(r: &mut dyn RngCore, b: f32, c: f32, s: f32, h: f32) -> Jitter {
        let mut order = [0u8, 1, 2, 3];
        for i in (1..4).rev() {
            let j = rng::below(r, i as u32 + 1) as usize;
            order.swap(i, j);
        }
        let mut factor = |x: f32| {
            let v = rng::uniform(r, (1.0 - x).max(0.0), 1.0 + x);
            (x > 0.0).then_some(v)
        };
        let brightness = factor(b);
        let contrast = factor(c);
        let saturation = factor(s);
        let hv = rng::uniform(r, -h, h);
        Jitter {
            order,
            brightness,
            contrast,
            saturation,
            hue: (h > 0.0).then_some(hv),
        }
    }

    /// Applies the ops in `order` to an RGB image `[3, plane]` in [0, 1].
    pub fn apply(&self, img: &mut [f32], plane: usize) {
        for &op in &self.order {
            match op {
                0 => {
                    if let Some(f) = self.brightness {
                        adjust_brightness(img, f)
                    }
                }
                1 => {
                    if let Some(f) = self.contrast {
                        adjust_contrast(img, plane, f)
                    }
                }
                2 => {
                    if let Some(f) = self.saturation {
                        adjust_saturation(img, plane, f)
                    }
                }
                _ => {
                    if let Some(f) = self.hue {
                        adjust_hue(img, plane, f)
                    }
                }
            }
        }
    }
}

/// u8 -> f32 in [0, 1] (`ToTensor`: `img.float().div(255)`, the same rounding).
pub fn to_unit(src: &[u8], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f32::from(s) / 255.0;
    }
}

/// Zero-pads `[c, h, w]` by `pad` on each side and copies the `h x w` window at
/// (`top`, `left`) of the padded image into `dst`.
#[allow(clippy::too_many_arguments)]
pub fn crop(
    src: &[f32],
    dst: &mut [f32],
    c: usize,
    h: usize,
    w: usize,
    pad: usize,
    top: usize,
    left: usize,
) {
    let plane = h * w;
    for ch in 0..c {
        let s = &src[ch * plane..(ch + 1) * plane];
        let d = &mut dst[ch * plane..(ch + 1) * plane];
        for y in 0..h {
            let row = &mut d[y * w..(y + 1) * w];
            let sy = (y + top) as isize - pad as isize;
            if sy < 0 || sy >= h as isize {
                row.fill(0.0);
                continue;
            }
            let srow = &s[sy as usize * w..(sy as usize + 1) * w];
            // dst x reads src x + left - pad.
            let shift = left as isize - pad as isize;
            let x0 = (-shift).clamp(0, w as isize) as usize;
            let x1 = (w as isize - shift).clamp(0, w as isize) as usize;
            row[..x0].fill(0.0);
            row[x1..].fill(0.0);
            if x0 < x1 {
                let a = (x0 as isize + shift) as usize;
                row[x0..x1].copy_from_slice(&srow[a..a + (x1 - x0)]);
            }
        }
    }
}

/// Mirrors `[c, h, w]` left-right in place.
pub fn hflip(img: &mut [f32], c: usize, h: usize, w: usize) {
    for row in img[..c * h * w].chunks_exact_mut(w) {
        row.reverse();
    }
}

/// `adjust_brightness`: `clamp(x * f, 0, 1)`.
pub fn adjust_brightness(img: &mut [f32], f: f32) {
    for x in img {
        *x = (*x * f).clamp(0.0, 1.0);
    }
}

fn gray(img: &[f32], plane: usize, i: usize) -> f32 {
    GRAY[0] * img[i] + GRAY[1] * img[plane + i] + GRAY[2] * img[2 * plane + i]
}

/// `adjust_contrast`: blend with the mean of the grayscale image,
/// `clamp(f * x + (1 - f) * mean(gray), 0, 1)`.
pub fn adjust_contrast(img: &mut [f32], plane: usize, f: f32) {
    let mut sum = 0.0f32;
    for i in 0..plane {
        sum += gray(img, plane, i);
    }
    let m = (1.0 - f) * (sum / plane as f32);
    for x in &mut img[..3 * plane] {
        *x = (f * *x + m).clamp(0.0, 1.0);
    }
}

/// `adjust_saturation`: blend each pixel with its grayscale value,
/// `clamp(f * x + (1 - f) * gray, 0, 1)`.
pub fn adjust_saturation(img: &mut [f32], plane: usize, f: f32) {
    let (r, rest) = img.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for i in 0..plane {
        let m = (1.0 - f) * (GRAY[0] * r[i] + GRAY[1] * g[i] + GRAY[2] * b[i]);
        r[i] = (f * r[i] + m).clamp(0.0, 1.0);
        g[i] = (f * g[i] + m).clamp(0.0, 1.0);
        b[i] = (f * b[i] + m).clamp(0.0, 1.0);
    }
}

/// torchvision `_rgb2hsv` for one pixel: `(h, s, v)`, h in [0, 1).
pub fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let maxc = r.max(g).max(b);
    let minc = r.min(g).min(b);
    let eqc = maxc == minc;
    let cr = maxc - minc;
    let s = cr / if eqc { 1.0 } else { maxc };
    let d = if eqc { 1.0 } else { cr };
    let rc = (maxc - r) / d;
    let gc = (maxc - g) / d;
    let bc = (maxc - b) / d;
    let h = if maxc == r {
        bc - gc
    } else if maxc == g {
        2.0 + rc - bc
    } else {
        4.0 + gc - rc
    };
    let h = (h / 6.0 + 1.0) % 1.0;
    (h, s, maxc)
}

/// torchvision `_hsv2rgb` for one pixel.
pub fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
    let h6 = h * 6.0;
    let i = h6.floor();
    let f = h6 - i;
    let i = (i as i32).rem_euclid(6);
    let p = (v * (1.0 - s)).clamp(0.0, 1.0);
    let q = (v * (1.0 - s * f)).clamp(0.0, 1.0);
    let t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0);
    match i {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}

/// `adjust_hue`: to HSV, `h = (h + shift) mod 1`, back to RGB.
pub fn adjust_hue(img: &mut [f32], plane: usize, shift: f32) {
    let (r, rest) = img.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for i in 0..plane {
        let (h, s, v) = rgb_to_hsv(r[i], g[i], b[i]);
        let h = (h + shift).rem_euclid(1.0);
        let (nr, ng, nb) = hsv_to_rgb(h, s, v);
        r[i] = nr;
        g[i] = ng;
        b[i] = nb;
    }
}

/// Marks a pixel outside the source (zero fill) in a rotation map.
const OUTSIDE: u32 = u32::MAX;

/// The source pixel of every output pixel of a rotation by `degrees`
/// (counter-clockwise) about the centre, nearest neighbour, as torchvision's
/// `rotate` computes it: for output pixel centre `(x + 0.5 - w/2, y + 0.5 - h/2)`
/// the source is `(cos a * x' - sin a * y' + w/2 - 0.5, sin a * x' + cos a * y' + h/2 - 0.5)`,
/// rounded half to even; `OUTSIDE` (zero fill) when it falls off the image.
pub fn rotate_map(h: usize, w: usize, degrees: f32, map: &mut Vec<u32>) {
    map.clear();
    map.reserve(h * w);
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (cx, cy) = (w as f32 * 0.5, h as f32 * 0.5);
    for y in 0..h {
        let yg = y as f32 + 0.5 - cy;
        for x in 0..w {
            let xg = x as f32 + 0.5 - cx;
            let sx = (cos * xg - sin * yg + cx - 0.5).round_ties_even();
            let sy = (sin * xg + cos * yg + cy - 0.5).round_ties_even();
            if sx >= 0.0 && sx < w as f32 && sy >= 0.0 && sy < h as f32 {
                map.push(sy as u32 * w as u32 + sx as u32);
            } else {
                map.push(OUTSIDE);
            }
        }
    }
}

fn gather(src: &[f32], dst: &mut [f32], c: usize, plane: usize, map: &[u32]) {
    for ch in 0..c {
        let s = &src[ch * plane..(ch + 1) * plane];
        let d = &mut dst[ch * plane..(ch + 1) * plane];
        for (o, &m) in d.iter_mut().zip(map) {
            *o = if m == OUTSIDE { 0.0 } else { s[m as usize] };
        }
    }
}

/// Rotates `[c, h, w]` by `degrees` counter-clockwise (nearest, zero fill) into `dst`.
pub fn rotate(src: &[f32], dst: &mut [f32], c: usize, h: usize, w: usize, degrees: f32) {
    let mut map = Vec::new();
    rotate_map(h, w, degrees, &mut map);
    gather(src, dst, c, h * w, &map);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(c: usize, h: usize, w: usize) -> Vec<f32> {
        (0..c * h * w).map(|i| i as f32).collect()
    }

    #[test]
    fn crop_pads_with_zeros_and_shifts() {
        // 1 channel 3x3 image 0..9, pad 1. Offset (0, 0) = top-left of the padded
        // image: the output is shifted down-right by one, zeros on the top row and left column.
        let src = ramp(1, 3, 3);
        let mut dst = vec![-1.0; 9];
        crop(&src, &mut dst, 1, 3, 3, 1, 0, 0);
        assert_eq!(dst, vec![0., 0., 0., 0., 0., 1., 0., 3., 4.]);
        // Offset (pad, pad) is the identity.
        crop(&src, &mut dst, 1, 3, 3, 1, 1, 1);
        assert_eq!(dst, src);
        // Offset (2, 1): shifted up by one, zeros on the bottom row.
        crop(&src, &mut dst, 1, 3, 3, 1, 2, 1);
        assert_eq!(dst, vec![3., 4., 5., 6., 7., 8., 0., 0., 0.]);
        // Offset (1, 2): shifted left, zeros on the right column.
        crop(&src, &mut dst, 1, 3, 3, 1, 1, 2);
        assert_eq!(dst, vec![1., 2., 0., 4., 5., 0., 7., 8., 0.]);
        // Padding larger than the image: all zeros at the extreme offset.
        crop(&src, &mut dst, 1, 3, 3, 4, 0, 0);
        assert_eq!(dst, vec![0.0; 9]);
    }

    #[test]
    fn hflip_mirrors_each_row_of_each_channel() {
        let mut img = ramp(2, 2, 3);
        hflip(&mut img, 2, 2, 3);
        assert_eq!(img, vec![2., 1., 0., 5., 4., 3., 8., 7., 6., 11., 10., 9.]);
    }

    #[test]
    fn brightness_scales_and_clamps() {
        let mut img = vec![0.0, 0.25, 0.5, 0.9];
        adjust_brightness(&mut img, 1.2);
        assert_eq!(img, vec![0.0, 0.3, 0.6, 1.0]);
    }

    #[test]
    fn contrast_blends_with_mean_gray() {
        // Two pixels: (1, 0, 0) and (0, 0, 1). gray = 0.2989 and 0.114, mean 0.20645.
        // f = 0.5: x' = 0.5 x + 0.5 * 0.20645 = 0.5 x + 0.103225.
        let mut img = vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        adjust_contrast(&mut img, 2, 0.5);
        let want = [0.603225, 0.103225, 0.103225, 0.103225, 0.103225, 0.603225];
        for (a, b) in img.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{img:?}");
        }
        // f = 0: the flat mean everywhere.
        let mut img = vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        adjust_contrast(&mut img, 2, 0.0);
        assert!(img.iter().all(|&x| (x - 0.20645).abs() < 1e-6));
    }

    #[test]
    fn saturation_blends_with_pixel_gray() {
        // Pixel (0.8, 0.4, 0.2): gray = 0.23912 + 0.2348 + 0.0228 = 0.49672.
        // f = 0 gives gray; f = 2 gives 2x - gray = (1.10328 -> 1, 0.30328, -0.09672 -> 0).
        let mut img = vec![0.8, 0.4, 0.2];
        adjust_saturation(&mut img, 1, 0.0);
        assert!(img.iter().all(|&x| (x - 0.49672).abs() < 1e-6), "{img:?}");
        let mut img = vec![0.8, 0.4, 0.2];
        adjust_saturation(&mut img, 1, 2.0);
        assert!((img[0] - 1.0).abs() < 1e-6 && (img[1] - 0.30328).abs() < 1e-6 && img[2] == 0.0);
    }

    #[test]
    fn hsv_matches_hand_worked_values() {
        // Pure red: h 0, s 1, v 1. (0.2, 0.4, 0.8): max b, h = (4 + gc - rc)/6,
        // cr = 0.6, rc = 1, gc = 2/3: h = (4 - 1/3)/6 = 0.6111, s = 0.75, v = 0.8.
        assert_eq!(rgb_to_hsv(1.0, 0.0, 0.0), (0.0, 1.0, 1.0));
        let (h, s, v) = rgb_to_hsv(0.2, 0.4, 0.8);
        assert!((h - 0.611111).abs() < 1e-5 && (s - 0.75).abs() < 1e-6 && v == 0.8);
        // Gray stays gray with hue 0.
        assert_eq!(rgb_to_hsv(0.5, 0.5, 0.5), (0.0, 0.0, 0.5));
        let (r, g, b) = hsv_to_rgb(h, s, v);
        assert!((r - 0.2).abs() < 1e-6 && (g - 0.4).abs() < 1e-6 && (b - 0.8).abs() < 1e-6);
    }

    #[test]
    fn hue_shift_rotates_the_color_wheel() {
        // Red shifted by 1/3 turn is green, by -1/3 is blue; gray pixels do not move.
        let mut img = vec![1.0, 0.5, 0.0, 0.5, 0.0, 0.5];
        adjust_hue(&mut img, 2, 1.0 / 3.0);
        let want = [0.0, 0.5, 1.0, 0.5, 0.0, 0.5];
        for (a, b) in img.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{img:?}");
        }
        let mut img = vec![1.0, 0.0, 0.0];
        adjust_hue(&mut img, 1, -1.0 / 3.0);
        assert!(img[0].abs() < 1e-5 && img[1].abs() < 1e-5 && (img[2] - 1.0).abs() < 1e-5);
        // (0.2, 0.4, 0.8) by +0.1: h = 0.7111, s = 0.75, v = 0.8: i = 4, f = 0.2667:
        // p = 0.2, t = 0.8 * (1 - 0.75 * 0.7333) = 0.36, so (t, p, v) = (0.36, 0.2, 0.8).
        let mut img = vec![0.2, 0.4, 0.8];
        adjust_hue(&mut img, 1, 0.1);
        let want = [0.36, 0.2, 0.8];
        for (a, b) in img.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{img:?}");
        }
    }

    #[test]
    fn rotate_90_is_counter_clockwise() {
        // numpy.rot90 (counter-clockwise): out[y][x] = in[x][n - 1 - y].
        let src = ramp(1, 4, 4);
        let mut dst = vec![0.0; 16];
        rotate(&src, &mut dst, 1, 4, 4, 90.0);
        for y in 0..4 {
            for x in 0..4 {
                assert_eq!(dst[y * 4 + x], src[x * 4 + (3 - y)], "({y}, {x})");
            }
        }
        rotate(&src, &mut dst, 1, 4, 4, 0.0);
        assert_eq!(dst, src);
    }

    #[test]
    fn rotate_15_hand_worked_pixels() {
        // 32x32, 15 degrees: cos = 0.965926, sin = 0.258819.
        // Output (y 0, x 16): x' = 0.5, y' = -15.5: sx = 0.482963 + 4.011695 + 15.5 = 19.99 -> 20,
        // sy = 0.129410 - 14.971853 + 15.5 = 0.66 -> 1: reads in[1][20].
        // Output (0, 0): x' = y' = -15.5: sy = -15.5 * 1.224745 + 15.5 = -3.48: zero fill.
        // Output (16, 16): x' = y' = 0.5: sx = 15.85 -> 16, sy = 16.11 -> 16: the centre stays.
        let src: Vec<f32> = (0..32 * 32).map(|i| 1.0 + i as f32).collect();
        let mut dst = vec![-1.0; 32 * 32];
        rotate(&src, &mut dst, 1, 32, 32, 15.0);
        assert_eq!(dst[16], src[32 + 20]);
        assert_eq!(dst[0], 0.0);
        assert_eq!(dst[16 * 32 + 16], src[16 * 32 + 16]);
        // Zero fill only at the corners: the middle row is fully inside.
        assert!(dst[16 * 32..17 * 32].iter().all(|&v| v > 0.0));
    }

    #[test]
    fn normalize_is_mean_std() {
        let n = Normalize {
            mean: [0.5, 0.25, 0.0],
            std: [0.5, 0.25, 2.0],
        };
        let mut out = vec![0.0; 3];
        n.apply(&[1.0, 0.5, 1.0], &mut out, 1);
        assert_eq!(out, vec![1.0, 1.0, 0.5]);
    }

    #[test]
    fn jitter_order_is_a_permutation_and_factors_in_range() {
        let mut counts = [[0usize; 4]; 4];
        for i in 0..2400 {
            let mut r = rng::rng(0, rng::Stream::Augment, 0, i);
            let j = Jitter::draw(&mut r, 0.2, 0.2, 0.2, 0.1);
            let mut sorted = j.order;
            sorted.sort();
            assert_eq!(sorted, [0, 1, 2, 3]);
            for (pos, &op) in j.order.iter().enumerate() {
                counts[pos][op as usize] += 1;
            }
            for f in [j.brightness, j.contrast, j.saturation] {
                let f = f.unwrap();
                assert!((0.8..=1.2).contains(&f));
            }
            assert!((-0.1..=0.1).contains(&j.hue.unwrap()));
        }
        // Every op lands in every position about a quarter of the time.
        assert!(
            counts.iter().flatten().all(|&c| (480..720).contains(&c)),
            "{counts:?}"
        );
        let mut r = rng::rng(0, rng::Stream::Augment, 0, 0);
        let j = Jitter::draw(&mut r, 0.0, 0.5, 0.0, 0.0);
        assert!(j.brightness.is_none() && j.contrast.is_some() && j.hue.is_none());
    }

    #[test]
    fn apply_is_a_function_of_the_rng() {
        let cfg = DataConfig::default();
        let aug = Augment::from_config(&cfg).unwrap();
        let src: Vec<u8> = (0..3 * 32 * 32).map(|i| (i * 7 % 256) as u8).collect();
        let mut s1 = Scratch::default();
        let mut s2 = Scratch::default();
        let a = aug
            .apply(
                &src,
                3,
                32,
                32,
                &mut rng::rng(1, rng::Stream::Augment, 0, 5),
                &mut s1,
            )
            .to_vec();
        let b = aug
            .apply(
                &src,
                3,
                32,
                32,
                &mut rng::rng(1, rng::Stream::Augment, 0, 5),
                &mut s2,
            )
            .to_vec();
        let c = aug
            .apply(
                &src,
                3,
                32,
                32,
                &mut rng::rng(1, rng::Stream::Augment, 0, 6),
                &mut s2,
            )
            .to_vec();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|x| (0.0..=1.0).contains(x)));
        // Only flip, p = 1: exactly the mirrored image.
        let flip = Augment::new(vec![AugmentOp::Flip { p: 1.0 }]);
        let f = flip.apply(
            &src,
            3,
            32,
            32,
            &mut rng::rng(0, rng::Stream::Augment, 0, 0),
            &mut s1,
        );
        assert_eq!(f[0], f32::from(src[31]) / 255.0);
        assert!(Augment::from_config(&DataConfig {
            augment: vec![],
            ..cfg
        })
        .is_none());
    }
}
