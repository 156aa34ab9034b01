//! Evaluation mode of a residual unit's second half (He et al., "Deep Residual Learning for
//! Image Recognition", CVPR 2016, Fig. 2): convolution -> BatchNorm with the running statistics
//! [-> channel gate] [-> + shortcut] [-> ReLU], `f(z·g(z) [+ r])` with
//! `z = (conv(x) - mean)·γ/σ + β`, per image. The channel gate is SE or ECA at the standard
//! integration point of J. Hu et al., "Squeeze-and-Excitation Networks", TPAMI 2019, Fig. 5.
//!
//! Composed, the convolution writes its whole-batch output to memory and the BatchNorm (or
//! `bn_add_relu`) op reads it back. Here the convolution kernel applies the BatchNorm, the
//! residual and the ReLU to each value as it stores it (`crate::ops::conv::Store`); with a
//! gate, which needs the whole normalized map first, each image's convolution output lives in a
//! per-thread buffer (cache-sized: `C·H·W` floats) and the output is written from it. The
//! arithmetic is the composed ops', term for term: `((v - m)·k + b + r).max(0)` with
//! `k = γ·invstd` (with a gate, `z` is stored, the gate computed from it as the attention op
//! does, `super::channel_gate`, then `(z·g + r).max(0)`), so the result is bit-identical to
//! them; images run in parallel, each in a fixed order.
//!
//! No backward: with an input or a parameter that takes part in autograd, on a non-CPU device,
//! for non-f32 tensors or off [`Kernels::Fast`], [`conv_bn_eval`] composes the separate ops.

use std::mem::MaybeUninit;

use candle_core::{bail, Result, Storage, Tensor};
use rayon::prelude::*;

use super::op::{GateSaved, IMG};
use super::{gate_reference, BlockParams, ChannelGate};
use crate::ops::bn_relu::{batch_norm_eval, Stats};
use crate::ops::channel_gate::{self, GateDims, GateWeights};
use crate::ops::conv::{
    conv2d_strided, forward_image, forward_image_store, with_buf, Filters, Store,
};
use crate::ops::kernels::{cpu_f32, Kernels};
use crate::ops::residual::add_relu;

/// What follows the BatchNorm: a channel gate, the shortcut to add, and whether a ReLU ends it.
#[derive(Debug, Clone, Copy)]
pub struct Epilogue<'a> {
    /// SE or ECA on the BatchNorm's output, before the addition.
    pub gate: Option<ChannelGate<'a>>,
    /// Added after the BatchNorm (`[N, Cout, H', W']`).
    pub residual: Option<&'a Tensor>,
    /// Whether a ReLU follows (after the addition).
    pub relu: bool,
}

/// `f(z·g(z) [+ residual])`, `z = (conv(x) - mean)·γ/σ + β` with the running statistics, `g`
/// the channel gate (if any) and `f` the ReLU or the identity, as `epilogue` says. `p` must have
/// neither `pool` nor `gate` (the block op's gate follows a ReLU; this one the BatchNorm).
///
/// # Shapes
/// `x`: `[N, Cin, H, W]`; `running_mean`, `running_var`: `[Cout]`; returns
/// `[N, Cout, H', W']` (`H' = (H + 2p - k) / stride + 1`), the residual's shape.
pub fn conv_bn_eval(
    x: &Tensor,
    p: &BlockParams<'_>,
    running_mean: &Tensor,
    running_var: &Tensor,
    epilogue: Epilogue<'_>,
    kernels: Kernels,
) -> Result<Tensor> {
    if p.pool || p.gate.is_some() {
        bail!("conv_bn_eval: a block with a pool or a channel gate runs the block op")
    }
    let gate_tensors = epilogue.gate.map(|g| g.tensors()).unwrap_or_default();
    let tracked = [
        Some(x),
        Some(p.weight),
        p.bias,
        Some(p.gamma),
        Some(p.beta),
        epilogue.residual,
    ]
    .into_iter()
    .flatten()
    .chain(gate_tensors.iter().copied())
    .any(Tensor::track_op);
    let fast = kernels.use_fast(x.device(), x.dtype())
        && epilogue
            .residual
            .is_none_or(|r| kernels.use_fast(r.device(), r.dtype()));
    if tracked || !fast {
        return composed(x, p, running_mean, running_var, epilogue, kernels);
    }
    let g = p.check(x)?;
    let stats = Stats::running(running_mean, running_var, g.c_out, p.eps)?;
    if let Some(r) = epilogue.residual {
        if r.dims() != [g.n, g.c_out, g.oh, g.ow] {
            bail!(
                "conv_bn_eval: residual {:?}, expected {:?}",
                r.dims(),
                [g.n, g.c_out, g.oh, g.ow]
            )
        }
    }
    let x = x.contiguous()?;
    let weight = p.weight.contiguous()?;
    let residual = epilogue.residual.map(Tensor::contiguous).transpose()?;
    let bias = match p.bias {
        Some(b) => b.flatten_all()?.to_vec1::<f32>()?,
        None => vec![0.0; g.c_out],
    };
    let (gamma, beta) = (p.gamma.to_vec1::<f32>()?, p.beta.to_vec1::<f32>()?);
    let gate = match &epilogue.gate {
        Some(gate) => {
            let dims = gate.dims(g.c_out, "conv_bn_eval")?;
            let mut packed = Vec::with_capacity(dims.n_params());
            for t in &gate_tensors {
                packed.extend(t.flatten_all()?.to_vec1::<f32>()?);
            }
            Some((dims, packed))
        }
        None => None,
    };
    let gate = gate.as_ref().map(|(d, w)| (d, GateWeights::unpack(d, w)));
    // Per channel (m, k, b) of `(v - m)·k + b`, as the BatchNorm ops compute it.
    let affine: Vec<(f32, f32, f32)> = (0..g.c_out)
        .map(|ch| (stats.mean[ch], stats.invstd[ch] * gamma[ch], beta[ch]))
        .collect();
    let out = {
        let (sx, lx) = x.storage_and_layout();
        let (sw, lw) = weight.storage_and_layout();
        let res = residual.as_ref().map(|r| r.storage_and_layout());
        let (Storage::Cpu(sx), Storage::Cpu(sw)) = (&*sx, &*sw) else {
            bail!("conv_bn_eval: the fast kernel needs cpu tensors")
        };
        let r = match &res {
            Some((sr, lr)) => match &**sr {
                Storage::Cpu(sr) => Some(cpu_f32(sr, lr)?),
                _ => bail!("conv_bn_eval: the fast kernel needs cpu tensors"),
            },
            None => None,
        };
        let (x, wt) = (cpu_f32(sx, lx)?, cpu_f32(sw, lw)?);
        let wt = &Filters::new(&g, wt);
        let (out_img, in_img) = (g.out_img(), g.in_img());
        let total = g.n * out_img;
        let mut out: Vec<f32> = Vec::with_capacity(total);
        out.spare_capacity_mut()[..total]
            .par_chunks_mut(out_img.max(1))
            .enumerate()
            .for_each(|(img, on)| {
                let xn = &x[img * in_img..(img + 1) * in_img];
                let rn = r.map(|r| &r[img * out_img..(img + 1) * out_img]);
                let Some((d, w)) = &gate else {
                    // The BatchNorm, the residual and the ReLU as the kernel stores each value.
                    let store = Store {
                        affine: Some(&affine),
                        residual: rn,
                        relu: epilogue.relu,
                    };
                    forward_image_store(&g, xn, wt, &bias, store, on);
                    return;
                };
                with_buf(&IMG, out_img, |buf| {
                    // SAFETY: `forward_image` only writes initialized values.
                    let buf = unsafe { &mut *(buf as *mut [f32] as *mut [MaybeUninit<f32>]) };
                    let yn = forward_image(&g, xn, wt, &bias, buf);
                    emit_gated(yn, rn, &affine, (d, w), epilogue.relu, on);
                });
            });
        // SAFETY: the kernel or `emit_gated` wrote every element of every image.
        unsafe { out.set_len(total) };
        out
    };
    Tensor::from_vec(out, (g.n, g.c_out, g.oh, g.ow), x.device())
}

