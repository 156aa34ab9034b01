//! One block of the seed CNN, convolution -> BatchNorm2d -> ReLU, optionally followed by a
//! 2x2 max-pool, as a single candle custom op with a CPU forward and backward.
//!
//! Same arithmetic as the separate ops ([`super::conv`], [`super::bn_relu`],
//! [`super::maxpool`]), but candle's autograd sees one node per block instead of three or four:
//! candle accumulates every node's gradient into a freshly zeroed tensor, so each intermediate
//! `[N, C, H, W]` activation costs an allocation, a zeroing and an addition in the backward
//! pass, several MB each per step. Here the intermediates stay inside the op:
//!
//! - forward, per image (parallel): im2col + gemm into the saved convolution output `y`, and
//!   that image's per-channel mean and centred sum of squares while the image is in cache; the
//!   batch statistics are then combined in image order (Chan et al.'s pairwise formula, in f64:
//!   the result does not depend on the number of threads); a second pass writes
//!   `relu(γ·x̂ + β)`, pooled with argmax indices (PyTorch's tie and NaN rules, as
//!   [`super::maxpool`]) or dense.
//! - backward: the per-channel sums `Σdz` and `Σdz·x̂` (with pooling only over the argmax
//!   positions: everything else has a zero gradient), then, per image, the convolution output's
//!   gradient `dy = γ/σ · (dz - Σdz/M - x̂·Σdz·x̂/M)` is computed into a per-thread buffer and
//!   fed straight into the convolution's weight- and input-gradient gemms
//!   ([`super::conv::backward_cpu_with`]): the dense `dy` of the whole batch never exists.
//!
//! The parameters travel as one packed tensor `[bias (if any), γ, β]` (candle's custom ops take
//! at most three arguments); [`conv_bn_relu_train`] builds it with `Tensor::cat`, whose backward
//! splits the packed gradient again.
//!
//! On a non-CPU device, for non-f32 tensors, in evaluation mode with an input that takes part in
//! autograd, the functions compose the reference ops instead ([`conv_bn_relu_reference`]).

use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex};

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

use super::bn_relu::{batch_norm_eval_reference, batch_norm_train_reference, BatchStats};
use super::conv::{backward_cpu_with, conv2d_reference, forward_image, with_buf, Geom};
use super::kernels::{cpu_f32, shifted_sums};
use super::maxpool::max_pool2x2;
use super::scratch::{self, Pooled};
use super::se_excite::{self, Excite, SeDims, SeImage, SeWeights};
use crate::attention::{scale_channels, squeeze_channels};
use crate::layers::apply_gate;
use crate::spec::{Gate, Squeeze};

/// The parameters of one block.
#[derive(Debug, Clone, Copy)]
pub struct BlockParams<'a> {
    /// Convolution weight `[Cout, Cin, k, k]`.
    pub weight: &'a Tensor,
    /// Convolution bias `[Cout]`, if the convolution has one.
    pub bias: Option<&'a Tensor>,
    /// Zero padding on each side of the convolution's input.
    pub padding: usize,
    /// BatchNorm scale γ `[Cout]`.
    pub gamma: &'a Tensor,
    /// BatchNorm shift β `[Cout]`.
    pub beta: &'a Tensor,
    /// Added to the variance (PyTorch's default 1e-5).
    pub eps: f64,
    /// Whether a 2x2 max-pool (stride 2, floor) follows the ReLU.
    pub pool: bool,
    /// A channel-attention module (SE or ECA) between the ReLU and the pool (needs `pool`).
    pub gate: Option<ChannelGate<'a>>,
}

/// A channel-attention module fused into the block: `out = pool(z * gate(excite(squeeze(z))))`.
#[derive(Debug, Clone, Copy)]
pub enum ChannelGate<'a> {
    /// Squeeze-and-excitation (`crate::attention::Se`).
    Se(SeParams<'a>),
    /// Efficient channel attention (`crate::attention::Eca`).
    Eca(EcaParams<'a>),
}

impl<'a> ChannelGate<'a> {
    /// The module's parameter tensors, in packed order.
    fn tensors(&self) -> Vec<&'a Tensor> {
        match *self {
            ChannelGate::Se(se) => [Some(se.w1), se.b1, Some(se.w2), se.b2]
                .into_iter()
                .flatten()
                .collect(),
            ChannelGate::Eca(eca) => [Some(eca.weight), eca.bias].into_iter().flatten().collect(),
        }
    }

    fn squeeze(&self) -> Squeeze {
        match self {
            ChannelGate::Se(se) => se.squeeze,
            ChannelGate::Eca(eca) => eca.squeeze,
        }
    }

    fn gate_fn(&self) -> Gate {
        match self {
            ChannelGate::Se(se) => se.gate,
            ChannelGate::Eca(eca) => eca.gate,
        }
    }
}

/// The parameters of an ECA module fused into the block: `gate(conv1d_k(squeeze(z)) + b)`.
#[derive(Debug, Clone, Copy)]
pub struct EcaParams<'a> {
    /// `conv.weight` `[1, 1, k]`, `k` odd.
    pub weight: &'a Tensor,
    /// `conv.bias` `[1]`, if any.
    pub bias: Option<&'a Tensor>,
    /// The channel descriptor.
    pub squeeze: Squeeze,
    /// The gate function.
    pub gate: Gate,
}

/// The parameters of a squeeze-and-excitation module (`crate::attention::Se`) fused into the
/// block: `out = pool(z * gate(Σ W2·relu(W1·squeeze(z) + b1) + b2))`.
#[derive(Debug, Clone, Copy)]
pub struct SeParams<'a> {
    /// `fc.0.weight` `[hidden, C]`.
    pub w1: &'a Tensor,
    /// `fc.0.bias` `[hidden]`, if any.
    pub b1: Option<&'a Tensor>,
    /// `fc.2.weight` `[C, hidden]`.
    pub w2: &'a Tensor,
    /// `fc.2.bias` `[C]`, if any (both biases or neither).
    pub b2: Option<&'a Tensor>,
    /// The channel descriptor.
    pub squeeze: Squeeze,
    /// The gate function.
    pub gate: Gate,
}

