//! One block of the seed CNN, convolution -> BatchNorm2d -> ReLU, optionally followed by a
//! 2x2 max-pool with, before it, a channel-attention module (SE or ECA: [`ChannelGate`]), as a
//! single candle custom op with a CPU forward and backward. Without pool and gate the ReLU is
//! optional ([`conv_bn_train`]: a residual unit's conv2 -> bn2 when a module follows bn2), and in
//! evaluation `eval.rs` ([`conv_bn_eval`]) also adds a residual unit's shortcut and its SE or
//! ECA module.
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
//!   (`super::conv::backward_cpu_with`): the dense `dy` of the whole batch never exists.
//!
//! With a channel gate, the forward keeps each image's descriptors, hidden activations and gate
//! values (a few hundred floats), and the backward makes two passes over the images: the gate
//! and its module's gradients plus the BatchNorm sums, then the convolution backward
//! (`backward.rs`, `super::channel_gate`).
//!
//! The parameters travel as one packed tensor `[bias (if any), γ, β, gate module's]`
//! (candle's custom ops take at most three arguments); [`conv_bn_relu_train`] builds it with
//! `Tensor::cat`, whose backward splits the packed gradient again.
//!
//! On a non-CPU device, for non-f32 tensors, in evaluation mode with an input that takes part in
//! autograd, the functions compose the reference ops instead ([`conv_bn_relu_reference`]).
//!
//! Code map: this file holds the API (parameters, the training, evaluation and reference
//! entry points); `op.rs` the custom op and its forward; `backward.rs` its backward passes;
//! `eval.rs` the evaluation-only op of a residual unit's second half.

mod backward;
mod eval;
mod op;
mod residual;

use std::sync::{Arc, Mutex};

use candle_core::{bail, Result, Tensor};

use super::bn_relu::{batch_norm_eval_reference, batch_norm_train_reference, BatchStats, Stats};
use super::channel_gate::{Excite, GateDims};
use super::conv::{conv2d_reference_strided, Geom};
use super::kernels::Kernels;
use super::maxpool::max_pool2x2;
use crate::attention::{scale_channels, squeeze_channels};
use crate::layers::apply_gate;
use crate::spec::{GateFunction, Squeeze};
pub use eval::{conv_bn_eval, Epilogue};
use op::{BlockOp, OpMode};
pub use residual::conv_bn_add_relu_train;
/// One 2x2 max-pooled plane with its window argmax, and the positions back (shared with
/// `super::cbam`).
pub(crate) use {backward::argmax_positions, op::pool_plane};

/// The parameters of one block.
#[derive(Debug, Clone, Copy)]
pub struct BlockParams<'a> {
    /// Convolution weight `[Cout, Cin, k, k]`.
    pub weight: &'a Tensor,
    /// Convolution bias `[Cout]`, if the convolution has one.
    pub bias: Option<&'a Tensor>,
    /// Zero padding on each side of the convolution's input.
    pub padding: usize,
    /// The convolution's stride (1; 2 in a ResNet's downsampling units).
    pub stride: usize,
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
    pub(crate) fn tensors(&self) -> Vec<&'a Tensor> {
        match *self {
            ChannelGate::Se(se) => se.tensors(),
            ChannelGate::Eca(eca) => [Some(eca.weight), eca.bias].into_iter().flatten().collect(),
        }
    }

    /// The module's sizes, checked against a map of `c` channels (`what` names the op in the
    /// error).
    pub(crate) fn dims(&self, c: usize, what: &str) -> Result<GateDims> {
        let eca = match self {
            ChannelGate::Se(se) => return se.dims(c, what),
            ChannelGate::Eca(eca) => eca,
        };
        let k = match eca.weight.dims() {
            &[1, 1, k] if k % 2 == 1 => k,
            d => bail!("{what}: ECA weight {d:?}, expected [1, 1, k] with k odd"),
        };
        let bias = match eca.bias {
            Some(b) if b.dims() == [1] => true,
            Some(b) => bail!("{what}: ECA bias {:?}, expected [1]", b.dims()),
            None => false,
        };
        Ok(GateDims {
            c,
            excite: Excite::Conv1d { kernel: k },
            squeeze: eca.squeeze,
            gate: eca.gate,
            bias,
        })
    }

    fn squeeze(&self) -> Squeeze {
        match self {
            ChannelGate::Se(se) => se.squeeze,
            ChannelGate::Eca(eca) => eca.squeeze,
        }
    }

    fn gate_fn(&self) -> GateFunction {
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
    pub gate: GateFunction,
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
    pub gate: GateFunction,
}

