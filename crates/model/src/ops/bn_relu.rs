//! BatchNorm2d (Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network Training by
//! Reducing Internal Covariate Shift", 2015) with PyTorch's `nn.BatchNorm2d` semantics, optionally
//! fused with the ReLU that follows it, as a candle custom op with fast CPU kernels.
//!
//! Training mode normalizes with the batch statistics (biased variance) and hands back the
//! batch mean and the *unbiased* batch variance ([`BatchStats`]) so that the layer updates its
//! running statistics as PyTorch does (`running = (1 - momentum) * running + momentum * batch`,
//! see [`update_running`]). Evaluation mode normalizes with the running statistics.
//!
//! The fused backward computes, per channel, `dz = dy * (y > 0)` (with ReLU), then
//! `dβ = Σ dz`, `dγ = Σ dz·x̂` and `dx = γ/σ · (dz - dβ/M - x̂·dγ/M)` (training) or
//! `dx = γ/σ · dz` (evaluation), in two passes over the data and without temporaries.
//!
//! On a non-CPU device, for non-f32 tensors, or with [`Kernels::Reference`] or
//! [`Kernels::Generic`], the functions run plain candle ops ([`batch_norm_train_reference`],
//! [`batch_norm_eval_reference`]), with the generic path's ReLU where `kernels` selects it.

use std::sync::{Arc, Mutex};

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

use super::bn_sums::{masked_moments, Keep};
use super::kernels::{cpu_f32, shifted_sums, Kernels};

/// The statistics of one training-mode batch, per channel, detached from autograd.
#[derive(Debug, Clone)]
pub struct BatchStats {
    /// Batch mean, `[C]`.
    pub mean: Tensor,
    /// Unbiased batch variance (`Σ(x - mean)² / (M - 1)`, `M = N*H*W`), `[C]`: what PyTorch
    /// feeds into `running_var`.
    pub var_unbiased: Tensor,
}

/// `running * (1 - momentum) + batch * momentum`, detached: PyTorch's running-statistics
/// update (its default momentum is 0.1).
///
/// # Shapes
/// `running`, `batch`: `[C]`; returns `[C]`.
pub fn update_running(running: &Tensor, batch: &Tensor, momentum: f64) -> Result<Tensor> {
    Ok(((running.detach() * (1.0 - momentum))? + (batch.detach() * momentum)?)?.detach())
}

/// Training-mode BatchNorm2d (batch statistics), followed by ReLU when `relu` is set.
///
/// Returns the output and the batch statistics for the running-statistics update.
///
/// # Shapes
/// `x`: `[N, C, H, W]`, `gamma`, `beta`: `[C]`; returns `[N, C, H, W]` and two `[C]`.
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    relu: bool,
    kernels: Kernels,
) -> Result<(Tensor, BatchStats)> {
    if !kernels.use_fast(x.device(), x.dtype()) {
        return batch_norm_train_reference(x, gamma, beta, eps, relu, kernels);
    }
    check_params(x.dims4()?.1, gamma, beta)?;
    let (mode, cell) = train_mode(x)?;
    let op = BnReluOp { eps, relu, mode };
    let y = x
        .contiguous()?
        .apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?;
    Ok((y, recorded(&cell, x.device())?))
}

/// Where a training-mode forward records its batch statistics.
pub(super) type StatsCell = Arc<Mutex<Option<Stats>>>;

/// A training [`Mode`] for `x` and the cell its forward records the batch statistics in; an
/// error, as PyTorch's, when `x` has a single value per channel.
pub(super) fn train_mode(x: &Tensor) -> Result<(Mode, StatsCell)> {
    let (n, _, h, w) = x.dims4()?;
    if n * h * w < 2 {
        bail!(
            "batch_norm: expected more than 1 value per channel in training, got input {:?}",
            x.dims()
        )
    }
    let cell = Arc::new(Mutex::new(None));
    Ok((Mode::Train(cell.clone()), cell))
}