impl BlockParams<'_> {
    fn packed(&self) -> Result<Tensor> {
        let mut parts: Vec<Tensor> = self
            .bias
            .into_iter()
            .chain([self.gamma, self.beta])
            .cloned()
            .collect();
        if let Some(gate) = &self.gate {
            for t in gate.tensors() {
                parts.push(t.flatten_all()?);
            }
        }
        Tensor::cat(&parts, 0)?.contiguous()
    }

    /// The channel gate's sizes, checked against the block's channels.
    fn se_dims(&self, c: usize) -> Result<Option<SeDims>> {
        let Some(gate) = &self.gate else {
            return Ok(None);
        };
        if !self.pool {
            bail!("conv block: a fused channel attention needs the pool after it")
        }
        let se = match gate {
            ChannelGate::Se(se) => se,
            ChannelGate::Eca(eca) => {
                let k = match eca.weight.dims() {
                    &[1, 1, k] if k % 2 == 1 => k,
                    d => bail!("conv block: ECA weight {d:?}, expected [1, 1, k] with k odd"),
                };
                let bias = match eca.bias {
                    Some(b) if b.dims() == [1] => true,
                    Some(b) => bail!("conv block: ECA bias {:?}, expected [1]", b.dims()),
                    None => false,
                };
                return Ok(Some(SeDims {
                    c,
                    excite: Excite::Conv1d { kernel: k },
                    squeeze: eca.squeeze,
                    gate: eca.gate,
                    bias,
                }));
            }
        };
        let (hidden, wc) = se.w1.dims2()?;
        if wc != c || se.w2.dims() != [c, hidden] {
            bail!(
                "conv block: squeeze-and-excitation weights {:?} and {:?} for {c} channels",
                se.w1.dims(),
                se.w2.dims()
            )
        }
        let bias = match (se.b1, se.b2) {
            (Some(b1), Some(b2)) if b1.dims() == [hidden] && b2.dims() == [c] => true,
            (None, None) => false,
            _ => bail!("conv block: squeeze-and-excitation biases must both be given, [{hidden}] and [{c}]"),
        };
        Ok(Some(SeDims {
            c,
            excite: Excite::Mlp { hidden },
            squeeze: se.squeeze,
            gate: se.gate,
            bias,
        }))
    }

    fn check(&self, x: &Tensor) -> Result<Geom> {
        let g = Geom::new(x.shape(), self.weight.shape(), self.padding)?;
        let c = g.c_out;
        self.se_dims(c)?;
        for (what, t) in self.bias.map(|b| ("bias", b)).into_iter().chain([
            ("batch norm weight", self.gamma),
            ("batch norm bias", self.beta),
        ]) {
            if t.dims() != [c] {
                bail!("conv block: {what} shape {:?}, expected [{c}]", t.dims())
            }
        }
        Ok(g)
    }
}

/// Training mode: BatchNorm with the batch statistics, which come back for the layer's
/// running-statistics update.
///
/// # Shapes
/// `x`: `[N, Cin, H, W]`; returns `[N, Cout, H', W']` (`H' = H + 2p - k + 1`), or
/// `[N, Cout, H'/2, W'/2]` (floor) with `pool`, and two `[Cout]` statistics.
pub fn conv_bn_relu_train(x: &Tensor, p: &BlockParams<'_>) -> Result<(Tensor, BatchStats)> {
    if !(x.device().is_cpu() && x.dtype() == candle_core::DType::F32) {
        return conv_bn_relu_reference(x, p, None);
    }
    let g = p.check(x)?;
    if g.n * g.hw_out() < 2 {
        bail!(
            "batch_norm: expected more than 1 value per channel in training, got input {:?}",
            [g.n, g.c_out, g.oh, g.ow]
        )
    }
    let stats = Arc::new(Mutex::new(None));
    let op = BlockOp {
        padding: p.padding,
        eps: p.eps,
        pool: p.pool,
        has_bias: p.bias.is_some(),
        se: p.se_dims(g.c_out)?,
        mode: OpMode::Train(stats.clone()),
        saved: Mutex::new(None),
    };
    let y = x
        .contiguous()?
        .apply_op3(&p.weight.contiguous()?, &p.packed()?, op)?;
    let stats = stats
        .lock()
        .map_err(|_| candle_core::Error::Msg("conv block: statistics lock poisoned".into()))?
        .take();
    let Some((mean, var_unbiased)) = stats else {
        bail!("conv block: the forward kernel did not record batch statistics")
    };
    let c = g.c_out;
    Ok((
        y,
        BatchStats {
            mean: Tensor::from_vec(mean, c, x.device())?,
            var_unbiased: Tensor::from_vec(var_unbiased, c, x.device())?,
        },
    ))
}

