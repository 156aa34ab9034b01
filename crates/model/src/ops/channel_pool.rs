//! The channel-wise mean and maximum of spatial attention (Woo et al., "CBAM: Convolutional
//! Block Attention Module", ECCV 2018): `[B, C, H, W] -> [B, 2, H, W]`, mean first, as one
//! candle custom op with a CPU forward and backward.
//!
//! candle computes the two reductions over the (strided) channel dimension separately, and its
//! backward of `max_keepdim` builds an equality mask of the input's size; here one pass over each
//! image reads every channel once, and the backward writes the input gradient in one pass:
//! `dx[c, p] = dmean[p] / C + (c == argmax[p]) * dmax[p]`. The maximum's gradient goes to the
//! first maximal channel (PyTorch's `torch.max(x, dim=1)`; candle's reduction gives it to every
//! tied channel; ties have probability zero on real activations).
//!
//! On a non-CPU device, for non-f32 tensors, or with [`Kernels::Reference`],
//! [`channel_mean_max`] runs candle's ops ([`channel_mean_max_reference`]).

use std::sync::{Arc, Mutex};

use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::kernels::{cpu_f32, Kernels};

/// Channel-wise mean and maximum, concatenated along the channels (mean first).
///
/// # Shapes
/// `x`: `[B, C, H, W]` (C >= 1) -> `[B, 2, H, W]`.
pub fn channel_mean_max(x: &Tensor, kernels: Kernels) -> Result<Tensor> {
    if !kernels.use_fast(x.device(), x.dtype()) {
        return channel_mean_max_reference(x, kernels);
    }
    let (_, c, _, _) = x.dims4()?;
    if c == 0 {
        bail!("channel_mean_max: input has no channels")
    }
    x.contiguous()?.apply_op1(ChannelMeanMax {
        argmax: Mutex::new(None),
    })
}

/// The reference path: candle's `mean_keepdim` and `kernels`' maximum over dimension 1
/// ([`Kernels::max_keepdim`]: on the generic path, gradient to the first maximal channel).
///
/// # Shapes
/// As [`channel_mean_max`].
pub fn channel_mean_max_reference(x: &Tensor, kernels: Kernels) -> Result<Tensor> {
    let avg = x.mean_keepdim(1)?;
    let max = kernels.max_keepdim(x, 1)?;
    Tensor::cat(&[&avg, &max], 1)
}

/// The forward op; `argmax` (the maximal channel of every pixel, `[B, H*W]`) is filled by
/// `cpu_fwd` and read by `bwd`.
struct ChannelMeanMax {
    argmax: Mutex<Option<Arc<Vec<u32>>>>,
}

fn poisoned() -> candle_core::Error {
    candle_core::Error::Msg("channel_mean_max: lock poisoned".into())
}

impl CustomOp1 for ChannelMeanMax {
    fn name(&self) -> &'static str {
        "ablate-channel-mean-max"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = layout.shape().dims4()?;
        let x = cpu_f32(storage, layout)?;
        let hw = h * w;
        let mut out = vec![0f32; b * 2 * hw];
        let mut argmax = vec![0u32; b * hw];
        if hw > 0 {
            out.par_chunks_mut(2 * hw)
                .zip(argmax.par_chunks_mut(hw))
                .zip(x.par_chunks(c * hw))
                .for_each(|((o, am), xn)| {
                    let (sum, max) = o.split_at_mut(hw);
                    sum.copy_from_slice(&xn[..hw]);
                    max.copy_from_slice(&xn[..hw]);
                    am.fill(0);
                    for (ch, plane) in xn.chunks(hw).enumerate().skip(1) {
                        for p in 0..hw {
                            let v = plane[p];
                            sum[p] += v;
                            // `>`: ties keep the first channel.
                            let take = v > max[p];
                            max[p] = if take { v } else { max[p] };
                            am[p] = if take { ch as u32 } else { am[p] };
                        }
                    }
                    let inv = 1.0 / c as f32;
                    for s in sum.iter_mut() {
                        *s *= inv;
                    }
                });
        }
        *self.argmax.lock().map_err(|_| poisoned())? = Some(Arc::new(argmax));
        Ok((CpuStorage::F32(out), Shape::from((b, 2, h, w))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let argmax = self
            .argmax
            .lock()
            .map_err(|_| poisoned())?
            .clone()
            .ok_or_else(|| {
                candle_core::Error::Msg("channel_mean_max: backward before forward".into())
            })?;
        let (b, c, h, w) = arg.dims4()?;
        let hw = h * w;
        let grad = grad.contiguous()?;
        let g = grad.flatten_all()?.to_vec1::<f32>()?;
        if g.len() != b * 2 * hw || argmax.len() != b * hw {
            bail!(
                "channel_mean_max backward: gradient of {} elements, expected {}",
                g.len(),
                b * 2 * hw
            )
        }
        let mut dx = vec![0f32; b * c * hw];
        if hw > 0 {
            let inv = 1.0 / c as f32;
            dx.par_chunks_mut(c * hw)
                .zip(g.par_chunks(2 * hw))
                .zip(argmax.par_chunks(hw))
                .for_each(|((dxn, gn), am)| {
                    let (gmean, gmax) = gn.split_at(hw);
                    for (ch, plane) in dxn.chunks_mut(hw).enumerate() {
                        for p in 0..hw {
                            let hit = am[p] == ch as u32;
                            plane[p] = gmean[p] * inv + if hit { gmax[p] } else { 0.0 };
                        }
                    }
                });
        }
        Ok(Some(Tensor::from_vec(dx, (b, c, h, w), arg.device())?))
    }
}