/// The batch statistics the forward recorded in `cell`, as tensors on `device`.
pub(super) fn recorded(cell: &StatsCell, device: &candle_core::Device) -> Result<BatchStats> {
    let stats = cell
        .lock()
        .map_err(|_| candle_core::Error::Msg("batch_norm: statistics lock poisoned".into()))?
        .clone();
    let Some(stats) = stats else {
        bail!("batch_norm: the forward kernel did not record batch statistics")
    };
    stats.batch_stats(device)
}

/// Evaluation-mode BatchNorm2d (running statistics), followed by ReLU when `relu` is set.
///
/// # Shapes
/// `x`: `[N, C, H, W]`, `gamma`, `beta`, `running_mean`, `running_var`: `[C]`;
/// returns `[N, C, H, W]`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_eval(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    eps: f64,
    relu: bool,
    kernels: Kernels,
) -> Result<Tensor> {
    if !kernels.use_fast(x.device(), x.dtype()) {
        return batch_norm_eval_reference(
            x,
            gamma,
            beta,
            running_mean,
            running_var,
            eps,
            relu,
            kernels,
        );
    }
    let (_, c, _, _) = x.dims4()?;
    check_params(c, gamma, beta)?;
    let op = BnReluOp {
        eps,
        relu,
        mode: Mode::Eval(Stats::running(running_mean, running_var, c, eps)?),
    };
    x.contiguous()?
        .apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)
}

/// The reference path of [`batch_norm_train`]: plain candle ops, differentiated by candle; the
/// ReLU is `kernels`' ([`Kernels::relu`]).
///
/// # Shapes
/// As [`batch_norm_train`].
pub fn batch_norm_train_reference(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    relu: bool,
    kernels: Kernels,
) -> Result<(Tensor, BatchStats)> {
    let (n, c, h, w) = x.dims4()?;
    let m = n * h * w;
    if m < 2 {
        bail!(
            "batch_norm: expected more than 1 value per channel in training, got input {:?}",
            x.dims()
        )
    }
    let mean = x.mean_keepdim((0, 2, 3))?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim((0, 2, 3))?;
    let xhat = xc.broadcast_div(&(&var + eps)?.sqrt()?)?;
    let y = affine_relu(&xhat, gamma, beta, c, relu.then_some(kernels))?;
    let stats = BatchStats {
        mean: mean.flatten_all()?.detach(),
        var_unbiased: (var.flatten_all()? * (m as f64 / (m - 1) as f64))?.detach(),
    };
    Ok((y, stats))
}

/// The reference path of [`batch_norm_eval`]: plain candle ops; the ReLU is `kernels'`
/// ([`Kernels::relu`]).
///
/// # Shapes
/// As [`batch_norm_eval`].
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_eval_reference(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    eps: f64,
    relu: bool,
    kernels: Kernels,
) -> Result<Tensor> {
    let (_, c, _, _) = x.dims4()?;
    let mean = running_mean.reshape((1, c, 1, 1))?;
    let std = (running_var.reshape((1, c, 1, 1))? + eps)?.sqrt()?;
    let xhat = x.broadcast_sub(&mean)?.broadcast_div(&std)?;
    affine_relu(&xhat, gamma, beta, c, relu.then_some(kernels))
}

/// `γ·x̂ + β`, then `relu`'s ReLU when given.
fn affine_relu(
    xhat: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    c: usize,
    relu: Option<Kernels>,
) -> Result<Tensor> {
    let y = xhat
        .broadcast_mul(&gamma.reshape((1, c, 1, 1))?)?
        .broadcast_add(&beta.reshape((1, c, 1, 1))?)?;
    match relu {
        Some(kernels) => kernels.relu(&y),
        None => Ok(y),
    }
}

pub(super) fn check_params(c: usize, gamma: &Tensor, beta: &Tensor) -> Result<()> {
    if gamma.dims() != [c] || beta.dims() != [c] {
        bail!(
            "batch_norm: weight {:?} and bias {:?} for {c} channels",
            gamma.dims(),
            beta.dims()
        )
    }
    Ok(())
}