/// Evaluation mode: BatchNorm with the running statistics.
///
/// # Shapes
/// As [`conv_bn_relu_train`]; `running_mean`, `running_var`: `[Cout]`.
pub fn conv_bn_relu_eval(
    x: &Tensor,
    p: &BlockParams<'_>,
    running_mean: &Tensor,
    running_var: &Tensor,
) -> Result<Tensor> {
    let tracked = x.track_op()
        || p.weight.track_op()
        || p.gamma.track_op()
        || p.beta.track_op()
        || p.bias.is_some_and(|b| b.track_op())
        || p.gate
            .is_some_and(|g| g.tensors().into_iter().any(Tensor::track_op));
    if tracked || !(x.device().is_cpu() && x.dtype() == candle_core::DType::F32) {
        return conv_bn_relu_reference(x, p, Some((running_mean, running_var))).map(|r| r.0);
    }
    let g = p.check(x)?;
    let mean = running_mean.flatten_all()?.to_vec1::<f32>()?;
    let var = running_var.flatten_all()?.to_vec1::<f32>()?;
    if mean.len() != g.c_out || var.len() != g.c_out {
        bail!(
            "conv block: running statistics of {} and {} elements for {} channels",
            mean.len(),
            var.len(),
            g.c_out
        )
    }
    let invstd = var
        .iter()
        .map(|&v| (1.0 / (v as f64 + p.eps).sqrt()) as f32)
        .collect();
    let op = BlockOp {
        padding: p.padding,
        eps: p.eps,
        pool: p.pool,
        has_bias: p.bias.is_some(),
        se: p.se_dims(g.c_out)?,
        mode: OpMode::Eval { mean, invstd },
        saved: Mutex::new(None),
    };
    x.contiguous()?
        .apply_op3_no_bwd(&p.weight.contiguous()?, &p.packed()?, &op)
}

/// The reference composition: [`conv2d_reference`], the plain-candle BatchNorm + ReLU, and
/// [`max_pool2x2`] with `pool`. `running` selects evaluation mode. In training mode the batch
/// statistics are returned.
///
/// # Shapes
/// As [`conv_bn_relu_train`].
pub fn conv_bn_relu_reference(
    x: &Tensor,
    p: &BlockParams<'_>,
    running: Option<(&Tensor, &Tensor)>,
) -> Result<(Tensor, BatchStats)> {
    let y = conv2d_reference(x, p.weight, p.bias, p.padding)?;
    let (z, stats) = match running {
        None => batch_norm_train_reference(&y, p.gamma, p.beta, p.eps, true)?,
        Some((rm, rv)) => {
            let z = batch_norm_eval_reference(&y, p.gamma, p.beta, rm, rv, p.eps, true)?;
            let stats = BatchStats {
                mean: rm.clone(),
                var_unbiased: rv.clone(),
            };
            (z, stats)
        }
    };
    let z = match &p.gate {
        Some(gate) => {
            let (first, second) = squeeze_channels(&z, gate.squeeze())?;
            let excite = |s: &Tensor| -> Result<Tensor> {
                match gate {
                    ChannelGate::Se(se) => {
                        let h = s.matmul(&se.w1.t()?)?;
                        let h = match se.b1 {
                            Some(b) => h.broadcast_add(b)?,
                            None => h,
                        };
                        let o = h.relu()?.matmul(&se.w2.t()?)?;
                        match se.b2 {
                            Some(b) => o.broadcast_add(b),
                            None => Ok(o),
                        }
                    }
                    ChannelGate::Eca(eca) => {
                        let (b, c) = s.dims2()?;
                        let k = eca.weight.dim(2)?;
                        let o = s
                            .reshape((b, 1, c))?
                            .conv1d(eca.weight, (k - 1) / 2, 1, 1, 1)?
                            .reshape((b, c))?;
                        match eca.bias {
                            Some(bias) => o.broadcast_add(bias),
                            None => Ok(o),
                        }
                    }
                }
            };
            let mut pre = excite(&first)?;
            if let Some(s) = second {
                pre = (pre + excite(&s)?)?;
            }
            scale_channels(&z, &apply_gate(&pre, gate.gate_fn())?)?
        }
        None => z,
    };
    let z = if p.pool { max_pool2x2(&z)? } else { z };
    Ok((z, stats))
}

enum OpMode {
    /// Batch statistics; the forward records `(mean, unbiased variance)` here for the layer.
    Train(Arc<Mutex<Option<(Vec<f32>, Vec<f32>)>>>),
    /// Running statistics, given.
    Eval { mean: Vec<f32>, invstd: Vec<f32> },
}

/// What the training-mode forward keeps for the backward.
struct Saved {
    /// The convolution output `[N, Cout, H', W']`, bias included.
    y: Pooled,
    /// With pooling: for every pooled output, the position of its window's maximum (0..4,
    /// row-major in the 2x2 window).
    argmax: Vec<u8>,
    mean: Vec<f32>,
    invstd: Vec<f32>,
    /// With a fused SE module: its per-image forward values.
    se: Option<SeSaved>,
}

/// The SE forward values of the whole batch (per image: `[branches, C]` descriptors,
/// `[branches, hidden]` hidden activations, `[C]` logits, gates and max positions).
struct SeSaved {
    s: Vec<f32>,
    h: Vec<f32>,
    pre: Vec<f32>,
    g: Vec<f32>,
    maxpos: Vec<u32>,
}

impl SeSaved {
    fn new(d: &SeDims, n: usize) -> SeSaved {
        let nb = d.branches();
        SeSaved {
            s: vec![0.0; n * nb * d.c],
            // (At least one per image and branch, so that `images` yields every image.)
            h: vec![0.0; n * nb * d.hidden().max(1)],
            pre: vec![0.0; n * d.c],
            g: vec![0.0; n * d.c],
            maxpos: vec![0; n * d.c],
        }
    }

    /// The mutable per-image views, in image order.
    fn images(&mut self, d: &SeDims) -> Vec<SeImage<'_>> {
        let nb = d.branches();
        self.s
            .chunks_mut(nb * d.c)
            .zip(self.h.chunks_mut(nb * d.hidden().max(1)))
            .zip(self.pre.chunks_mut(d.c))
            .zip(self.g.chunks_mut(d.c))
            .zip(self.maxpos.chunks_mut(d.c))
            .map(|((((s, h), pre), g), maxpos)| SeImage {
                s,
                h,
                pre,
                g,
                maxpos,
            })
            .collect()
    }
}

