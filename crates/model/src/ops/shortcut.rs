//! The option-A shortcut of a CIFAR ResNet (K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual
//! Learning for Image Recognition", CVPR 2016, Sec. 3.3 and 4.2): the identity subsampled with
//! stride 2, the channels it lacks zero.
//!
//! With [`Kernels::Fast`] on the CPU (f32) it is one custom op whose forward writes the output
//! in one pass and whose backward scatters the gradient of the kept positions into the input's
//! (candle's composition is a strided copy, a padding copy and, in the backward, the adjoints
//! of both plus a zeroed gradient per node). Elsewhere it is the composition of candle ops
//! ([`subsample_zero_pad_reference`]), whose gradients are right on every device.

use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::kernels::{cpu_f32, Kernels};

/// Option A as `kernels` computes it: `x[:, :, ::2, ::2]`, then `(Cout - Cin) / 2` zero channels
/// before and the rest after (see [`subsample_zero_pad_reference`]).
///
/// # Shapes
/// x: `[B, Cin, H, W]` -> `[B, Cout, ceil(H / 2), ceil(W / 2)]`.
pub fn subsample_zero_pad(x: &Tensor, out_channels: usize, kernels: Kernels) -> Result<Tensor> {
    if !kernels.use_fast(x.device(), x.dtype()) {
        return subsample_zero_pad_reference(x, out_channels);
    }
    let (_, c, _, _) = x.dims4()?;
    if out_channels < c {
        bail!("option-A shortcut: {c} channels cannot be padded to {out_channels}");
    }
    x.contiguous()?.apply_op1(SubsamplePad {
        out_channels,
        front: (out_channels - c) / 2,
    })
}

/// The custom op: `out[b, front + c, i, j] = x[b, c, 2i, 2j]`, zero elsewhere.
struct SubsamplePad {
    out_channels: usize,
    front: usize,
}

impl CustomOp1 for SubsamplePad {
    fn name(&self) -> &'static str {
        "ablate-subsample-zero-pad"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = layout.shape().dims4()?;
        let x = cpu_f32(storage, layout)?;
        let (h2, w2) = (h.div_ceil(2), w.div_ceil(2));
        let plane = h2 * w2;
        let mut out = vec![0f32; b * self.out_channels * plane];
        if plane > 0 && c > 0 {
            out.par_chunks_mut(self.out_channels * plane)
                .zip(x.par_chunks(c * h * w))
                .for_each(|(on, xn)| {
                    let kept = &mut on[self.front * plane..(self.front + c) * plane];
                    for (op, xp) in kept.chunks_exact_mut(plane).zip(xn.chunks_exact(h * w)) {
                        for (orow, i) in op.chunks_exact_mut(w2).zip(0..) {
                            let xrow = &xp[2 * i * w..][..w];
                            for (o, v) in orow.iter_mut().zip(xrow.iter().step_by(2)) {
                                *o = *v;
                            }
                        }
                    }
                });
        }
        Ok((
            CpuStorage::F32(out),
            Shape::from((b, self.out_channels, h2, w2)),
        ))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (b, c, h, w) = arg.dims4()?;
        let (h2, w2) = (h.div_ceil(2), w.div_ceil(2));
        let plane = h2 * w2;
        let g = grad.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        if g.len() != b * self.out_channels * plane {
            bail!(
                "option-A shortcut backward: gradient of {} elements",
                g.len()
            )
        }
        let mut dx = vec![0f32; b * c * h * w];
        if plane > 0 && c > 0 {
            dx.par_chunks_mut(c * h * w)
                .zip(g.par_chunks(self.out_channels * plane))
                .for_each(|(dn, gn)| {
                    let kept = &gn[self.front * plane..(self.front + c) * plane];
                    for (dp, gp) in dn.chunks_exact_mut(h * w).zip(kept.chunks_exact(plane)) {
                        for (grow, i) in gp.chunks_exact(w2).zip(0..) {
                            let drow = &mut dp[2 * i * w..][..w];
                            for (d, v) in drow.iter_mut().step_by(2).zip(grow) {
                                *d = *v;
                            }
                        }
                    }
                });
        }
        Ok(Some(Tensor::from_vec(dx, (b, c, h, w), arg.device())?))
    }
}

/// Option A: every second row and column from the first (`x[:, :, ::2, ::2]`), then
/// `(Cout - Cin) / 2` zero channels before and the rest after (`F.pad(..., (0, 0, 0, 0, p, p))`
/// for `Cout = 2 Cin`, as the common PyTorch CIFAR ResNets write it). Plain candle ops
/// (reshape, narrow, zero padding), whose gradients are right on every device.
///
/// # Shapes
/// x: `[B, Cin, H, W]` -> `[B, Cout, ceil(H / 2), ceil(W / 2)]`.
pub fn subsample_zero_pad_reference(x: &Tensor, out_channels: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if out_channels < c {
        candle_core::bail!("option-A shortcut: {c} channels cannot be padded to {out_channels}");
    }
    let x = if h % 2 == 1 {
        x.pad_with_zeros(2, 0, 1)?
    } else {
        x.clone()
    };
    let x = if w % 2 == 1 {
        x.pad_with_zeros(3, 0, 1)?
    } else {
        x
    };
    let (h2, w2) = (h.div_ceil(2), w.div_ceil(2));
    let y = x
        .contiguous()?
        .reshape((b, c, h2, 2, w2, 2))?
        .narrow(3, 0, 1)?
        .narrow(5, 0, 1)?
        .reshape((b, c, h2, w2))?;
    let front = (out_channels - c) / 2;
    y.pad_with_zeros(1, front, out_channels - c - front)
}
