//! The end of a residual unit's branch (He et al., "Deep Residual Learning for Image
//! Recognition", CVPR 2016): BatchNorm2d, the shortcut added, ReLU, `relu(bn(x) + r)`, as one
//! candle custom op with a CPU forward and backward ([`super::bn_relu`]'s statistics and
//! backward kernel).
//!
//! BatchNorm then [`super::residual::add_relu`] are two autograd nodes, each with a
//! `[B, C, H, W]` output and, in the backward, a freshly allocated, zeroed and added gradient of
//! that size. Here the normalized map never exists: the forward writes
//! `relu((x - mean)·γ/σ + β + r)` in the pass after the statistics, and the backward's second
//! pass writes the BatchNorm input's gradient and the shortcut's, `dr = dy ⊙ (out > 0)`,
//! together. Fixed order: the result does not depend on the number of threads.
//!
//! On a non-CPU device, for non-f32 tensors, or off [`Kernels::Fast`], the functions compose
//! [`super::bn_relu`]'s reference path with [`super::residual::add_relu`].

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

use super::bn_relu::{
    backward_cpu, batch_norm_eval, batch_norm_train, check_params, recorded, train_mode,
    BatchStats, Mode, Stats,
};
use super::kernels::{cpu_f32, Kernels};
use super::residual::add_relu;

/// Training mode: `relu(bn(x) + residual)` with the batch statistics, which come back for the
/// running-statistics update.
///
/// # Shapes
/// `x`, `residual`: `[N, C, H, W]`, `gamma`, `beta`: `[C]`; returns `[N, C, H, W]` and two
/// `[C]`.
pub fn batch_norm_add_relu_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    residual: &Tensor,
    eps: f64,
    kernels: Kernels,
) -> Result<(Tensor, BatchStats)> {
    if !fast(x, residual, kernels) {
        let (y, stats) = batch_norm_train(x, gamma, beta, eps, false, kernels)?;
        return Ok((add_relu(&y, residual, kernels)?, stats));
    }
    check(x, gamma, beta, residual)?;
    let (mode, cell) = train_mode(x)?;
    let y = apply(x, gamma, beta, residual, BnAddReluOp { mode, eps })?;
    Ok((y, recorded(&cell, x.device())?))
}

/// Evaluation mode: `relu(bn(x) + residual)` with the running statistics.
///
/// # Shapes
/// `x`, `residual`: `[N, C, H, W]`, the rest `[C]`; returns `[N, C, H, W]`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_add_relu_eval(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    residual: &Tensor,
    eps: f64,
    kernels: Kernels,
) -> Result<Tensor> {
    if !fast(x, residual, kernels) {
        let y = batch_norm_eval(
            x,
            gamma,
            beta,
            running_mean,
            running_var,
            eps,
            false,
            kernels,
        )?;
        return add_relu(&y, residual, kernels);
    }
    let (_, c, _, _) = check(x, gamma, beta, residual)?;
    let op = BnAddReluOp {
        mode: Mode::Eval(Stats::running(running_mean, running_var, c, eps)?),
        eps,
    };
    apply(x, gamma, beta, residual, op)
}

fn fast(x: &Tensor, residual: &Tensor, kernels: Kernels) -> bool {
    kernels.use_fast(x.device(), x.dtype()) && kernels.use_fast(residual.device(), residual.dtype())
}

fn check(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    residual: &Tensor,
) -> Result<(usize, usize, usize, usize)> {
    let dims = x.dims4()?;
    if residual.dims() != x.dims() {
        bail!(
            "batch_norm_add_relu: input {:?} and residual {:?}",
            x.dims(),
            residual.dims()
        )
    }
    check_params(dims.1, gamma, beta)?;
    Ok(dims)
}

fn apply(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    residual: &Tensor,
    op: BnAddReluOp,
) -> Result<Tensor> {
    let packed = Tensor::cat(&[gamma, beta], 0)?.contiguous()?;
    x.contiguous()?
        .apply_op3(&packed, &residual.contiguous()?, op)
}

