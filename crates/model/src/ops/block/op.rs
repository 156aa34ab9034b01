//! The fused block's custom op: its state, the forward kernel, and candle's `CustomOp3` glue.

use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex};

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

use crate::ops::channel_gate::{self, GateDims, GateImage, GateWeights};
use crate::ops::conv::{forward_image, with_buf, Filters, Geom};
use crate::ops::kernels::{cpu_f32, grad_like, shifted_sums};
use crate::ops::scratch::{self, Pooled};

/// Where the forward leaves the batch statistics `(mean, unbiased variance)` for the layer.
pub(super) type StatsSlot = Arc<Mutex<Option<(Vec<f32>, Vec<f32>)>>>;

pub(super) enum OpMode {
    /// Batch statistics; the forward records `(mean, unbiased variance)` here for the layer.
    Train(StatsSlot),
    /// Running statistics, given.
    Eval { mean: Vec<f32>, invstd: Vec<f32> },
}

/// What the training-mode forward keeps for the backward.
pub(super) struct Saved {
    /// The convolution output `[N, Cout, H', W']`, bias included.
    pub(super) y: Pooled,
    /// With pooling: for every pooled output, the position of its window's maximum (0..4,
    /// row-major in the 2x2 window).
    pub(super) argmax: Vec<u8>,
    pub(super) mean: Vec<f32>,
    pub(super) invstd: Vec<f32>,
    /// With a fused SE module: its per-image forward values.
    pub(super) se: Option<GateSaved>,
}

/// The SE forward values of the whole batch (per image: `[branches, C]` descriptors,
/// `[branches, hidden]` hidden activations, `[C]` logits, gates and max positions).
pub(super) struct GateSaved {
    pub(super) s: Vec<f32>,
    pub(super) h: Vec<f32>,
    pub(super) pre: Vec<f32>,
    pub(super) g: Vec<f32>,
    pub(super) maxpos: Vec<u32>,
}

impl GateSaved {
    pub(super) fn new(d: &GateDims, n: usize) -> GateSaved {
        let nb = d.branches();
        GateSaved {
            s: vec![0.0; n * nb * d.c],
            // (At least one per image and branch, so that `images` yields every image.)
            h: vec![0.0; n * nb * d.hidden().max(1)],
            pre: vec![0.0; n * d.c],
            g: vec![0.0; n * d.c],
            maxpos: vec![0; n * d.c],
        }
    }