/// Per-channel statistics used by the kernels.
#[derive(Debug, Clone)]
pub(super) struct Stats {
    pub(super) mean: Vec<f32>,
    pub(super) invstd: Vec<f32>,
    /// Unbiased batch variance (training) or the running variance (evaluation).
    pub(super) var_unbiased: Vec<f32>,
}

impl Stats {
    /// Evaluation: the running statistics `[C]` as tensors, with `1/sqrt(var + eps)`.
    pub(super) fn running(mean: &Tensor, var: &Tensor, c: usize, eps: f64) -> Result<Stats> {
        let mean = mean.flatten_all()?.to_vec1::<f32>()?;
        let var = var.flatten_all()?.to_vec1::<f32>()?;
        if mean.len() != c || var.len() != c {
            bail!(
                "batch_norm: running statistics of {} and {} elements for {c} channels",
                mean.len(),
                var.len()
            )
        }
        let invstd = var
            .iter()
            .map(|&v| (1.0 / (v as f64 + eps).sqrt()) as f32)
            .collect();
        Ok(Stats {
            mean,
            invstd,
            var_unbiased: var,
        })
    }

    /// The batch statistics as [`BatchStats`] tensors on `device`.
    pub(super) fn batch_stats(&self, device: &candle_core::Device) -> Result<BatchStats> {
        let c = self.mean.len();
        Ok(BatchStats {
            mean: Tensor::from_vec(self.mean.clone(), c, device)?,
            var_unbiased: Tensor::from_vec(self.var_unbiased.clone(), c, device)?,
        })
    }
}

pub(super) enum Mode {
    /// Batch statistics, recorded by the forward kernel for the layer and the backward.
    Train(StatsCell),
    /// Running statistics, given.
    Eval(Stats),
}

/// The custom op: arguments `(x, gamma, beta)`.
struct BnReluOp {
    eps: f64,
    relu: bool,
    mode: Mode,
}

impl BnReluOp {
    fn stats(&self) -> Result<Stats> {
        self.mode.saved()
    }
}

impl Mode {
    /// The forward's statistics: the running ones, or, in training, those of `x` (`[n, c, hw]`),
    /// recorded for the layer and the backward.
    pub(super) fn forward_stats(
        &self,
        x: &[f32],
        (n, c, hw): (usize, usize, usize),
        eps: f64,
    ) -> Result<Stats> {
        match self {
            Mode::Eval(s) => Ok(s.clone()),
            Mode::Train(cell) => {
                let s = batch_stats(x, n, c, hw, eps);
                match cell.lock() {
                    Ok(mut g) => *g = Some(s.clone()),
                    Err(_) => bail!("batch_norm: statistics lock poisoned"),
                }
                Ok(s)
            }
        }
    }

    /// The statistics the forward used, for the backward.
    pub(super) fn saved(&self) -> Result<Stats> {
        match self {
            Mode::Eval(s) => Ok(s.clone()),
            Mode::Train(cell) => match cell.lock() {
                Ok(g) => match &*g {
                    Some(s) => Ok(s.clone()),
                    None => bail!("batch_norm: backward before forward"),
                },
                Err(_) => bail!("batch_norm: statistics lock poisoned"),
            },
        }
    }
}