/// The custom op: arguments `(x, weight, packed [bias?, γ, β])`.
struct BlockOp {
    padding: usize,
    eps: f64,
    pool: bool,
    has_bias: bool,
    se: Option<SeDims>,
    mode: OpMode,
    saved: Mutex<Option<Arc<Saved>>>,
}

/// The packed parameters: convolution bias (all zeros without one), γ, β, and the SE module's.
struct Unpacked<'a> {
    bias: Vec<f32>,
    gamma: &'a [f32],
    beta: &'a [f32],
    se: &'a [f32],
}

/// `(bias, γ, β, se)` out of the packed parameters.
fn unpack<'a>(
    packed: &'a [f32],
    c: usize,
    has_bias: bool,
    se: Option<&SeDims>,
) -> Result<Unpacked<'a>> {
    let base = if has_bias { 3 * c } else { 2 * c };
    let want = base + se.map_or(0, SeDims::n_params);
    if packed.len() != want {
        bail!(
            "conv block: {} packed parameters, expected {want}",
            packed.len()
        )
    }
    let (bias, rest) = if has_bias {
        (packed[..c].to_vec(), &packed[c..])
    } else {
        (vec![0.0; c], packed)
    };
    Ok(Unpacked {
        bias,
        gamma: &rest[..c],
        beta: &rest[c..2 * c],
        se: &rest[2 * c..],
    })
}

/// Mean and centred sum of squares of one plane, in one pass of [`shifted_sums`] around the mean
/// of its first 16 values (close enough to the plane's mean that `Σd² - (Σd)²/n` does not
/// cancel: the shift is within a few standard deviations of the mean), with the exact
/// correction for the shift not being the mean.
fn mean_m2(xs: &[f32]) -> (f64, f64) {
    let n = xs.len() as f64;
    let head = &xs[..xs.len().min(16)];
    let shift = head.iter().sum::<f32>() / head.len().max(1) as f32;
    let (s, q) = shifted_sums(xs, shift);
    let mean = shift as f64 + s / n;
    (mean, (q - s * s / n).max(0.0))
}

/// Per-channel batch mean, `1/sqrt(var + eps)` and unbiased variance from the per-image
/// `(mean, M2)` of every plane (`part[n * c + ch]`), combined in image order.
fn combine(part: &[(f64, f64)], n: usize, c: usize, hw: usize, eps: f64) -> [Vec<f32>; 3] {
    let mut out = [vec![0f32; c], vec![0f32; c], vec![0f32; c]];
    for ch in 0..c {
        let mu = (0..n).map(|i| part[i * c + ch].0).sum::<f64>() / n as f64;
        let m2 = (0..n)
            .map(|i| {
                let (m, q) = part[i * c + ch];
                q + hw as f64 * (m - mu) * (m - mu)
            })
            .sum::<f64>();
        let total = (n * hw) as f64;
        let var = m2 / total;
        out[0][ch] = mu as f32;
        out[1][ch] = (1.0 / (var + eps).sqrt()) as f32;
        out[2][ch] = if total > 1.0 {
            (m2 / (total - 1.0)) as f32
        } else {
            0.0
        };
    }
    out
}

/// The running maximum after `v` at window position `i`: PyTorch's rule (`v > best ||
/// isnan(v)`), so ties keep the first position in row-major order.
#[inline(always)]
fn pick(bv: f32, bi: u8, v: f32, i: u8) -> (f32, u8) {
    #[allow(clippy::eq_op)]
    let take = (v > bv) | (v != v);
    (if take { v } else { bv }, if take { i } else { bi })
}

/// Normalization constants of one channel: `relu((v - m) * k + b)`.
#[derive(Clone, Copy)]
struct Affine {
    m: f32,
    k: f32,
    b: f32,
}

impl Affine {
    #[inline(always)]
    fn apply(self, v: f32) -> f32 {
        ((v - self.m) * self.k + self.b).max(0.0)
    }
}

/// Max-pools one plane `src` (`[oh, ow]`) of values `f(src)` into `o` (`[oh/2, ow/2]`), with
/// the window position of each maximum in `ix`.
#[inline(always)]
fn pool_plane(
    src: &[f32],
    ow: usize,
    (ph, pw): (usize, usize),
    f: impl Fn(f32) -> f32,
    o: &mut [MaybeUninit<f32>],
    ix: &mut [u8],
) {
    for py in 0..ph {
        let r0 = &src[2 * py * ow..][..2 * pw];
        let r1 = &src[(2 * py + 1) * ow..][..2 * pw];
        let orow = &mut o[py * pw..(py + 1) * pw];
        let irow = &mut ix[py * pw..(py + 1) * pw];
        for (px, (ov, iv)) in orow.iter_mut().zip(irow.iter_mut()).enumerate() {
            let c = 2 * px;
            let (mut bv, mut bi) = (f(r0[c]), 0u8);
            (bv, bi) = pick(bv, bi, f(r0[c + 1]), 1);
            (bv, bi) = pick(bv, bi, f(r1[c]), 2);
            (bv, bi) = pick(bv, bi, f(r1[c + 1]), 3);
            ov.write(bv);
            *iv = bi;
        }
    }
}

/// A fused SE module's dimensions, weights and one image's forward values.
type SeStage<'a, 'b> = (&'a SeDims, &'a SeWeights<'a>, SeImage<'b>);

/// One [`SeStage`] per image (all `None` without an SE module).
fn se_views<'a>(
    saved: &'a mut Option<SeSaved>,
    d: Option<&'a SeDims>,
    w: Option<&'a SeWeights<'a>>,
    n: usize,
) -> Vec<Option<SeStage<'a, 'a>>> {
    match (saved, d, w) {
        (Some(sv), Some(d), Some(w)) => sv.images(d).into_iter().map(|i| Some((d, w, i))).collect(),
        _ => (0..n).map(|_| None).collect(),
    }
}