impl<'a> SeParams<'a> {
    /// The tensors in packed order: `w1`, `b1`, `w2`, `b2` (biases if any).
    pub(crate) fn tensors(&self) -> Vec<&'a Tensor> {
        [Some(self.w1), self.b1, Some(self.w2), self.b2]
            .into_iter()
            .flatten()
            .collect()
    }

    /// The module's sizes, checked against a map of `c` channels (`what` names the op in the
    /// error).
    pub(crate) fn dims(&self, c: usize, what: &str) -> Result<GateDims> {
        let (hidden, wc) = self.w1.dims2()?;
        if wc != c || self.w2.dims() != [c, hidden] {
            bail!(
                "{what}: squeeze-and-excitation weights {:?} and {:?} for {c} channels",
                self.w1.dims(),
                self.w2.dims()
            )
        }
        let bias = match (self.b1, self.b2) {
            (Some(b1), Some(b2)) if b1.dims() == [hidden] && b2.dims() == [c] => true,
            (None, None) => false,
            _ => bail!(
                "{what}: squeeze-and-excitation biases must both be given, [{hidden}] and [{c}]"
            ),
        };
        Ok(GateDims {
            c,
            excite: Excite::Mlp { hidden },
            squeeze: self.squeeze,
            gate: self.gate,
            bias,
        })
    }
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
    fn gate_dims(&self, c: usize) -> Result<Option<GateDims>> {
        let Some(gate) = &self.gate else {
            return Ok(None);
        };
        if !self.pool {
            bail!("conv block: a fused channel attention needs the pool after it")
        }
        gate.dims(c, "conv block").map(Some)
    }

    fn check(&self, x: &Tensor) -> Result<Geom> {
        let g = Geom::strided(x.shape(), self.weight.shape(), self.padding, self.stride)?;
        let c = g.c_out;
        self.gate_dims(c)?;
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
/// `x`: `[N, Cin, H, W]`; returns `[N, Cout, H', W']` (`H' = (H + 2p - k) / stride + 1`), or
/// `[N, Cout, H'/2, W'/2]` (floor) with `pool`, and two `[Cout]` statistics.
pub fn conv_bn_relu_train(x: &Tensor, p: &BlockParams<'_>) -> Result<(Tensor, BatchStats)> {
    conv_bn_train(x, p, true)
}

/// [`conv_bn_relu_train`] with the ReLU only if `relu`: without it, `conv -> BN` (a residual
/// unit's second convolution when an attention module follows its BatchNorm). Without the ReLU,
/// `p` must have neither `pool` nor `gate`.
///
/// # Shapes
/// As [`conv_bn_relu_train`].
pub fn conv_bn_train(x: &Tensor, p: &BlockParams<'_>, relu: bool) -> Result<(Tensor, BatchStats)> {
    if !relu && (p.pool || p.gate.is_some()) {
        bail!("conv block: a pool or a channel gate needs the ReLU")
    }
    if !(x.device().is_cpu() && x.dtype() == candle_core::DType::F32) {
        return conv_bn_reference(x, p, None, Kernels::Generic, relu);
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
        relu,
        ..BlockOp::new(p, g.c_out, OpMode::Train(stats.clone()))?
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
        let kernels = if x.device().is_cpu() {
            Kernels::Reference
        } else {
            Kernels::Generic
        };
        return conv_bn_relu_reference(x, p, Some((running_mean, running_var)), kernels)
            .map(|r| r.0);
    }
    if !p.pool && p.gate.is_none() {
        // The BatchNorm and the ReLU as the convolution kernel stores each value.
        let relu = Epilogue {
            gate: None,
            residual: None,
            relu: true,
        };
        return conv_bn_eval(x, p, running_mean, running_var, relu, Kernels::Fast);
    }
    let g = p.check(x)?;
    let Stats { mean, invstd, .. } = Stats::running(running_mean, running_var, g.c_out, p.eps)
        .map_err(|e| e.context("conv block"))?;
    let op = BlockOp::new(p, g.c_out, OpMode::Eval { mean, invstd })?;
    x.contiguous()?
        .apply_op3_no_bwd(&p.weight.contiguous()?, &p.packed()?, &op)
}

impl BlockOp {
    /// The op for parameters `p` of a block with `c` output channels.
    fn new(p: &BlockParams<'_>, c: usize, mode: OpMode) -> Result<BlockOp> {
        Ok(BlockOp {
            padding: p.padding,
            stride: p.stride,
            eps: p.eps,
            pool: p.pool,
            relu: true,
            has_bias: p.bias.is_some(),
            gate: p.gate_dims(c)?,
            mode,
            saved: Mutex::new(None),
        })
    }
}

/// The composition of separate ops the fused op replaces: the convolution, the plain-candle
/// BatchNorm + ReLU, the channel gate and [`max_pool2x2`] with `pool`, each as `kernels`
/// computes it off the fast path ([`Kernels::Reference`]: candle's ops and our CPU max-pool;
/// [`Kernels::Generic`]: the device-generic ops). `running` selects evaluation mode. In
/// training mode the batch statistics are returned.
///
/// # Shapes
/// As [`conv_bn_relu_train`].
pub fn conv_bn_relu_reference(
    x: &Tensor,
    p: &BlockParams<'_>,
    running: Option<(&Tensor, &Tensor)>,
    kernels: Kernels,
) -> Result<(Tensor, BatchStats)> {
    conv_bn_reference(x, p, running, kernels, true)
}

/// [`conv_bn_relu_reference`] with the ReLU only if `relu`.
pub fn conv_bn_reference(
    x: &Tensor,
    p: &BlockParams<'_>,
    running: Option<(&Tensor, &Tensor)>,
    kernels: Kernels,
    relu: bool,
) -> Result<(Tensor, BatchStats)> {
    let y = if kernels.use_generic(x.device()) {
        super::generic::conv2d_strided(x, p.weight, p.bias, p.padding, p.stride)?
    } else {
        conv2d_reference_strided(x, p.weight, p.bias, p.padding, p.stride)?
    };
    let (z, stats) = match running {
        None => batch_norm_train_reference(&y, p.gamma, p.beta, p.eps, relu, kernels)?,
        Some((rm, rv)) => {
            let z = batch_norm_eval_reference(&y, p.gamma, p.beta, rm, rv, p.eps, relu, kernels)?;
            let stats = BatchStats {
                mean: rm.clone(),
                var_unbiased: rv.clone(),
            };
            (z, stats)
        }
    };
    let z = match &p.gate {
        Some(gate) => gate_reference(&z, gate, kernels)?,
        None => z,
    };
    let z = if p.pool { max_pool2x2(&z, kernels)? } else { z };
    Ok((z, stats))
}

/// `z` scaled by the channel gate computed from it, composed of separate ops on the path
/// `kernels` selects (the reference of the fused ops' gate).
///
/// # Shapes
/// `z`: `[N, C, H, W]` -> same.
pub(super) fn gate_reference(
    z: &Tensor,
    gate: &ChannelGate<'_>,
    kernels: Kernels,
) -> Result<Tensor> {
    let (first, second) = squeeze_channels(z, gate.squeeze(), kernels)?;
    let excite = |s: &Tensor| -> Result<Tensor> {
        match gate {
            ChannelGate::Se(se) => {
                let h = s.matmul(&se.w1.t()?)?;
                let h = match se.b1 {
                    Some(b) => h.broadcast_add(b)?,
                    None => h,
                };
                let o = kernels.relu(&h)?.matmul(&se.w2.t()?)?;
                match se.b2 {
                    Some(b) => o.broadcast_add(b),
                    None => Ok(o),
                }
            }
            ChannelGate::Eca(eca) if kernels.use_generic(s.device()) => {
                super::generic::conv1d_channels(s, eca.weight, eca.bias)
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
    scale_channels(z, &apply_gate(&pre, gate.gate_fn(), kernels)?)
}
