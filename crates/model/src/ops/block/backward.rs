//! The fused block's backward passes: without a channel gate (BatchNorm sums over the argmax
//! positions only) and with one (`backward_se`: two passes over the images).

use candle_core::{bail, Result};
use rayon::prelude::*;

use super::op::{unpack, Affine, BlockOp, GateSaved, OpMode, Saved, Unpacked, IMG};
use crate::ops::bn_sums::{masked_moments, Keep};
use crate::ops::channel_gate::{self, GateDims, GateWeights};
use crate::ops::conv::{backward_cpu_with, with_buf, Geom, Need};
use crate::spec::Squeeze;

/// The input-plane positions of the maxima of one pooled plane, in output order: `ix` holds the
/// window positions (0..4) of a plane of pooled width `pw`; the input plane has width `ow`.
#[inline(always)]
pub(crate) fn argmax_positions(
    ix: &[u8],
    pw: usize,
    ow: usize,
) -> impl Iterator<Item = usize> + '_ {
    ix.chunks_exact(pw.max(1))
        .enumerate()
        .flat_map(move |(py, row)| {
            row.iter()
                .enumerate()
                .map(move |(px, &a)| (2 * py + (a >> 1) as usize) * ow + 2 * px + (a & 1) as usize)
        })
}

/// Per channel `(k, ka, kb, m)` of BatchNorm's backward to its input, `dy = k·dz - ka -
/// (y - m)·kb`: `k = γ·invstd`; with the batch statistics (`sums`: per channel `Σdz` and
/// `Σdz·x̂` over `count` values) `ka = k·Σdz/count` and `kb = k·invstd·Σdz·x̂/count` (in f64,
/// then rounded), with the running statistics (`None`) both zero.
pub(super) fn bn_grad_coef(
    gamma: &[f32],
    mean: &[f32],
    invstd: &[f32],
    sums: Option<&[(f64, f64)]>,
    count: usize,
) -> Vec<(f32, f32, f32, f32)> {
    let inv_m = 1.0 / count as f64;
    (0..gamma.len())
        .map(|ch| {
            let k = gamma[ch] * invstd[ch];
            let (ka, kb) = match sums {
                Some(s) => {
                    let (sa, sb) = s[ch];
                    (
                        (k as f64 * sa * inv_m) as f32,
                        (k as f64 * sb * inv_m * invstd[ch] as f64) as f32,
                    )
                }
                None => (0.0, 0.0),
            };
            (k, ka, kb, mean[ch])
        })
        .collect()
}

impl BlockOp {
    /// The convolution gradients to compute besides the weight's: the input's if `need_dx`, the
    /// bias's if the convolution has one.
    fn conv_need(&self, need_dx: bool) -> Need {
        Need {
            dx: need_dx,
            db: self.has_bias,
        }
    }

    /// Returns `(dx, dweight, dpacked)`.
    ///
    /// Long on purpose: one fused kernel whose passes (pool routing, BatchNorm sums, the
    /// on-the-fly ReLU-output gradient, the convolution backward) share per-channel sums and
    /// scratch buffers; split into functions, each would take a dozen of these slices.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    pub(super) fn backward_cpu(
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
        let up = unpack(packed, c, self.has_bias, self.gate.as_ref())?;
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
        if let (Some(d), Some(sv)) = (&self.gate, &saved.se) {
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
                        let keep = if self.relu {
                            Keep::Positive(r)
                        } else {
                            Keep::All
                        };
                        let (a, b) = masked_moments(d, yp, m, is, keep);
                        sa += a;
                        sb += b;
                    }
                }
                (sa, sb)
            })
            .collect();
        let train = matches!(self.mode, OpMode::Train(_));
        let coef = bn_grad_coef(gamma, mean, invstd, train.then_some(&sums[..]), n * hw);
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
                        let dz = if !self.relu || rv > 0.0 { gv } else { 0.0 };
                        *dv = k * dz - ka - (yv - m) * kb;
                    }
                }
            }
        };
        let out = g.out_img();
        let grads = backward_cpu_with(g, x, wt, self.conv_need(need_dx), |img, f| {
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
    ///
    /// Long on purpose, as [`BlockOp::backward_cpu`]: the two passes share the gate's saved
    /// values, per-channel sums and per-image scratch.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    pub(super) fn backward_se(
        &self,
        g: &Geom,
        saved: &Saved,
        d: &GateDims,
        sv: &GateSaved,
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
        let wts = GateWeights::unpack(d, up.se);
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
                channel_gate::backward(
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
                            let Affine { m, k, b } = aff[ch];
                            let keep = Keep::Affine { k, b };
                            masked_moments(&buf[ch * hw..(ch + 1) * hw], yrow, m, invstd[ch], keep)
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
        let coef = bn_grad_coef(up.gamma, mean, invstd, Some(&sums), n * hw);
        let out = g.out_img();
        let grads = backward_cpu_with(g, x, wt, self.conv_need(need_dx), |img, f| {
            with_buf(&IMG, out, |buf| {
                fill_dz(img, &per_image[img].1, buf);
                for (ch, &(k, ka, kb, _)) in coef.iter().enumerate() {
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
