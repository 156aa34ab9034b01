//! A residual unit's second half in training (He et al., "Deep Residual Learning for Image
//! Recognition", CVPR 2016, Fig. 2): convolution, BatchNorm with the batch statistics, the
//! shortcut added, ReLU: `relu(bn(conv(x)) + r)`, as one candle custom op with arguments
//! `(x, r, [weight, bias (if any), γ, β])`.
//!
//! Composed (the convolution op, then `super::super::bn_add_relu`), the convolution's output is
//! an autograd node: the backward writes its whole-batch gradient, candle allocates, zeroes and
//! adds it, and the convolution's backward reads it again. Here, as in the block op, the
//! convolution output stays inside the op and its gradient exists one image at a time:
//!
//! - forward, per image (parallel): the convolution into the saved output `y` and each plane's
//!   mean and centred sum of squares (combined in image order: the block op's statistics), then
//!   `relu((y - mean)·γ/σ + β + r)`.
//! - backward: `dz = dout ⊙ (out > 0)` (PyTorch's ReLU gradient, zero at 0), which is the
//!   shortcut's gradient; per channel `Σdz` and `Σdz·x̂` (f32 lanes per plane, f64 across
//!   planes in image order); then per image `dy = γ/σ·(dz - Σdz/M - x̂·Σdz·x̂/M)` into a
//!   per-thread buffer, fed straight into the convolution's gradients
//!   (`crate::ops::conv::backward_cpu_with`).
//!
//! Every sum runs in a fixed order: the result does not depend on the number of threads. Off
//! the CPU or for non-f32 tensors, [`conv_bn_add_relu_train`] composes the generic ops.

use std::sync::{Arc, Mutex};

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

use super::backward::bn_grad_coef;
use super::op::{conv_batch_stats, poisoned, Affine, StatsSlot, IMG};
use super::{conv_bn_reference, BlockParams};
use crate::ops::bn_relu::BatchStats;
use crate::ops::bn_sums::{masked_moments, Keep};
use crate::ops::conv::{backward_cpu_with, with_buf, Geom, Need};
use crate::ops::kernels::{cpu_f32, grad_like, Kernels};
use crate::ops::residual::{add_relu, relu_grad};
use crate::ops::scratch::Pooled;

