//! The channel gate of one image on plain slices, forward and backward, for the fused block op
//! ([`super::block`]): `g = gate(Σ_branches excite(s))` with `s` the channel descriptor
//! (average, maximum, or both as two branches through the shared excitation, as CBAM's channel
//! attention), and `excite` either
//!
//! - squeeze-and-excitation's MLP, `W2·relu(W1·s + b1) + b2` (J. Hu, L. Shen, G. Sun,
//!   "Squeeze-and-Excitation Networks", CVPR 2018; `crate::attention::Se`), or
//! - ECA's 1-D convolution across the channels, `conv1d_k(s) + b` with zero padding
//!   `(k - 1) / 2` (Q. Wang et al., "ECA-Net", CVPR 2020; `crate::attention::Eca`).
//!
//! Everything here is per image and small: plain loops, f32, fixed order.

use crate::spec::{GateFunction, Squeeze};

/// The excitation of the descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Excite {
    /// SE's bottleneck MLP of width `hidden`.
    Mlp { hidden: usize },
    /// ECA's 1-D convolution of odd size `kernel` across the channels.
    Conv1d { kernel: usize },
}

/// Sizes and options of one channel gate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GateDims {
    pub(crate) c: usize,
    pub(crate) excite: Excite,
    pub(crate) squeeze: Squeeze,
    pub(crate) gate: GateFunction,
    pub(crate) bias: bool,
}

impl GateDims {
    /// Descriptor branches: 1 (avg or max) or 2 (avg and max).
    pub(crate) fn branches(&self) -> usize {
        match self.squeeze {
            Squeeze::AvgMax => 2,
            _ => 1,
        }
    }

    /// Hidden activations kept per branch (the MLP's width; none for ECA).
    pub(crate) fn hidden(&self) -> usize {
        match self.excite {
            Excite::Mlp { hidden } => hidden,
            Excite::Conv1d { .. } => 0,
        }
    }

    /// Number of packed parameters: MLP `W1 [hidden, C]`, `b1?`, `W2 [C, hidden]`, `b2?`;
    /// ECA `w [k]`, `b? [1]`.
    pub(crate) fn n_params(&self) -> usize {
        match self.excite {
            Excite::Mlp { hidden } => {
                2 * self.c * hidden + if self.bias { hidden + self.c } else { 0 }
            }
            Excite::Conv1d { kernel } => kernel + usize::from(self.bias),
        }
    }
}

/// The parameters, unpacked from their packed order.
pub(crate) enum GateWeights<'a> {
    Mlp {
        w1: &'a [f32],
        b1: Option<&'a [f32]>,
        w2: &'a [f32],
        b2: Option<&'a [f32]>,
    },
    Conv1d {
        w: &'a [f32],
        b: Option<f32>,
    },
}

impl<'a> GateWeights<'a> {
    pub(crate) fn unpack(d: &GateDims, p: &'a [f32]) -> GateWeights<'a> {
        let ch = d.c;
        match d.excite {
            Excite::Mlp { hidden: hid } => {
                let (w1, rest) = p.split_at(hid * ch);
                let (b1, rest) = if d.bias {
                    let (b, r) = rest.split_at(hid);
                    (Some(b), r)
                } else {
                    (None, rest)
                };
                let (w2, rest) = rest.split_at(ch * hid);
                let b2 = if d.bias { Some(&rest[..ch]) } else { None };
                GateWeights::Mlp { w1, b1, w2, b2 }
            }
            Excite::Conv1d { kernel } => GateWeights::Conv1d {
                w: &p[..kernel],
                b: if d.bias { Some(p[kernel]) } else { None },
            },
        }
    }
}

/// What the forward of one image keeps for the backward.
pub(crate) struct GateImage<'a> {
    /// Descriptors `[branches, C]`.
    pub(crate) s: &'a mut [f32],
    /// Hidden activations after ReLU `[branches, hidden]`.
    pub(crate) h: &'a mut [f32],
    /// Gate logits `[C]`.
    pub(crate) pre: &'a mut [f32],
    /// Gate values `[C]`.
    pub(crate) g: &'a mut [f32],
    /// With a max descriptor: the plane position of each channel's first maximum `[C]`.
    pub(crate) maxpos: &'a mut [u32],
}

