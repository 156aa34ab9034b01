//! The spatial gate of [`super`]'s op, one image at a time: its parameters' sizes, the forward
//! (channel pooling of `z ⊙ cg`, the `k x k` convolution as shifted row segments, the gate) and
//! the backward to the gradient at `z ⊙ cg`.

use candle_core::{bail, Result};

use super::{dot, ImageSaved, Map, SpatialGateParams};
use crate::ops::channel_gate::{gate_slope, gate_value};
use crate::spec::GateFunction;

/// The spatial gate's sizes and options.
#[derive(Debug, Clone, Copy)]
pub(super) struct SpatialDims {
    pub(super) k: usize,
    pub(super) bias: bool,
    pub(super) gate: GateFunction,
}

impl SpatialDims {
    pub(super) fn of(p: &SpatialGateParams<'_>) -> Result<SpatialDims> {
        let k = match p.weight.dims() {
            &[1, 2, k, k2] if k == k2 && k % 2 == 1 => k,
            d => bail!("attention: spatial weight {d:?}, expected [1, 2, k, k] with k odd"),
        };
        if let Some(bias) = p.bias.filter(|t| t.dims() != [1]) {
            bail!("attention: spatial bias {:?}, expected [1]", bias.dims())
        }
        Ok(SpatialDims {
            k,
            bias: p.bias.is_some(),
            gate: p.gate,
        })
    }

    /// Packed parameters: the weight `[2, k, k]`, then the bias if any.
    pub(super) fn n_params(&self) -> usize {
        2 * self.k * self.k + usize::from(self.bias)
    }
}

/// Calls `f(tap, out, inp, len)` for every tap of a `k x k` convolution (zero padding `k / 2`)
/// from 2 planes of `h x w` to one, and every output row: `tap` indexes the weight
/// `[2, k, k]`, the output pixels `out..out + len` read the input elements `inp..inp + len`
/// (indices into the 2 planes) through it. Rows and columns whose input falls in the padding are
/// left out.
fn for_each_tap_row(k: usize, h: usize, w: usize, mut f: impl FnMut(usize, usize, usize, usize)) {
    let pad = k / 2;
    for ci in 0..2 {
        for ky in 0..k {
            for kx in 0..k {
                let tap = (ci * k + ky) * k + kx;
                let x0 = pad.saturating_sub(kx);
                let x1 = w.min((w + pad).saturating_sub(kx));
                if x0 >= x1 {
                    continue;
                }
                for oy in 0..h {
                    let Some(iy) = (oy + ky).checked_sub(pad).filter(|&iy| iy < h) else {
                        continue;
                    };
                    let inp = ci * h * w + iy * w + x0 + kx - pad;
                    f(tap, oy * w + x0, inp, x1 - x0);
                }
            }
        }
    }
}

/// The spatial gate's forward of one image (`z` `[C, HW]`, the channel gate's values in
/// `sv.g` if any): the channel pooling of `z ⊙ cg`, the convolution, the gate, into `sv`.
pub(super) fn forward(sd: &SpatialDims, m: Map, sw: &[f32], z: &[f32], sv: &mut ImageSaved) {
    let (c, hw) = (m.c, m.hw());
    let on = !sv.g.is_empty();
    let (mean, max) = sv.pooled.split_at_mut(hw);
    for (ch, plane) in z.chunks_exact(hw).enumerate() {
        let gc = if on { sv.g[ch] } else { 1.0 };
        if ch == 0 {
            for p in 0..hw {
                let v = plane[p] * gc;
                mean[p] = v;
                max[p] = v;
            }
            continue;
        }
        // Zipped, not indexed: without bounds checks the selects vectorize.
        let arg = &mut sv.argmax[..hw];
        for ((&zv, mn), (mx, am)) in plane
            .iter()
            .zip(mean.iter_mut())
            .zip(max.iter_mut().zip(arg.iter_mut()))
        {
            let v = zv * gc;
            *mn += v;
            // `>`: ties keep the first channel.
            let take = v > *mx;
            *mx = if take { v } else { *mx };
            *am = if take { ch as u32 } else { *am };
        }
    }
    let inv = 1.0 / c as f32;
    for v in mean.iter_mut() {
        *v *= inv;
    }
    for_each_tap_row(sd.k, m.h, m.w, |tap, o, i, len| {
        let wv = sw[tap];
        for (a, &v) in sv.spre[o..o + len].iter_mut().zip(&sv.pooled[i..i + len]) {
            *a += wv * v;
        }
    });
    for (g, &p) in sv.sg.iter_mut().zip(&sv.spre) {
        *g = gate_value(sd.gate, p);
    }
}

/// The spatial gate's backward of one image: from `dy` to the gradient at `xc = z ⊙ cg`
/// (into `dxc`), the convolution's parameter gradients added into `dp` (`[2·k², bias?]`).
#[allow(clippy::too_many_arguments)]
pub(super) fn backward(
    sd: &SpatialDims,
    m: Map,
    sw: &[f32],
    sv: &ImageSaved,
    z: &[f32],
    dy: &[f32],
    dxc: &mut [f32],
    dp: &mut [f32],
) {
    let (c, hw) = (m.c, m.hw());
    let on = !sv.g.is_empty();
    // The spatial gate's gradient, then its logits'.
    let mut dsp = vec![0f32; hw];
    for (ch, (zp, dyp)) in z.chunks_exact(hw).zip(dy.chunks_exact(hw)).enumerate() {
        let gc = if on { sv.g[ch] } else { 1.0 };
        for ((a, &v), &d) in dsp.iter_mut().zip(zp).zip(dyp) {
            *a += d * (v * gc);
        }
    }
    for ((a, &p), &g) in dsp.iter_mut().zip(&sv.spre).zip(&sv.sg) {
        *a *= gate_slope(sd.gate, p, g);
    }
    // The convolution's backward: weight, bias, the pooled maps' gradient.
    let kk2 = 2 * sd.k * sd.k;
    let mut dpooled = vec![0f32; 2 * hw];
    for_each_tap_row(sd.k, m.h, m.w, |tap, o, i, len| {
        dp[tap] += dot(&dsp[o..o + len], &sv.pooled[i..i + len]);
        let wv = sw[tap];
        for (a, &d) in dpooled[i..i + len].iter_mut().zip(&dsp[o..o + len]) {
            *a += wv * d;
        }
    });
    if sd.bias {
        dp[kk2] = dsp.iter().sum();
    }
    let (dmean, dmax) = dpooled.split_at(hw);
    let inv = 1.0 / c as f32;
    for (ch, (row, dyp)) in dxc
        .chunks_exact_mut(hw)
        .zip(dy.chunks_exact(hw))
        .enumerate()
    {
        let at = row.iter_mut().zip(dyp).zip(&sv.sg[..hw]);
        let pooled = dmean.iter().zip(dmax).zip(&sv.argmax[..hw]);
        for (((r, &d), &g), ((&dm, &dx), &am)) in at.zip(pooled) {
            let hit = am == ch as u32;
            *r = d * g + dm * inv + if hit { dx } else { 0.0 };
        }
    }
}