/// Training mode: `relu(bn(conv(x)) + residual)` with the batch statistics, which come back for
/// the running-statistics update. `p` must have neither `pool` nor `gate`.
///
/// # Shapes
/// `x`: `[N, Cin, H, W]`, `residual`: `[N, Cout, H', W']`; returns `[N, Cout, H', W']` and two
/// `[Cout]`.
pub fn conv_bn_add_relu_train(
    x: &Tensor,
    p: &BlockParams<'_>,
    residual: &Tensor,
) -> Result<(Tensor, BatchStats)> {
    if p.pool || p.gate.is_some() {
        bail!("conv_bn_add_relu: a block with a pool or a channel gate runs the block op")
    }
    let cpu_f32 = |t: &Tensor| t.device().is_cpu() && t.dtype() == candle_core::DType::F32;
    if !(cpu_f32(x) && cpu_f32(residual)) {
        let (z, stats) = conv_bn_reference(x, p, None, Kernels::Generic, false)?;
        return Ok((add_relu(&z, residual, Kernels::Generic)?, stats));
    }
    let g = p.check(x)?;
    if g.n * g.hw_out() < 2 {
        bail!(
            "batch_norm: expected more than 1 value per channel in training, got input {:?}",
            [g.n, g.c_out, g.oh, g.ow]
        )
    }
    if residual.dims() != [g.n, g.c_out, g.oh, g.ow] {
        bail!(
            "conv_bn_add_relu: residual {:?}, expected {:?}",
            residual.dims(),
            [g.n, g.c_out, g.oh, g.ow]
        )
    }
    let mut parts = vec![p.weight.flatten_all()?];
    parts.extend(p.bias.cloned());
    parts.extend([p.gamma.clone(), p.beta.clone()]);
    let packed = Tensor::cat(&parts, 0)?.contiguous()?;
    let stats: StatsSlot = Arc::new(Mutex::new(None));
    let op = ResidualOp {
        weight_shape: p.weight.shape().clone(),
        padding: p.padding,
        stride: p.stride,
        eps: p.eps,
        has_bias: p.bias.is_some(),
        stats: stats.clone(),
        saved: Mutex::new(None),
    };
    let y = x
        .contiguous()?
        .apply_op3(&residual.contiguous()?, &packed, op)?;
    let recorded = stats.lock().map_err(|_| poisoned())?.take();
    let Some((mean, var_unbiased)) = recorded else {
        bail!("conv_bn_add_relu: the forward kernel did not record batch statistics")
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

/// What the forward keeps for the backward.
struct Saved {
    /// The convolution output `[N, Cout, H', W']`, bias included.
    y: Pooled,
    mean: Vec<f32>,
    invstd: Vec<f32>,
}

/// The custom op: arguments `(x, residual, packed [weight, bias?, γ, β])`.
struct ResidualOp {
    weight_shape: Shape,
    padding: usize,
    stride: usize,
    eps: f64,
    has_bias: bool,
    stats: StatsSlot,
    saved: Mutex<Option<Arc<Saved>>>,
}

/// The packed parameters: weight, bias (zeros without one), γ, β.
struct Params<'a> {
    weight: &'a [f32],
    bias: Vec<f32>,
    gamma: &'a [f32],
    beta: &'a [f32],
}

impl ResidualOp {
    fn params<'a>(&self, packed: &'a [f32], c: usize) -> Result<Params<'a>> {
        let wsz = self.weight_shape.elem_count();
        let want = wsz + if self.has_bias { 3 * c } else { 2 * c };
        if packed.len() != want {
            bail!(
                "conv_bn_add_relu: {} packed parameters, expected {want}",
                packed.len()
            )
        }
        let (weight, rest) = packed.split_at(wsz);
        let (bias, rest) = if self.has_bias {
            (rest[..c].to_vec(), &rest[c..])
        } else {
            (vec![0.0; c], rest)
        };
        Ok(Params {
            weight,
            bias,
            gamma: &rest[..c],
            beta: &rest[c..2 * c],
        })
    }
}