/// `Σ xs` in eight f32 lanes (vectorizes; a plain `sum` is one serial dependency chain).
#[inline]
fn lane_sum(xs: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            acc[l] += c[l];
        }
    }
    for (l, &v) in rest.iter().enumerate() {
        acc[l] += v;
    }
    acc.iter().sum()
}

/// Forward of one image: descriptors of `z` (`[C, hw]`), the MLP, the gate.
pub(crate) fn forward(
    d: &GateDims,
    wt: &GateWeights<'_>,
    z: &[f32],
    hw: usize,
    out: &mut GateImage<'_>,
) {
    let ch = d.c;
    let mut b = 0;
    if matches!(d.squeeze, Squeeze::Avg | Squeeze::AvgMax) {
        for (c, plane) in z.chunks(hw).enumerate().take(ch) {
            out.s[c] = lane_sum(plane) / hw as f32;
        }
        b += 1;
    }
    if matches!(d.squeeze, Squeeze::Max | Squeeze::AvgMax) {
        for (c, plane) in z.chunks(hw).enumerate().take(ch) {
            let (mut best, mut at) = (plane[0], 0u32);
            for (p, &v) in plane.iter().enumerate().skip(1) {
                if v > best {
                    best = v;
                    at = p as u32;
                }
            }
            out.s[b * ch + c] = best;
            out.maxpos[c] = at;
        }
    }
    for c in 0..ch {
        out.pre[c] = 0.0;
    }
    let hid = d.hidden();
    for br in 0..d.branches() {
        let s = &out.s[br * ch..(br + 1) * ch];
        match *wt {
            GateWeights::Mlp { w1, b1, w2, b2 } => {
                let h = &mut out.h[br * hid..(br + 1) * hid];
                for (j, hj) in h.iter_mut().enumerate() {
                    let row = &w1[j * ch..(j + 1) * ch];
                    let mut acc = b1.map_or(0.0, |b| b[j]);
                    acc += row.iter().zip(s).map(|(w, v)| w * v).sum::<f32>();
                    *hj = acc.max(0.0);
                }
                for (c, pc) in out.pre.iter_mut().enumerate() {
                    let row = &w2[c * hid..(c + 1) * hid];
                    let mut acc = b2.map_or(0.0, |b| b[c]);
                    acc += row.iter().zip(h.iter()).map(|(w, v)| w * v).sum::<f32>();
                    *pc += acc;
                }
            }
            GateWeights::Conv1d { w, b } => {
                let pad = (w.len() - 1) / 2;
                for (c, pc) in out.pre.iter_mut().enumerate() {
                    let mut acc = 0f32;
                    for (j, &wj) in w.iter().enumerate() {
                        if let Some(i) = (c + j).checked_sub(pad).filter(|&i| i < ch) {
                            acc += wj * s[i];
                        }
                    }
                    *pc += acc + b.unwrap_or(0.0);
                }
            }
        }
    }
    for (gc, &p) in out.g.iter_mut().zip(out.pre.iter()) {
        *gc = gate_value(d.gate, p);
    }
}

/// The gate function at `pre` (PyTorch's `sigmoid`, `hardsigmoid`).
#[inline]
pub(crate) fn gate_value(f: GateFunction, pre: f32) -> f32 {
    match f {
        GateFunction::Sigmoid => 1.0 / (1.0 + (-pre).exp()),
        GateFunction::HardSigmoid => (pre * (1.0 / 6.0) + 0.5).clamp(0.0, 1.0),
    }
}

/// The gate function's derivative at `pre`, whose value is `g` (hard sigmoid: 1/6 strictly
/// inside (-3, 3), else 0, as PyTorch).
#[inline]
pub(crate) fn gate_slope(f: GateFunction, pre: f32, g: f32) -> f32 {
    match f {
        GateFunction::Sigmoid => g * (1.0 - g),
        GateFunction::HardSigmoid => {
            if pre > -3.0 && pre < 3.0 {
                1.0 / 6.0
            } else {
                0.0
            }
        }
    }
}

