//! The convolution's backward (`super::Conv2dOp`'s and the fused ops', through
//! [`backward_cpu_with`]): per fixed chunk of images, the weight gradient (accumulated per
//! chunk, then the chunks summed in order), the bias gradient and, when the input takes part in
//! autograd, the input gradient, each by the Winograd, the direct 3x3 or the im2col + gemm
//! kernels, as the forward chooses.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::{gemm_rm, with_buf, Geom, Store, COL, DCOL, GRAD_CHUNK, SERIAL};
use crate::ops::im2col::{col2im, im2col};
use crate::ops::kernels::lane_sum;
use crate::ops::{direct3x3, winograd};

/// Which gradients a convolution's backward computes besides the weight's: the input's, and
/// the bias's (a serial sum over the output gradient, skipped for a convolution without one).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Need {
    pub(crate) dx: bool,
    pub(crate) db: bool,
}

/// Gradients of one convolution (`db` all zeros unless [`Need::db`]).
pub(crate) struct ConvGrads {
    pub(crate) dx: Option<Vec<f32>>,
    pub(crate) dw: Vec<f32>,
    pub(crate) db: Vec<f32>,
}

/// Backward kernel. `dy` is the output gradient `[N, Cout, oh, ow]`.
pub(super) fn backward_cpu(g: &Geom, x: &[f32], wt: &[f32], dy: &[f32], need: Need) -> ConvGrads {
    let out = g.out_img();
    backward_cpu_with(g, x, wt, need, |img, f| f(&dy[img * out..(img + 1) * out]))
}

/// Backward kernel with the output gradient supplied one image at a time: `dy_of(img, f)`
/// calls `f` with image `img`'s `[Cout, oh*ow]` gradient (a slice of a whole-batch tensor, or
/// computed on the fly into a buffer by a fused op).
///
/// Each gradient comes from the direct 3x3 kernels where they apply
/// ([`Geom::direct3x3`]), else from im2col + gemm; the images of a chunk add into one
/// weight-gradient accumulator, and the chunks are summed in order.
pub(crate) fn backward_cpu_with<D>(
    g: &Geom,
    x: &[f32],
    wt: &[f32],
    need: Need,
    dy_of: D,
) -> ConvGrads
where
    D: Fn(usize, &mut dyn FnMut(&[f32])) + Sync,
{
    let (k, co) = (g.k(), g.c_out);
    let need_dx = need.dx;
    let wsz = co * k;
    let part = wsz + co;
    let n_chunks = g.n.div_ceil(GRAD_CHUNK);
    // Both gradients by the direct 3x3 kernels where they apply, else by im2col + gemm.
    let direct = g.direct3x3();
    let w_in = InputKernel::new(g, wt, need_dx);
    // Per chunk: dWᵀ [K, Cout] (the orientation the gemm runs fastest in, and the direct
    // kernel's), then db [Cout].
    let mut partial = vec![0f32; n_chunks * part];
    let dx_len = if need_dx { g.n * g.in_img() } else { 0 };
    let mut dx: Vec<f32> = Vec::with_capacity(dx_len);
    let mut dx_slices: Vec<&mut [MaybeUninit<f32>]> = if need_dx {
        dx.spare_capacity_mut()[..dx_len]
            .chunks_mut(GRAD_CHUNK * g.in_img())
            .collect()
    } else {
        (0..n_chunks).map(|_| &mut [][..]).collect()
    };
    partial
        .par_chunks_mut(part)
        .zip(dx_slices.par_iter_mut())
        .enumerate()
        .for_each(|(ci, (pw, dxc))| {
            let (pdw, pdb) = pw.split_at_mut(wsz);
            let first = ci * GRAD_CHUNK;
            let last = (first + GRAD_CHUNK).min(g.n);
            for (j, img) in (first..last).enumerate() {
                let xn = &x[img * g.in_img()..(img + 1) * g.in_img()];
                dy_of(img, &mut |dyn_: &[f32]| {
                    if need.db {
                        for (db, row) in pdb.iter_mut().zip(dyn_.chunks(g.hw_out())) {
                            *db += lane_sum(row);
                        }
                    }
                    weight_grad(g, direct, xn, dyn_, pdw);
                    if need_dx {
                        let dxn = &mut dxc[j * g.in_img()..(j + 1) * g.in_img()];
                        input_grad(g, direct, dyn_, &w_in, dxn);
                    }
                });
            }
        });
    drop(dx_slices);
    // SAFETY: with `need_dx`, the chunks above initialized all `dx_len` elements.
    unsafe { dx.set_len(dx_len) };
    // Sum the chunk partials in chunk order (deterministic), parallel over elements.
    let mut sum = vec![0f32; part];
    let block = 4096;
    sum.par_chunks_mut(block).enumerate().for_each(|(bi, s)| {
        let (off, len) = (bi * block, s.len());
        for p in partial.chunks(part) {
            for (d, v) in s.iter_mut().zip(&p[off..off + len]) {
                *d += v;
            }
        }
    });
    let db = sum.split_off(wsz);
    ConvGrads {
        dx: need_dx.then_some(dx),
        dw: transpose(&sum, k, co),
        db,
    }
}