    /// The mutable per-image views, in image order.
    pub(super) fn images(&mut self, d: &GateDims) -> Vec<GateImage<'_>> {
        let nb = d.branches();
        self.s
            .chunks_mut(nb * d.c)
            .zip(self.h.chunks_mut(nb * d.hidden().max(1)))
            .zip(self.pre.chunks_mut(d.c))
            .zip(self.g.chunks_mut(d.c))
            .zip(self.maxpos.chunks_mut(d.c))
            .map(|((((s, h), pre), g), maxpos)| GateImage {
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
pub(super) struct BlockOp {
    pub(super) padding: usize,
    pub(super) stride: usize,
    pub(super) eps: f64,
    pub(super) pool: bool,
    /// Whether the ReLU follows the BatchNorm (always with `pool`).
    pub(super) relu: bool,
    pub(super) has_bias: bool,
    /// The fused channel gate's sizes (SE or ECA), if any.
    pub(super) gate: Option<GateDims>,
    pub(super) mode: OpMode,
    pub(super) saved: Mutex<Option<Arc<Saved>>>,
}

/// The packed parameters: convolution bias (all zeros without one), γ, β, and the channel gate's.
pub(super) struct Unpacked<'a> {
    pub(super) bias: Vec<f32>,
    pub(super) gamma: &'a [f32],
    pub(super) beta: &'a [f32],
    pub(super) se: &'a [f32],
}

/// `(bias, γ, β, se)` out of the packed parameters.
pub(super) fn unpack<'a>(
    packed: &'a [f32],
    c: usize,
    has_bias: bool,
    se: Option<&GateDims>,
) -> Result<Unpacked<'a>> {
    let base = if has_bias { 3 * c } else { 2 * c };
    let want = base + se.map_or(0, GateDims::n_params);
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
pub(super) fn mean_m2(xs: &[f32]) -> (f64, f64) {
    let n = xs.len() as f64;
    let head = &xs[..xs.len().min(16)];
    let shift = head.iter().sum::<f32>() / head.len().max(1) as f32;
    let (s, q) = shifted_sums(xs, shift);
    let mean = shift as f64 + s / n;
    (mean, (q - s * s / n).max(0.0))
}

/// The training forward's convolution: every image's output (bias included) into a buffer from
/// the scratch pool, and per channel the batch mean, `1/sqrt(var + eps)` and unbiased variance
/// (each plane's [`mean_m2`] while the image is in cache, then [`combine`]).
///
/// # Shapes
/// `x`: `[N, Cin, H, W]`; returns `[N, Cout, H', W']` and three `[Cout]`.
pub(super) fn conv_batch_stats(
    g: &Geom,
    x: &[f32],
    wt: &[f32],
    bias: &[f32],
    eps: f64,
) -> (Vec<f32>, [Vec<f32>; 3]) {
    let (c, hw, out_img) = (g.c_out, g.hw_out(), g.out_img());
    let total = g.n * out_img;
    let mut y = scratch::take(total);
    let mut part = vec![(0f64, 0f64); g.n * c];
    let wt = &Filters::new(g, wt);
    y.spare_capacity_mut()[..total]
        .par_chunks_mut(out_img.max(1))
        .zip(x.par_chunks(g.in_img().max(1)))
        .zip(part.par_chunks_mut(c.max(1)))
        .for_each(|((yn, xn), pn)| {
            let yn = forward_image(g, xn, wt, bias, yn);
            for (p, row) in pn.iter_mut().zip(yn.chunks(hw)) {
                *p = mean_m2(row);
            }
        });
    // SAFETY: `forward_image` initialized every element.
    unsafe { y.set_len(total) };
    let stats = combine(&part, g.n, c, hw, eps);
    (y, stats)
}

/// Per-channel batch mean, `1/sqrt(var + eps)` and unbiased variance from the per-image
/// `(mean, M2)` of every plane (`part[n * c + ch]`), combined in image order.
pub(super) fn combine(
    part: &[(f64, f64)],
    n: usize,
    c: usize,
    hw: usize,
    eps: f64,
) -> [Vec<f32>; 3] {
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
pub(crate) fn pick(bv: f32, bi: u8, v: f32, i: u8) -> (f32, u8) {
    #[allow(clippy::eq_op)]
    let take = (v > bv) | (v != v);
    (if take { v } else { bv }, if take { i } else { bi })
}

/// Normalization constants of one channel: `relu((v - m) * k + b)`.
#[derive(Clone, Copy)]
pub(super) struct Affine {
    pub(super) m: f32,
    pub(super) k: f32,
    pub(super) b: f32,
}

impl Affine {
    /// `relu((v - m) * k + b)`.
    #[inline(always)]
    pub(super) fn apply(self, v: f32) -> f32 {
        self.normalize(v).max(0.0)
    }

    /// `(v - m) * k + b`: the BatchNorm alone.
    #[inline(always)]
    pub(super) fn normalize(self, v: f32) -> f32 {
        (v - self.m) * self.k + self.b
    }
}

/// Max-pools one plane `src` (`[oh, ow]`) of values `f(src)` into `o` (`[oh/2, ow/2]`), with
/// the window position of each maximum in `ix`.
#[inline(always)]
pub(crate) fn pool_plane(
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
pub(super) type SeStage<'a, 'b> = (&'a GateDims, &'a GateWeights<'a>, GateImage<'b>);

/// One [`SeStage`] per image (all `None` without an SE module).
pub(super) fn se_views<'a>(
    saved: &'a mut Option<GateSaved>,
    d: Option<&'a GateDims>,
    w: Option<&'a GateWeights<'a>>,
    n: usize,
) -> Vec<Option<SeStage<'a, 'a>>> {
    match (saved, d, w) {
        (Some(sv), Some(d), Some(w)) => sv.images(d).into_iter().map(|i| Some((d, w, i))).collect(),
        _ => (0..n).map(|_| None).collect(),
    }
}

/// Writes one image's output from its convolution output `yn` (`[C, oh*ow]`): dense (without
/// the ReLU unless `relu`), or pooled with the argmax positions in `idx`; with an SE stage,
/// pooled after scaling by its gate.
#[allow(clippy::too_many_arguments)]
pub(super) fn emit_image(
    yn: &[f32],
    g: &Geom,
    aff: &[Affine],
    pool: bool,
    relu: bool,
    out: &mut [MaybeUninit<f32>],
    idx: &mut [u8],
    se: Option<SeStage<'_, '_>>,
) {
    let (hw, oh, ow) = (g.hw_out(), g.oh, g.ow);
    if !pool {
        for ((o, y), a) in out.chunks_mut(hw).zip(yn.chunks(hw)).zip(aff) {
            if relu {
                for (o, &v) in o.iter_mut().zip(y) {
                    o.write(a.apply(v));
                }
            } else {
                for (o, &v) in o.iter_mut().zip(y) {
                    o.write(a.normalize(v));
                }
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
            channel_gate::forward(d, wt, z, hw, &mut img);
            for (((o, ix), zp), &gc) in planes.zip(z.chunks(hw)).zip(img.g.iter()) {
                pool_plane(zp, ow, (ph, pw), |v| v * gc, o, ix);
            }
        }),
    }
}

thread_local! {
    /// Per-thread buffer for one image's convolution output (evaluation) or its gradient
    /// (backward).
    pub(super) static IMG: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Per-thread buffer for one image's ReLU output, the input of a fused SE module.
    pub(super) static ZBUF: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl BlockOp {
    pub(super) fn out_shape(&self, g: &Geom) -> Shape {
        if self.pool {
            Shape::from((g.n, g.c_out, g.oh / 2, g.ow / 2))
        } else {
            Shape::from((g.n, g.c_out, g.oh, g.ow))
        }
    }

    pub(super) fn out_img(&self, g: &Geom) -> usize {
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
    pub(super) fn emit_batch<Y>(
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
                        let se = se.take().flatten();
                        emit_image(yn, g, aff, self.pool, self.relu, on, ixn, se)
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

    // Long on purpose: the fused forward's passes (convolution, statistics, normalization,
    // ReLU, gate, pooling) hand each other per-channel values and per-image buffers.
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geom::strided(l1.shape(), l2.shape(), self.padding, self.stride)?;
        let (x, wt) = (cpu_f32(s1, l1)?, cpu_f32(s2, l2)?);
        let c = g.c_out;
        let Unpacked {
            bias,
            gamma,
            beta,
            se: se_params,
        } = unpack(cpu_f32(s3, l3)?, c, self.has_bias, self.gate.as_ref())?;
        let se_w = self
            .gate
            .as_ref()
            .map(|d| GateWeights::unpack(d, se_params));
        let mut se_saved = self.gate.as_ref().map(|d| GateSaved::new(d, g.n));
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
                let wt = &Filters::new(&g, wt);
                let views = se_views(&mut se_saved, self.gate.as_ref(), se_w.as_ref(), g.n);
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
                let (y, [mean, invstd, var_unbiased]) =
                    conv_batch_stats(&g, x, wt, &bias, self.eps);
                let aff = affine(&mean, &invstd);
                let views = se_views(&mut se_saved, self.gate.as_ref(), se_w.as_ref(), g.n);
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
        let g = Geom::strided(x.shape(), wt.shape(), self.padding, self.stride)?;
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
        Ok((
            grad_like(need_dx, dx, x)?,
            grad_like(need_dw, Some(dw), wt)?,
            grad_like(need_dp, Some(dpacked), packed)?,
        ))
    }
}

pub(super) fn poisoned() -> candle_core::Error {
    candle_core::Error::Msg("conv block: lock poisoned".into())
}