impl CustomOp3 for ResidualOp {
    fn name(&self) -> &'static str {
        "ablate-conv-bn-add-relu"
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
        let g = Geom::strided(l1.shape(), &self.weight_shape, self.padding, self.stride)?;
        let (x, r) = (cpu_f32(s1, l1)?, cpu_f32(s2, l2)?);
        let (c, hw, out_img) = (g.c_out, g.hw_out(), g.out_img());
        let p = self.params(cpu_f32(s3, l3)?, c)?;
        if r.len() != g.n * out_img {
            bail!("conv_bn_add_relu: residual of {} elements", r.len())
        }
        let total = g.n * out_img;
        let (y, [mean, invstd, var_unbiased]) =
            conv_batch_stats(&g, x, p.weight, &p.bias, self.eps);
        let aff: Vec<Affine> = (0..c)
            .map(|ch| Affine {
                m: mean[ch],
                k: invstd[ch] * p.gamma[ch],
                b: p.beta[ch],
            })
            .collect();
        let mut out: Vec<f32> = Vec::with_capacity(total);
        out.spare_capacity_mut()[..total]
            .par_chunks_mut(out_img)
            .zip(y.par_chunks(out_img).zip(r.par_chunks(out_img)))
            .for_each(|(on, (yn, rn))| {
                for (((o, y), r), a) in on
                    .chunks_mut(hw)
                    .zip(yn.chunks(hw))
                    .zip(rn.chunks(hw))
                    .zip(&aff)
                {
                    for ((o, &v), &rv) in o.iter_mut().zip(y).zip(r) {
                        o.write((a.normalize(v) + rv).max(0.0));
                    }
                }
            });
        // SAFETY: the loop above wrote every element of every image.
        unsafe { out.set_len(total) };
        *self.stats.lock().map_err(|_| poisoned())? = Some((mean.clone(), var_unbiased));
        *self.saved.lock().map_err(|_| poisoned())? = Some(Arc::new(Saved {
            y: Pooled(y),
            mean,
            invstd,
        }));
        Ok((CpuStorage::F32(out), Shape::from((g.n, c, g.oh, g.ow))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        r: &Tensor,
        packed: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (need_x, need_r, need_p) = (x.track_op(), r.track_op(), packed.track_op());
        if !(need_x || need_r || need_p) {
            return Ok((None, None, None));
        }
        let saved = self.saved.lock().map_err(|_| poisoned())?.clone();
        let Some(saved) = saved else {
            bail!("conv_bn_add_relu: backward without a forward")
        };
        let grad = grad.contiguous()?;
        let g = Geom::strided(x.shape(), &self.weight_shape, self.padding, self.stride)?;
        let (dx, dz, dpacked) = {
            let (sx, lx) = x.storage_and_layout();
            let (sp, lp) = packed.storage_and_layout();
            let (so, lo) = res.storage_and_layout();
            let (sg, lg) = grad.storage_and_layout();
            match (&*sx, &*sp, &*so, &*sg) {
                (Storage::Cpu(sx), Storage::Cpu(sp), Storage::Cpu(so), Storage::Cpu(sg)) => {
                    let (xs, ps) = (cpu_f32(sx, lx)?, cpu_f32(sp, lp)?);
                    let (out, dout) = (cpu_f32(so, lo)?, cpu_f32(sg, lg)?);
                    self.backward_cpu(&g, &saved, xs, ps, out, dout, need_x)?
                }
                _ => bail!("conv_bn_add_relu: the backward needs cpu tensors"),
            }
        };
        Ok((
            grad_like(need_x, dx, x)?,
            grad_like(need_r, Some(dz), r)?,
            grad_like(need_p, Some(dpacked), packed)?,
        ))
    }
}

/// The backward's results: the input's gradient (if asked), the residual's (`dz`), the packed
/// parameters'.
type Grads = (Option<Vec<f32>>, Vec<f32>, Vec<f32>);

impl ResidualOp {
    #[allow(clippy::too_many_arguments)]
    fn backward_cpu(
        &self,
        g: &Geom,
        saved: &Saved,
        x: &[f32],
        packed: &[f32],
        out: &[f32],
        dout: &[f32],
        need_dx: bool,
    ) -> Result<Grads> {
        let (n, c, hw) = (g.n, g.c_out, g.hw_out());
        let p = self.params(packed, c)?;
        let (y, mean, invstd) = (&saved.y.0, &saved.mean, &saved.invstd);
        if out.len() != n * c * hw || dout.len() != out.len() || y.len() != out.len() {
            bail!("conv_bn_add_relu: backward shapes differ from the forward's")
        }
        // dz = dout where the output is positive: the residual's gradient and BatchNorm's.
        let dz = relu_grad(out, dout);
        // Per channel Σdz and Σdz·x̂: f32 lanes within a plane, f64 across planes in image
        // order.
        let sums: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let (m, is) = (mean[ch], invstd[ch]);
                let (mut sa, mut sb) = (0f64, 0f64);
                for img in 0..n {
                    let at = (img * c + ch) * hw;
                    let (d, yp) = (&dz[at..at + hw], &y[at..at + hw]);
                    let (a, b) = masked_moments(d, yp, m, is, Keep::All);
                    sa += a;
                    sb += b;
                }
                (sa, sb)
            })
            .collect();
        let coef = bn_grad_coef(p.gamma, mean, invstd, Some(&sums), n * hw);
        let need = Need {
            dx: need_dx,
            db: self.has_bias,
        };
        let out_img = c * hw;
        let grads = backward_cpu_with(g, x, p.weight, need, |img, f| {
            with_buf(&IMG, out_img, |buf| {
                for (ch, &(k, ka, kb, m)) in coef.iter().enumerate() {
                    let at = img * out_img + ch * hw;
                    let (d, yp) = (&dz[at..at + hw], &y[at..at + hw]);
                    for ((dv, &z), &yv) in buf[ch * hw..(ch + 1) * hw].iter_mut().zip(d).zip(yp) {
                        *dv = k * z - ka - (yv - m) * kb;
                    }
                }
                f(buf)
            })
        });
        let mut dpacked = grads.dw;
        if self.has_bias {
            dpacked.extend_from_slice(&grads.db);
        }
        dpacked.extend(sums.iter().map(|s| s.1 as f32));
        dpacked.extend(sums.iter().map(|s| s.0 as f32));
        Ok((grads.dx, dz, dpacked))
    }
}