/// Writes one image's output from its convolution output `yn` (`[C, oh*ow]`): dense, or pooled
/// with the argmax positions in `idx`; with an SE stage, pooled after scaling by its gate.
fn emit_image(
    yn: &[f32],
    g: &Geom,
    aff: &[Affine],
    pool: bool,
    out: &mut [MaybeUninit<f32>],
    idx: &mut [u8],
    se: Option<SeStage<'_, '_>>,
) {
    let (hw, oh, ow) = (g.hw_out(), g.oh, g.ow);
    if !pool {
        for ((o, y), a) in out.chunks_mut(hw).zip(yn.chunks(hw)).zip(aff) {
            for (o, &v) in o.iter_mut().zip(y) {
                o.write(a.apply(v));
            }
        }
        return;
    }
    let (ph, pw) = (oh / 2, ow / 2);
    let phw = ph * pw;
    if phw == 0 {
        return;
    }
    let planes = out.chunks_mut(phw).zip(idx.chunks_mut(phw));
    match se {
        None => {
            for (((o, ix), y), &a) in planes.zip(yn.chunks(hw)).zip(aff) {
                pool_plane(y, ow, (ph, pw), |v| a.apply(v), o, ix);
            }
        }
        Some((d, wt, mut img)) => with_buf(&ZBUF, g.c_out * hw, |z| {
            for ((zr, yr), &a) in z.chunks_mut(hw).zip(yn.chunks(hw)).zip(aff) {
                for (zv, &v) in zr.iter_mut().zip(yr) {
                    *zv = a.apply(v);
                }
            }
            se_excite::forward(d, wt, z, hw, &mut img);
            for (((o, ix), zp), &gc) in planes.zip(z.chunks(hw)).zip(img.g.iter()) {
                pool_plane(zp, ow, (ph, pw), |v| v * gc, o, ix);
            }
        }),
    }
}

thread_local! {
    /// Per-thread buffer for one image's convolution output (evaluation) or its gradient
    /// (backward).
    static IMG: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Per-thread buffer for one image's ReLU output, the input of a fused SE module.
    static ZBUF: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `(Σ dz, Σ dz·(y - m)·is)` over one plane with `dz` masked by the ReLU (`af.apply(y) > 0`),
/// in eight f32 lanes (vectorizes), then f64.
#[inline]
fn masked_sums(dz: &[f32], y: &[f32], af: Affine, is: f32) -> (f64, f64) {
    let (mut a, mut b) = ([0f32; 8], [0f32; 8]);
    let (dc, yc) = (dz.chunks_exact(8), y.chunks_exact(8));
    let (dr, yr) = (dc.remainder(), yc.remainder());
    let term = |dv: f32, yv: f32| {
        let t = yv - af.m;
        let d = if t * af.k + af.b > 0.0 { dv } else { 0.0 };
        (d, d * (t * is))
    };
    for (d8, y8) in dc.zip(yc) {
        for l in 0..8 {
            let (p, q) = term(d8[l], y8[l]);
            a[l] += p;
            b[l] += q;
        }
    }
    for (l, (&dv, &yv)) in dr.iter().zip(yr).enumerate() {
        let (p, q) = term(dv, yv);
        a[l] += p;
        b[l] += q;
    }
    (
        a.iter().map(|&v| v as f64).sum(),
        b.iter().map(|&v| v as f64).sum(),
    )
}

/// The input-plane positions of the maxima of one pooled plane, in output order: `ix` holds the
/// window positions (0..4) of a plane of pooled width `pw`; the input plane has width `ow`.
#[inline(always)]
fn argmax_positions(ix: &[u8], pw: usize, ow: usize) -> impl Iterator<Item = usize> + '_ {
    ix.chunks_exact(pw.max(1))
        .enumerate()
        .flat_map(move |(py, row)| {
            row.iter()
                .enumerate()
                .map(move |(px, &a)| (2 * py + (a >> 1) as usize) * ow + 2 * px + (a & 1) as usize)
        })
}

impl BlockOp {
    fn out_shape(&self, g: &Geom) -> Shape {
        if self.pool {
            Shape::from((g.n, g.c_out, g.oh / 2, g.ow / 2))
        } else {
            Shape::from((g.n, g.c_out, g.oh, g.ow))
        }
    }

    fn out_img(&self, g: &Geom) -> usize {
        if self.pool {
            g.c_out * (g.oh / 2) * (g.ow / 2)
        } else {
            g.out_img()
        }
    }
}

impl BlockOp {
    /// Writes the whole batch's output (`out`, empty with capacity, gets its length) and argmax
    /// indices, parallel over images; `y_of(img, f)` calls `f` with image `img`'s convolution
    /// output.
    fn emit_batch<Y>(
        &self,
        g: &Geom,
        aff: &[Affine],
        out: &mut Vec<f32>,
        argmax: &mut [u8],
        se: Vec<Option<SeStage<'_, '_>>>,
        y_of: Y,
    ) where
        Y: Fn(usize, &mut dyn FnMut(&[f32])) + Sync,
    {
        let out_img = self.out_img(g);
        let n_out = g.n * out_img;
        if n_out > 0 {
            let idx_img = argmax.len() / g.n.max(1);
            out.spare_capacity_mut()[..n_out]
                .par_chunks_mut(out_img)
                .zip(argmax.par_chunks_mut(idx_img))
                .zip(se)
                .enumerate()
                .for_each(|(img, ((on, ixn), se))| {
                    let mut se = Some(se);
                    y_of(img, &mut |yn| {
                        emit_image(yn, g, aff, self.pool, on, ixn, se.take().flatten())
                    });
                });
        }
        // SAFETY: `emit_image` wrote every output element (none when `n_out` is 0: pooling a
        // one-pixel-wide output).
        unsafe { out.set_len(n_out) };
    }
}