/// One image's output with a channel gate, from its convolution output `y` (`[C, hw]`): `y`
/// becomes `z = (y - m)·k + b`, the gate is computed from it, then `f(z·g [+ r])` is written.
fn emit_gated(
    y: &mut [f32],
    r: Option<&[f32]>,
    affine: &[(f32, f32, f32)],
    (d, w): (&GateDims, &GateWeights<'_>),
    relu: bool,
    out: &mut [MaybeUninit<f32>],
) {
    let hw = y.len() / affine.len().max(1);
    for (plane, &(m, k, b)) in y.chunks_mut(hw.max(1)).zip(affine) {
        for v in plane.iter_mut() {
            *v = (*v - m) * k + b;
        }
    }
    let mut saved = GateSaved::new(d, 1);
    let mut views = saved.images(d);
    let Some(img) = views.first_mut() else {
        return;
    };
    channel_gate::forward(d, w, y, hw, img);
    for (ch, &gc) in img.g.iter().enumerate() {
        let rows = ch * hw..(ch + 1) * hw;
        let (o, z) = (&mut out[rows.clone()], &y[rows.clone()]);
        match (r.map(|r| &r[rows]), relu) {
            (Some(r), true) => {
                for ((o, &v), &rv) in o.iter_mut().zip(z).zip(r) {
                    o.write((v * gc + rv).max(0.0));
                }
            }
            (Some(r), false) => {
                for ((o, &v), &rv) in o.iter_mut().zip(z).zip(r) {
                    o.write(v * gc + rv);
                }
            }
            (None, true) => {
                for (o, &v) in o.iter_mut().zip(z) {
                    o.write((v * gc).max(0.0));
                }
            }
            (None, false) => {
                for (o, &v) in o.iter_mut().zip(z) {
                    o.write(v * gc);
                }
            }
        }
    }
}

/// The separate ops: the convolution, the BatchNorm (with the ReLU when nothing follows), the
/// channel gate, then the addition and the ReLU, each on the path `kernels` selects.
fn composed(
    x: &Tensor,
    p: &BlockParams<'_>,
    running_mean: &Tensor,
    running_var: &Tensor,
    epilogue: Epilogue<'_>,
    kernels: Kernels,
) -> Result<Tensor> {
    let y = conv2d_strided(x, p.weight, p.bias, p.padding, p.stride, kernels)?;
    let fused_relu = epilogue.relu && epilogue.residual.is_none() && epilogue.gate.is_none();
    let z = batch_norm_eval(
        &y,
        p.gamma,
        p.beta,
        running_mean,
        running_var,
        p.eps,
        fused_relu,
        kernels,
    )?;
    let z = match &epilogue.gate {
        Some(gate) => gate_reference(&z, gate, kernels)?,
        None => z,
    };
    match (epilogue.residual, epilogue.relu) {
        (Some(r), true) => add_relu(&z, r, kernels),
        (Some(r), false) => z + r,
        (None, true) if !fused_relu => kernels.relu(&z),
        (None, _) => Ok(z),
    }
}