/// Per-channel mean, `1/sqrt(var + eps)` and unbiased variance over `N x HW`.
pub(super) fn batch_stats(x: &[f32], n: usize, c: usize, hw: usize, eps: f64) -> Stats {
    let per: Vec<(f32, f32, f32)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            // Shifted sums: the shift (the first image's mean for this channel) is close to
            // the batch mean, so `E[d²] - E[d]²` does not cancel catastrophically.
            let first = &x[ch * hw..(ch + 1) * hw];
            let shift = (first.iter().map(|&v| v as f64).sum::<f64>() / hw as f64) as f32;
            let (mut s, mut q) = (0f64, 0f64);
            for img in 0..n {
                let (a, b) = shifted_sums(&x[(img * c + ch) * hw..][..hw], shift);
                s += a;
                q += b;
            }
            let m = (n * hw) as f64;
            let dmean = s / m;
            let mean = shift as f64 + dmean;
            let var = (q / m - dmean * dmean).max(0.0);
            let invstd = 1.0 / (var + eps).sqrt();
            let unbiased = if m > 1.0 { var * m / (m - 1.0) } else { 0.0 };
            (mean as f32, invstd as f32, unbiased as f32)
        })
        .collect();
    Stats {
        mean: per.iter().map(|p| p.0).collect(),
        invstd: per.iter().map(|p| p.1).collect(),
        var_unbiased: per.iter().map(|p| p.2).collect(),
    }
}

/// `y = γ(x - mean)·invstd + β`, then ReLU, parallel over images.
#[allow(clippy::too_many_arguments)]
fn forward_cpu(
    x: &[f32],
    c: usize,
    hw: usize,
    s: &Stats,
    gamma: &[f32],
    beta: &[f32],
    relu: bool,
) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    y.par_chunks_mut(c * hw)
        .zip(x.par_chunks(c * hw))
        .for_each(|(yn, xn)| {
            for ch in 0..c {
                let (m, k, b) = (s.mean[ch], s.invstd[ch] * gamma[ch], beta[ch]);
                let yc = &mut yn[ch * hw..(ch + 1) * hw];
                let xc = &xn[ch * hw..(ch + 1) * hw];
                if relu {
                    for (o, &v) in yc.iter_mut().zip(xc) {
                        *o = ((v - m) * k + b).max(0.0);
                    }
                } else {
                    for (o, &v) in yc.iter_mut().zip(xc) {
                        *o = (v - m) * k + b;
                    }
                }
            }
        });
    y
}

pub(super) struct BnGrads {
    pub(super) dx: Vec<f32>,
    pub(super) dgamma: Vec<f32>,
    pub(super) dbeta: Vec<f32>,
    /// With `keep_dz`: the gradient after the ReLU's mask, `dy ⊙ (y > 0)` (what a residual
    /// added before the ReLU receives); else empty.
    pub(super) dz: Vec<f32>,
}