/// One image's weight gradient, added to the chunk's accumulator `dWᵀ[K, Cout]`: by the direct
/// 3x3 kernel, or by im2col + gemm (`dWᵀ += col[K, HW] x dYᵀ[HW, Cout]`).
fn weight_grad(g: &Geom, direct: Option<direct3x3::Dims>, x: &[f32], dy: &[f32], dw_t: &mut [f32]) {
    let (k, hw, co) = (g.k(), g.hw_out(), g.c_out);
    if let Some(d) = direct.filter(winograd::applies) {
        winograd::weight_grad(&d, x, dy, dw_t);
        return;
    }
    if let Some(d) = direct {
        with_buf(&COL, g.c_in * direct3x3::bordered_len(g.h, g.w), |xb| {
            direct3x3::pad_border(g.c_in, g.h, g.w, x, xb);
            with_buf(&DCOL, hw * co, |dyt| {
                direct3x3::weight_grad(&d, xb, dy, dyt, dw_t)
            });
        });
        return;
    }
    let direct = g.direct();
    with_buf(&COL, if direct { 0 } else { k * hw }, |col| {
        let col: &[f32] = if direct {
            x
        } else {
            im2col(g, x, col);
            col
        };
        gemm_rm(SERIAL, k, co, hw, dw_t, true, col, hw, 1, dy, 1, hw);
    });
}

/// The kernel as the input gradient reads it, built once per batch: `Wᵀ [K, Cout]` for the
/// gemm; where the direct kernels apply, the flipped kernel ([`direct3x3::flip_transpose`]),
/// since the input gradient is then the forward convolution of `dY` with it (channel axes
/// swapped), and that transformed for the Winograd kernel where it applies to the swapped
/// channel counts.
struct InputKernel {
    w_in: Vec<f32>,
    winograd: Option<(direct3x3::Dims, Vec<f32>)>,
}

impl InputKernel {
    fn new(g: &Geom, wt: &[f32], need_dx: bool) -> Self {
        let (co, ci) = (g.c_out, g.c_in);
        let w_in = match (need_dx, g.direct3x3()) {
            (false, _) => Vec::new(),
            (true, None) => transpose(wt, co, g.k()),
            (true, Some(_)) => direct3x3::flip_transpose(wt, co, ci),
        };
        let swapped = g.direct3x3().map(|d| direct3x3::Dims {
            c_in: co,
            c_out: ci,
            ..d
        });
        let winograd = swapped
            .filter(|d| need_dx && winograd::applies(d))
            .map(|d| (d, winograd::transform_filters(&d, &w_in)));
        Self { w_in, winograd }
    }
}

/// One image's input gradient, every element of `dx` written: the Winograd or the direct 3x3
/// kernel with the flipped kernel, or `col2im(Wᵀ x dY)`.
fn input_grad(
    g: &Geom,
    direct: Option<direct3x3::Dims>,
    dy: &[f32],
    kernel: &InputKernel,
    dx: &mut [MaybeUninit<f32>],
) {
    let (k, hw, co) = (g.k(), g.hw_out(), g.c_out);
    let w_in = &kernel.w_in[..];
    if let Some((d, u)) = &kernel.winograd {
        winograd::forward_image(d, dy, u, None, Store::default(), dx);
        return;
    }
    if let Some(d) = direct {
        direct3x3::with_padded(&direct3x3::PADDED_DY, (co, g.h, g.w), dy, |dyp| {
            direct3x3::input_grad_image(&d, dyp, w_in, dx);
        });
        return;
    }
    dx.fill(MaybeUninit::new(0.0));
    // SAFETY: just initialized.
    let dx = unsafe { &mut *(dx as *mut [MaybeUninit<f32>] as *mut [f32]) };
    if g.direct() {
        // dX[Cin, HW] = Wᵀ[Cin, Cout] x dY[Cout, HW]
        gemm_rm(SERIAL, k, hw, co, dx, false, w_in, co, 1, dy, hw, 1);
    } else {
        with_buf(&DCOL, k * hw, |dcol| {
            gemm_rm(SERIAL, k, hw, co, dcol, false, w_in, co, 1, dy, hw, 1);
            col2im(g, dcol, dx);
        });
    }
}

/// `out[j, i] = a[i, j]` for a row-major `rows x cols` matrix `a`.
fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; rows * cols];
    for (i, row) in a.chunks(cols).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            out[j * rows + i] = v;
        }
    }
    out
}