impl CustomOp3 for BlockOp {
    fn name(&self) -> &'static str {
        "ablate-conv-bn-relu-pool"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geom::new(l1.shape(), l2.shape(), self.padding)?;
        let (x, wt) = (cpu_f32(s1, l1)?, cpu_f32(s2, l2)?);
        let (c, hw) = (g.c_out, g.hw_out());
        let Unpacked {
            bias,
            gamma,
            beta,
            se: se_params,
        } = unpack(cpu_f32(s3, l3)?, c, self.has_bias, self.se.as_ref())?;
        let se_w = self.se.as_ref().map(|d| SeWeights::unpack(d, se_params));
        let mut se_saved = self.se.as_ref().map(|d| SeSaved::new(d, g.n));
        let out_img = self.out_img(&g);
        let n_out = g.n * out_img;
        let mut out: Vec<f32> = Vec::with_capacity(n_out);
        // One byte per image without pooling, so that the per-image zips below still run.
        let idx_img = if self.pool { out_img.max(1) } else { 1 };
        let mut argmax = vec![0u8; g.n * idx_img];
        let affine = |mean: &[f32], invstd: &[f32]| -> Vec<Affine> {
            (0..c)
                .map(|ch| Affine {
                    m: mean[ch],
                    k: invstd[ch] * gamma[ch],
                    b: beta[ch],
                })
                .collect()
        };
        match &self.mode {
            OpMode::Eval { mean, invstd } => {
                // Each image's convolution output lives only in a per-thread buffer.
                let aff = affine(mean, invstd);
                let views = se_views(&mut se_saved, self.se.as_ref(), se_w.as_ref(), g.n);
                self.emit_batch(&g, &aff, &mut out, &mut argmax, views, |img, f| {
                    with_buf(&IMG, g.out_img(), |buf| {
                        // SAFETY: `forward_image` only writes initialized values.
                        let buf = unsafe { &mut *(buf as *mut [f32] as *mut [MaybeUninit<f32>]) };
                        let xn = &x[img * g.in_img()..(img + 1) * g.in_img()];
                        f(forward_image(&g, xn, wt, &bias, buf))
                    })
                });
            }
            OpMode::Train(cell) => {
                let total = g.n * g.out_img();
                let mut y = scratch::take(total);
                let mut part = vec![(0f64, 0f64); g.n * c];
                y.spare_capacity_mut()[..total]
                    .par_chunks_mut(g.out_img())
                    .zip(x.par_chunks(g.in_img()))
                    .zip(part.par_chunks_mut(c))
                    .for_each(|((yn, xn), pn)| {
                        let yn = forward_image(&g, xn, wt, &bias, yn);
                        for (p, row) in pn.iter_mut().zip(yn.chunks(hw)) {
                            *p = mean_m2(row);
                        }
                    });
                // SAFETY: `forward_image` initialized every element.
                unsafe { y.set_len(total) };
                let [mean, invstd, var_unbiased] = combine(&part, g.n, c, hw, self.eps);
                let aff = affine(&mean, &invstd);
                let views = se_views(&mut se_saved, self.se.as_ref(), se_w.as_ref(), g.n);
                self.emit_batch(&g, &aff, &mut out, &mut argmax, views, |img, f| {
                    f(&y[img * g.out_img()..(img + 1) * g.out_img()])
                });
                *cell.lock().map_err(|_| poisoned())? = Some((mean.clone(), var_unbiased));
                *self.saved.lock().map_err(|_| poisoned())? = Some(Arc::new(Saved {
                    y: Pooled(y),
                    argmax,
                    mean,
                    invstd,
                    se: se_saved,
                }));
            }
        }
        Ok((CpuStorage::F32(out), self.out_shape(&g)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        wt: &Tensor,
        packed: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let need_dx = x.track_op();
        let need_dw = wt.track_op();
        let need_dp = packed.track_op();
        if !(need_dx || need_dw || need_dp) {
            return Ok((None, None, None));
        }
        let saved = self
            .saved
            .lock()
            .map_err(|_| poisoned())?
            .clone()
            .ok_or_else(|| {
                candle_core::Error::Msg(
                    "conv block: backward without a training-mode forward".into(),
                )
            })?;
        let grad = grad.contiguous()?;
        let g = Geom::new(x.shape(), wt.shape(), self.padding)?;
        let (dx, dw, dpacked) = {
            let (sx, lx) = x.storage_and_layout();
            let (sw, lw) = wt.storage_and_layout();
            let (sp, lp) = packed.storage_and_layout();
            let (sr, lr) = res.storage_and_layout();
            let (sg, lg) = grad.storage_and_layout();
            match (&*sx, &*sw, &*sp, &*sr, &*sg) {
                (
                    Storage::Cpu(sx),
                    Storage::Cpu(sw),
                    Storage::Cpu(sp),
                    Storage::Cpu(sr),
                    Storage::Cpu(sg),
                ) => self.backward_cpu(
                    &g,
                    &saved,
                    cpu_f32(sx, lx)?,
                    cpu_f32(sw, lw)?,
                    cpu_f32(sp, lp)?,
                    cpu_f32(sr, lr)?,
                    cpu_f32(sg, lg)?,
                    need_dx,
                )?,
                _ => bail!("conv block: backward of the fast kernel needs cpu tensors"),
            }
        };
        let dev = x.device();
        let dx = match dx {
            Some(dx) if need_dx => Some(Tensor::from_vec(dx, x.shape(), dev)?),
            _ => None,
        };
        let dw = if need_dw {
            Some(Tensor::from_vec(dw, wt.shape(), dev)?)
        } else {
            None
        };
        let dp = if need_dp {
            Some(Tensor::from_vec(dpacked, packed.shape(), dev)?)
        } else {
            None
        };
        Ok((dx, dw, dp))
    }
}

impl BlockOp {
    /// Returns `(dx, dweight, dpacked)`.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn backward_cpu(
        &self,
        g: &Geom,
        saved: &Saved,
        x: &[f32],
        wt: &[f32],
        packed: &[f32],
        res: &[f32],
        grad: &[f32],
        need_dx: bool,
    ) -> Result<(Option<Vec<f32>>, Vec<f32>, Vec<f32>)> {
        let (n, c, hw, ow) = (g.n, g.c_out, g.hw_out(), g.ow);
        let up = unpack(packed, c, self.has_bias, self.se.as_ref())?;
        let gamma = up.gamma;
        let y = &saved.y.0;
        let (mean, invstd) = (&saved.mean, &saved.invstd);
        let out_img = self.out_img(g);
        let plane = out_img / c.max(1);
        let pw = ow / 2;
        if grad.len() != n * out_img || res.len() != n * out_img || y.len() != n * g.out_img() {
            bail!(
                "conv block backward: gradient of {} elements, expected {}",
                grad.len(),
                n * out_img
            )
        }
        if let (Some(d), Some(sv)) = (&self.se, &saved.se) {
            return self.backward_se(g, saved, d, sv, &up, x, wt, grad, need_dx);
        }
        // Pass 1: per channel Σdz and Σdz·x̂, where dz is the gradient at the ReLU's output
        // masked by `output > 0` (f64, image order).
        let sums: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let (m, is) = (mean[ch], invstd[ch]);
                let (mut sa, mut sb) = (0f64, 0f64);
                for img in 0..n {
                    let o0 = (img * c + ch) * plane;
                    let yp = &y[(img * c + ch) * hw..][..hw];
                    let (r, d) = (&res[o0..o0 + plane], &grad[o0..o0 + plane]);
                    if self.pool {
                        let ix = &saved.argmax[o0..o0 + plane];
                        let (mut a, mut b) = (0f32, 0f32);
                        for ((&rv, &dv), pos) in r.iter().zip(d).zip(argmax_positions(ix, pw, ow)) {
                            if rv > 0.0 {
                                let xh = (yp[pos] - m) * is;
                                a += dv;
                                b += dv * xh;
                            }
                        }
                        sa += a as f64;
                        sb += b as f64;
                    } else {
                        let mut a = [0f32; 8];
                        let mut b = [0f32; 8];
                        for (i, ((&rv, &dv), &yv)) in r.iter().zip(d).zip(yp).enumerate() {
                            let dz = if rv > 0.0 { dv } else { 0.0 };
                            a[i % 8] += dz;
                            b[i % 8] += dz * ((yv - m) * is);
                        }
                        sa += a.iter().map(|&v| v as f64).sum::<f64>();
                        sb += b.iter().map(|&v| v as f64).sum::<f64>();
                    }
                }
                (sa, sb)
            })
            .collect();
        let train = matches!(self.mode, OpMode::Train(_));
        let inv_m = 1.0 / (n * hw) as f64;
        // dy = k·dz - ka - (y - m)·kb per channel.
        let coef: Vec<(f32, f32, f32, f32)> = (0..c)
            .map(|ch| {
                let k = gamma[ch] * invstd[ch];
                let (ka, kb) = if train {
                    let (sa, sb) = sums[ch];
                    (
                        (k as f64 * sa * inv_m) as f32,
                        (k as f64 * sb * inv_m * invstd[ch] as f64) as f32,
                    )
                } else {
                    (0.0, 0.0)
                };
                (k, ka, kb, mean[ch])
            })
            .collect();
        let fill = |img: usize, buf: &mut [f32]| {
            for (ch, &(k, ka, kb, m)) in coef.iter().enumerate() {
                let yp = &y[(img * c + ch) * hw..][..hw];
                let dp = &mut buf[ch * hw..(ch + 1) * hw];
                let o0 = (img * c + ch) * plane;
                let (r, d) = (&res[o0..o0 + plane], &grad[o0..o0 + plane]);
                if self.pool {
                    for (dv, &yv) in dp.iter_mut().zip(yp) {
                        *dv = -ka - (yv - m) * kb;
                    }
                    let ix = &saved.argmax[o0..o0 + plane];
                    for ((&rv, &gv), pos) in r.iter().zip(d).zip(argmax_positions(ix, pw, ow)) {
                        if rv > 0.0 {
                            dp[pos] += k * gv;
                        }
                    }
                } else {
                    for (((dv, &yv), &rv), &gv) in dp.iter_mut().zip(yp).zip(r).zip(d) {
                        let dz = if rv > 0.0 { gv } else { 0.0 };
                        *dv = k * dz - ka - (yv - m) * kb;
                    }
                }
            }
        };
        let out = g.out_img();
        let grads = backward_cpu_with(g, x, wt, need_dx, |img, f| {
            with_buf(&IMG, out, |buf| {
                fill(img, buf);
                f(buf)
            })
        });
        let mut dpacked = Vec::with_capacity(if self.has_bias { 3 * c } else { 2 * c });
        if self.has_bias {
            dpacked.extend_from_slice(&grads.db);
        }
        dpacked.extend(sums.iter().map(|s| s.1 as f32));
        dpacked.extend(sums.iter().map(|s| s.0 as f32));
        Ok((grads.dx, grads.dw, dpacked))
    }
}