/// Backward kernel; `train` selects whether the gradient flows through the batch statistics.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward_cpu(
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    n: usize,
    c: usize,
    hw: usize,
    s: &Stats,
    gamma: &[f32],
    relu: bool,
    train: bool,
    keep_dz: bool,
) -> BnGrads {
    // Pass 1: per channel, Σ dz and Σ dz·x̂ (f64, fixed order).
    let sums: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (m, is) = (s.mean[ch], s.invstd[ch]);
            let (mut sa, mut sb) = (0f64, 0f64);
            for img in 0..n {
                let off = (img * c + ch) * hw;
                let (xc, yc, dc) = (&x[off..off + hw], &y[off..off + hw], &dy[off..off + hw]);
                // f32 lanes within one image's plane, f64 across planes.
                let keep = if relu { Keep::Positive(yc) } else { Keep::All };
                let (a, b) = masked_moments(dc, xc, m, is, keep);
                sa += a;
                sb += b;
            }
            (sa, sb)
        })
        .collect();
    let dbeta: Vec<f32> = sums.iter().map(|p| p.0 as f32).collect();
    let dgamma: Vec<f32> = sums.iter().map(|p| p.1 as f32).collect();
    // Pass 2: dx, parallel over images.
    let inv_m = 1.0 / (n * hw) as f64;
    let coef: Vec<(f32, f32, f32, f32, f32)> = (0..c)
        .map(|ch| {
            let k = gamma[ch] * s.invstd[ch];
            let (da, db) = if train {
                ((sums[ch].0 * inv_m) as f32, (sums[ch].1 * inv_m) as f32)
            } else {
                (0.0, 0.0)
            };
            (s.mean[ch], s.invstd[ch], k, da, db)
        })
        .collect();
    let mut dx = vec![0f32; x.len()];
    let mut dz_all = vec![0f32; if keep_dz { x.len() } else { 0 }];
    let mut dz_chunks: Vec<&mut [f32]> = if keep_dz {
        dz_all.chunks_mut(c * hw).collect()
    } else {
        (0..n).map(|_| &mut [][..]).collect()
    };
    dx.par_chunks_mut(c * hw)
        .zip(dz_chunks.par_iter_mut())
        .enumerate()
        .for_each(|(img, (dxn, dzn))| {
            for (ch, &(m, is, k, da, db)) in coef.iter().enumerate() {
                let off = (img * c + ch) * hw;
                let (xc, yc, dc) = (&x[off..off + hw], &y[off..off + hw], &dy[off..off + hw]);
                let out = &mut dxn[ch * hw..(ch + 1) * hw];
                for (((o, &xv), &yv), &dv) in out.iter_mut().zip(xc).zip(yc).zip(dc) {
                    let dz = if !relu || yv > 0.0 { dv } else { 0.0 };
                    *o = k * (dz - da - (xv - m) * is * db);
                }
                if keep_dz {
                    let out = &mut dzn[ch * hw..(ch + 1) * hw];
                    for ((o, &yv), &dv) in out.iter_mut().zip(yc).zip(dc) {
                        *o = if !relu || yv > 0.0 { dv } else { 0.0 };
                    }
                }
            }
        });
    BnGrads {
        dx,
        dgamma,
        dbeta,
        dz: dz_all,
    }
}

impl CustomOp3 for BnReluOp {
    fn name(&self) -> &'static str {
        "ablate-batch-norm-relu"
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
        let (x, gamma, beta) = (cpu_f32(s1, l1)?, cpu_f32(s2, l2)?, cpu_f32(s3, l3)?);
        let stats = self.mode.forward_stats(x, (n, c, h * w), self.eps)?;
        let y = forward_cpu(x, c, h * w, &stats, gamma, beta, self.relu);
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (need_dx, need_dg, need_db) = (x.track_op(), gamma.track_op(), beta.track_op());
        if !(need_dx || need_dg || need_db) {
            return Ok((None, None, None));
        }
        let (n, c, h, w) = x.dims4()?;
        let stats = self.stats()?;
        let grad = grad.contiguous()?;
        let res = res.contiguous()?;
        let g = {
            let (sx, lx) = x.storage_and_layout();
            let (sy, ly) = res.storage_and_layout();
            let (sd, ld) = grad.storage_and_layout();
            let (sg, lg) = gamma.storage_and_layout();
            match (&*sx, &*sy, &*sd, &*sg) {
                (Storage::Cpu(sx), Storage::Cpu(sy), Storage::Cpu(sd), Storage::Cpu(sg)) => {
                    backward_cpu(
                        cpu_f32(sx, lx)?,
                        cpu_f32(sy, ly)?,
                        cpu_f32(sd, ld)?,
                        n,
                        c,
                        h * w,
                        &stats,
                        cpu_f32(sg, lg)?,
                        self.relu,
                        matches!(self.mode, Mode::Train(_)),
                        false,
                    )
                }
                _ => bail!("ablate-batch-norm-relu: backward of the fast kernel needs cpu tensors"),
            }
        };
        let dev = x.device();
        let dx = need_dx
            .then(|| Tensor::from_vec(g.dx, x.shape(), dev))
            .transpose()?;
        let dg = need_dg
            .then(|| Tensor::from_vec(g.dgamma, gamma.shape(), dev))
            .transpose()?;
        let db = need_db
            .then(|| Tensor::from_vec(g.dbeta, beta.shape(), dev))
            .transpose()?;
        Ok((dx, dg, db))
    }
}
