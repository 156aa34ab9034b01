//! Evaluation mode of a residual unit's second half (He et al., "Deep Residual Learning for
//! Image Recognition", CVPR 2016, Fig. 2): convolution -> BatchNorm with the running statistics
//! [-> + shortcut] [-> ReLU], `f((conv(x) - mean)·γ/σ + β [+ r])`, per image.
//!
//! Composed, the convolution writes its whole-batch output to memory and the BatchNorm (or
//! `bn_add_relu`) op reads it back. Here each image's convolution output lives only in a
//! per-thread buffer (cache-sized: `C·H·W` floats) and the output is written from it in the same
//! task, as the block op's evaluation mode does for `conv -> BN -> ReLU`. The arithmetic is the
//! composed ops', term for term: `((v - m)·k + b + r).max(0)` with `k = γ·invstd`, so the result
//! is bit-identical to them; images run in parallel, each in a fixed order.
//!
//! No backward: with an input or a parameter that takes part in autograd, on a non-CPU device,
//! for non-f32 tensors or off [`Kernels::Fast`], [`conv_bn_eval`] composes the separate ops.

use std::mem::MaybeUninit;

use candle_core::{bail, Result, Storage, Tensor};
use rayon::prelude::*;

use super::op::IMG;
use super::BlockParams;
use crate::ops::bn_relu::{batch_norm_eval, Stats};
use crate::ops::conv::{conv2d_strided, forward_image, with_buf};
use crate::ops::kernels::{cpu_f32, Kernels};
use crate::ops::residual::add_relu;

/// What follows the BatchNorm: the shortcut to add, and whether a ReLU ends it.
#[derive(Debug, Clone, Copy)]
pub struct Epilogue<'a> {
    /// Added after the BatchNorm (`[N, Cout, H', W']`).
    pub residual: Option<&'a Tensor>,
    /// Whether a ReLU follows (after the addition).
    pub relu: bool,
}

/// `f((conv(x) - mean)·γ/σ + β [+ residual])` with the running statistics, `f` the ReLU or the
/// identity as `epilogue` says. `p` must have neither `pool` nor `gate`.
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
        let (out_img, in_img) = (g.out_img(), g.in_img());
        let total = g.n * out_img;
        let mut out: Vec<f32> = Vec::with_capacity(total);
        out.spare_capacity_mut()[..total]
            .par_chunks_mut(out_img.max(1))
            .enumerate()
            .for_each(|(img, on)| {
                let xn = &x[img * in_img..(img + 1) * in_img];
                let rn = r.map(|r| &r[img * out_img..(img + 1) * out_img]);
                with_buf(&IMG, out_img, |buf| {
                    // SAFETY: `forward_image` only writes initialized values.
                    let buf = unsafe { &mut *(buf as *mut [f32] as *mut [MaybeUninit<f32>]) };
                    let yn = forward_image(&g, xn, wt, &bias, buf);
                    emit(yn, rn, &affine, g.hw_out(), epilogue.relu, on);
                });
            });
        // SAFETY: `emit` wrote every element of every image.
        unsafe { out.set_len(total) };
        out
    };
    Tensor::from_vec(out, (g.n, g.c_out, g.oh, g.ow), x.device())
}

/// One image's output from its convolution output `y` (`[C, hw]`): `f((v - m)·k + b [+ r])`.
fn emit(
    y: &[f32],
    r: Option<&[f32]>,
    affine: &[(f32, f32, f32)],
    hw: usize,
    relu: bool,
    out: &mut [MaybeUninit<f32>],
) {
    for (ch, &(m, k, b)) in affine.iter().enumerate() {
        let rows = ch * hw..(ch + 1) * hw;
        let (o, y) = (&mut out[rows.clone()], &y[rows.clone()]);
        match (r.map(|r| &r[rows]), relu) {
            (Some(r), true) => {
                for ((o, &v), &rv) in o.iter_mut().zip(y).zip(r) {
                    o.write(((v - m) * k + b + rv).max(0.0));
                }
            }
            (Some(r), false) => {
                for ((o, &v), &rv) in o.iter_mut().zip(y).zip(r) {
                    o.write((v - m) * k + b + rv);
                }
            }
            (None, true) => {
                for (o, &v) in o.iter_mut().zip(y) {
                    o.write(((v - m) * k + b).max(0.0));
                }
            }
            (None, false) => {
                for (o, &v) in o.iter_mut().zip(y) {
                    o.write((v - m) * k + b);
                }
            }
        }
    }
}

/// The separate ops: the convolution, the BatchNorm (with the ReLU when nothing is added), then
/// the addition and the ReLU, each on the path `kernels` selects.
fn composed(
    x: &Tensor,
    p: &BlockParams<'_>,
    running_mean: &Tensor,
    running_var: &Tensor,
    epilogue: Epilogue<'_>,
    kernels: Kernels,
) -> Result<Tensor> {
    let y = conv2d_strided(x, p.weight, p.bias, p.padding, p.stride, kernels)?;
    let fused_relu = epilogue.relu && epilogue.residual.is_none();
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
    match (epilogue.residual, epilogue.relu) {
        (Some(r), true) => add_relu(&z, r, kernels),
        (Some(r), false) => z + r,
        (None, _) => Ok(z),
    }
}