impl BlockOp {
    /// The backward with a fused SE module between ReLU and pool. Two passes over the images:
    /// the first computes the gate gradient, the SE module's backward (descriptor and parameter
    /// gradients) and the per-image BatchNorm sums; the second recomputes each image's
    /// ReLU-output gradient and feeds the convolution backward.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn backward_se(
        &self,
        g: &Geom,
        saved: &Saved,
        d: &SeDims,
        sv: &SeSaved,
        up: &Unpacked<'_>,
        x: &[f32],
        wt: &[f32],
        grad: &[f32],
        need_dx: bool,
    ) -> Result<(Option<Vec<f32>>, Vec<f32>, Vec<f32>)> {
        let (n, c, hw, ow) = (g.n, g.c_out, g.hw_out(), g.ow);
        let (y, argmax) = (&saved.y.0, &saved.argmax);
        let (mean, invstd) = (&saved.mean, &saved.invstd);
        let plane = (g.oh / 2) * (g.ow / 2);
        let pw = ow / 2;
        let nb = d.branches();
        let has_avg = matches!(d.squeeze, Squeeze::Avg | Squeeze::AvgMax);
        let max_branch = match d.squeeze {
            Squeeze::Avg => None,
            Squeeze::Max => Some(0),
            Squeeze::AvgMax => Some(1),
        };
        let wts = SeWeights::unpack(d, up.se);
        let aff: Vec<Affine> = (0..c)
            .map(|ch| Affine {
                m: mean[ch],
                k: invstd[ch] * up.gamma[ch],
                b: up.beta[ch],
            })
            .collect();
        // dz at the ReLU's output of image `img`, not yet masked by `z > 0`, into `buf`
        // ([C, hw]).
        let fill_dz = |img: usize, ds: &[f32], buf: &mut [f32]| {
            for ch in 0..c {
                let row = &mut buf[ch * hw..(ch + 1) * hw];
                row.fill(if has_avg { ds[ch] / hw as f32 } else { 0.0 });
                if let Some(b) = max_branch {
                    row[sv.maxpos[img * c + ch] as usize] += ds[b * c + ch];
                }
                let gc = sv.g[img * c + ch];
                let o0 = (img * c + ch) * plane;
                let positions = argmax_positions(&argmax[o0..o0 + plane], pw, ow);
                for (&gv, pos) in grad[o0..o0 + plane].iter().zip(positions) {
                    row[pos] += gv * gc;
                }
            }
        };
        // Pass 1, per image: gate gradient, SE backward, BatchNorm sums.
        type PerImage = (Vec<(f64, f64)>, Vec<f32>, Vec<f32>);
        let per_image: Vec<PerImage> = (0..n)
            .into_par_iter()
            .map(|img| {
                let mut dg = vec![0f32; c];
                for (ch, dgc) in dg.iter_mut().enumerate() {
                    let o0 = (img * c + ch) * plane;
                    let yrow = &y[(img * c + ch) * hw..][..hw];
                    let positions = argmax_positions(&argmax[o0..o0 + plane], pw, ow);
                    for (&gv, pos) in grad[o0..o0 + plane].iter().zip(positions) {
                        *dgc += gv * aff[ch].apply(yrow[pos]);
                    }
                }
                let mut ds = vec![0f32; nb * c];
                let mut dparams = vec![0f32; d.n_params()];
                let (bs, bh) = (nb * c, nb * d.hidden());
                se_excite::backward(
                    d,
                    &wts,
                    &sv.s[img * bs..(img + 1) * bs],
                    &sv.h[img * bh..(img + 1) * bh],
                    &sv.pre[img * c..(img + 1) * c],
                    &sv.g[img * c..(img + 1) * c],
                    &dg,
                    &mut ds,
                    &mut dparams,
                );
                let sums = with_buf(&IMG, c * hw, |buf| {
                    fill_dz(img, &ds, buf);
                    (0..c)
                        .map(|ch| {
                            let yrow = &y[(img * c + ch) * hw..][..hw];
                            masked_sums(&buf[ch * hw..(ch + 1) * hw], yrow, aff[ch], invstd[ch])
                        })
                        .collect()
                });
                (sums, ds, dparams)
            })
            .collect();
        // Combine in image order.
        let mut sums = vec![(0f64, 0f64); c];
        let mut dse = vec![0f32; d.n_params()];
        for (ps, _, dp) in &per_image {
            for (s, p) in sums.iter_mut().zip(ps) {
                s.0 += p.0;
                s.1 += p.1;
            }
            for (a, b) in dse.iter_mut().zip(dp) {
                *a += b;
            }
        }
        let inv_m = 1.0 / (n * hw) as f64;
        let coef: Vec<(f32, f32, f32)> = (0..c)
            .map(|ch| {
                let k = up.gamma[ch] * invstd[ch];
                let (sa, sb) = sums[ch];
                (
                    k,
                    (k as f64 * sa * inv_m) as f32,
                    (k as f64 * sb * inv_m * invstd[ch] as f64) as f32,
                )
            })
            .collect();
        let out = g.out_img();
        let grads = backward_cpu_with(g, x, wt, need_dx, |img, f| {
            with_buf(&IMG, out, |buf| {
                fill_dz(img, &per_image[img].1, buf);
                for (ch, &(k, ka, kb)) in coef.iter().enumerate() {
                    let a = aff[ch];
                    let yrow = &y[(img * c + ch) * hw..][..hw];
                    for (dv, &yv) in buf[ch * hw..(ch + 1) * hw].iter_mut().zip(yrow) {
                        // ReLU mask, branch-free: `a.apply(yv) > 0` without the `max`.
                        let t = yv - a.m;
                        let dz = if t * a.k + a.b > 0.0 { *dv } else { 0.0 };
                        *dv = k * dz - ka - t * kb;
                    }
                }
                f(buf)
            })
        });
        let mut dpacked = Vec::with_capacity(up.bias.len() * 3 + dse.len());
        if self.has_bias {
            dpacked.extend_from_slice(&grads.db);
        }
        dpacked.extend(sums.iter().map(|s| s.1 as f32));
        dpacked.extend(sums.iter().map(|s| s.0 as f32));
        dpacked.extend_from_slice(&dse);
        Ok((grads.dx, grads.dw, dpacked))
    }
}

fn poisoned() -> candle_core::Error {
    candle_core::Error::Msg("conv block: lock poisoned".into())
}