/// The custom op: arguments `(x, [γ, β], residual)`.
struct BnAddReluOp {
    mode: Mode,
    eps: f64,
}

/// `relu((x - mean)·γ/σ + β + r)`, parallel over images.
fn forward_cpu(x: &[f32], r: &[f32], c: usize, hw: usize, s: &Stats, packed: &[f32]) -> Vec<f32> {
    let (gamma, beta) = packed.split_at(c);
    let n = x.len();
    let mut y: Vec<f32> = Vec::with_capacity(n);
    if n > 0 {
        y.spare_capacity_mut()[..n]
            .par_chunks_mut(c * hw)
            .zip(x.par_chunks(c * hw).zip(r.par_chunks(c * hw)))
            .for_each(|(yn, (xn, rn))| {
                for ch in 0..c {
                    let (m, k, b) = (s.mean[ch], s.invstd[ch] * gamma[ch], beta[ch]);
                    let rows = (ch * hw)..((ch + 1) * hw);
                    let (yc, xc, rc) = (&mut yn[rows.clone()], &xn[rows.clone()], &rn[rows]);
                    for ((o, &v), &rv) in yc.iter_mut().zip(xc).zip(rc) {
                        o.write(((v - m) * k + b + rv).max(0.0));
                    }
                }
            });
    }
    // SAFETY: the loop wrote every element (the chunks cover all `n`; `c * hw > 0` if `n > 0`).
    unsafe { y.set_len(n) };
    y
}

impl CustomOp3 for BnAddReluOp {
    fn name(&self) -> &'static str {
        "ablate-batch-norm-add-relu"
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
        let (n, c, h, w) = l1.shape().dims4()?;
        let (x, packed, r) = (cpu_f32(s1, l1)?, cpu_f32(s2, l2)?, cpu_f32(s3, l3)?);
        let stats = self.mode.forward_stats(x, (n, c, h * w), self.eps)?;
        let y = forward_cpu(x, r, c, h * w, &stats, packed);
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        packed: &Tensor,
        residual: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (need_dx, need_dp, need_dr) = (x.track_op(), packed.track_op(), residual.track_op());
        if !(need_dx || need_dp || need_dr) {
            return Ok((None, None, None));
        }
        let (n, c, h, w) = x.dims4()?;
        let stats = self.mode.saved()?;
        let grad = grad.contiguous()?;
        let g = {
            let (sx, lx) = x.storage_and_layout();
            let (sy, ly) = res.storage_and_layout();
            let (sd, ld) = grad.storage_and_layout();
            let (sp, lp) = packed.storage_and_layout();
            let (Storage::Cpu(sx), Storage::Cpu(sy), Storage::Cpu(sd), Storage::Cpu(sp)) =
                (&*sx, &*sy, &*sd, &*sp)
            else {
                bail!("ablate-batch-norm-add-relu: the backward needs cpu tensors")
            };
            // The output's positive entries are the ReLU's mask, as with `relu(bn(x))`.
            backward_cpu(
                cpu_f32(sx, lx)?,
                cpu_f32(sy, ly)?,
                cpu_f32(sd, ld)?,
                n,
                c,
                h * w,
                &stats,
                &cpu_f32(sp, lp)?[..c],
                true,
                matches!(self.mode, Mode::Train(_)),
                need_dr,
            )
        };
        let dev = x.device();
        let dx = need_dx
            .then(|| Tensor::from_vec(g.dx, x.shape(), dev))
            .transpose()?;
        let dp = need_dp
            .then(|| Tensor::from_vec([g.dgamma, g.dbeta].concat(), packed.shape(), dev))
            .transpose()?;
        let dr = need_dr
            .then(|| Tensor::from_vec(g.dz, residual.shape(), dev))
            .transpose()?;
        Ok((dx, dp, dr))
    }
}