/// Backward of one image: from `dg` (`[C]`, the loss gradient at the gate values) to the
/// descriptors' gradients `ds` (`[branches, C]`) and the parameter gradients, added into
/// `dparams` (packed as the parameters).
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    d: &GateDims,
    wt: &GateWeights<'_>,
    s: &[f32],
    h: &[f32],
    pre: &[f32],
    g: &[f32],
    dg: &[f32],
    ds: &mut [f32],
    dparams: &mut [f32],
) {
    let ch = d.c;
    let dpre: Vec<f32> = (0..ch)
        .map(|c| dg[c] * gate_slope(d.gate, pre[c], g[c]))
        .collect();
    match *wt {
        GateWeights::Mlp { w1, w2, .. } => mlp_backward(d, w1, w2, s, h, &dpre, ds, dparams),
        GateWeights::Conv1d { w, .. } => {
            let pad = (w.len() - 1) / 2;
            let (dw, db) = dparams.split_at_mut(w.len());
            for br in 0..d.branches() {
                let sb = &s[br * ch..(br + 1) * ch];
                for (j, dwj) in dw.iter_mut().enumerate() {
                    for (c, &dp) in dpre.iter().enumerate() {
                        if let Some(i) = (c + j).checked_sub(pad).filter(|&i| i < ch) {
                            *dwj += dp * sb[i];
                        }
                    }
                }
                if let Some(b) = db.first_mut() {
                    *b += dpre.iter().sum::<f32>();
                }
                for (i, dsi) in ds[br * ch..(br + 1) * ch].iter_mut().enumerate() {
                    let mut acc = 0f32;
                    for (j, &wj) in w.iter().enumerate() {
                        if let Some(c) = (i + pad).checked_sub(j).filter(|&c| c < ch) {
                            acc += wj * dpre[c];
                        }
                    }
                    *dsi = acc;
                }
            }
        }
    }
}

/// The MLP's part of [`backward`].
#[allow(clippy::too_many_arguments)]
fn mlp_backward(
    d: &GateDims,
    w1: &[f32],
    w2: &[f32],
    s: &[f32],
    h: &[f32],
    dpre: &[f32],
    ds: &mut [f32],
    dparams: &mut [f32],
) {
    let (ch, hid) = (d.c, d.hidden());
    let (dw1, rest) = dparams.split_at_mut(hid * ch);
    let (mut db1, rest) = if d.bias {
        let (b, r) = rest.split_at_mut(hid);
        (Some(b), r)
    } else {
        (None, rest)
    };
    let (dw2, rest) = rest.split_at_mut(ch * hid);
    let mut db2 = if d.bias { Some(&mut rest[..ch]) } else { None };
    let mut dh = vec![0f32; hid];
    for br in 0..d.branches() {
        let sb = &s[br * ch..(br + 1) * ch];
        let hb = &h[br * hid..(br + 1) * hid];
        for (j, dhj) in dh.iter_mut().enumerate() {
            *dhj = if hb[j] > 0.0 {
                (0..ch).map(|c| w2[c * hid + j] * dpre[c]).sum::<f32>()
            } else {
                0.0
            };
        }
        for c in 0..ch {
            let row = &mut dw2[c * hid..(c + 1) * hid];
            for (w, &hv) in row.iter_mut().zip(hb) {
                *w += dpre[c] * hv;
            }
        }
        if let Some(db2) = db2.as_deref_mut() {
            for (b, &v) in db2.iter_mut().zip(dpre) {
                *b += v;
            }
        }
        for (j, &dhj) in dh.iter().enumerate() {
            let row = &mut dw1[j * ch..(j + 1) * ch];
            for (w, &sv) in row.iter_mut().zip(sb) {
                *w += dhj * sv;
            }
        }
        if let Some(db1) = db1.as_deref_mut() {
            for (b, &v) in db1.iter_mut().zip(&dh) {
                *b += v;
            }
        }
        let dsb = &mut ds[br * ch..(br + 1) * ch];
        for (c, dsc) in dsb.iter_mut().enumerate() {
            *dsc = (0..hid).map(|j| w1[j * ch + c] * dh[j]).sum::<f32>();
        }
    }
}
