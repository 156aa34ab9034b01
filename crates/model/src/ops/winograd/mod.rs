//! Winograd's minimal filtering F(2x2, 3x3) for 3x3 convolutions with stride 1 and padding 1
//! on CPUs with AVX-512, forward and both gradients (A. Lavin and S. Gray, "Fast Algorithms
//! for Convolutional Neural Networks", CVPR 2016, Sec. 4): each 2x2 block of output pixels of one
//! output channel is `Aᵀ [Σ_c (G g_c Gᵀ) ⊙ (Bᵀ d_c B)] A`, with `d_c` the block's 4x4 input
//! window of channel `c` and `g_c` its 3x3 filter: 16 multiplications per block, input channel
//! and output channel where the direct kernel (`super::direct3x3`) does 36. The convolution op
//! and the fused ops call it per image, in place of the direct kernel, where [`applies`] says so:
//! the CIFAR ResNets' stride-1 layers (16 to 64 channels) and the CNN's second and third. The
//! input gradient is the forward with the flipped kernel; the weight gradient
//! ([`weight_grad`]) is the factorization's adjoint (`weight_grad.rs`).
//!
//! Per image, over per-thread buffers ([`Buffers`]) that stay in cache (`th = ⌈h/2⌉`,
//! `tw = ⌈w/2⌉` tiles, `T = th·tw`):
//! 1. the input transposed to channel-last into a map with a zero border
//!    (`xb: [(2·th + 2)·(2·tw + 2), c_in]`; the border is zeroed once per geometry);
//! 2. the input transform, per tile and vector of 16 channels: `v[e, t, c] = (Bᵀ d B)[e]`;
//! 3. sixteen products `m[e] = v[e] · u[e]` (`[T, c_in] x [c_in, c_out]`), `u` the transformed
//!    filters `G g Gᵀ` ([`transform_filters`], once per batch: [`crate::ops::conv::Filters`]),
//!    accumulators in registers;
//! 4. the output transform `Aᵀ m A` per tile and vector of 16 output channels into a
//!    channel-last output, transposed back to `[c_out, h·w]` with the bias and the [`Store`]
//!    epilogue applied as each vector is stored, in the direct kernel's order.
//!
//! The input and output transforms only add and subtract (the filter transform runs in f64,
//! rounded once), but they do so before the products, so results round differently from the
//! direct sum: within 1e-5 of the definition relative to the inputs' scale (tested), well
//! inside the 1e-4 the goldens hold against PyTorch. The larger tile F(4x4, 3x3) would save
//! 44% more multiplications but misses that 1e-4 on two golden fixtures (its constants 4, 5,
//! 1/6 and 1/24 cost precision; docs/performance.md). Every sum runs in a fixed order per
//! image, so the result does not depend on the number of threads.

use std::cell::RefCell;
use std::mem::MaybeUninit;

use super::direct3x3::{available, Dims, Store};

/// Lanes of an AVX-512 vector of f32; channel counts must be multiples of it.
const LANES: usize = 16;

/// Whether a convolution that the direct kernel takes (3x3, stride 1, padding 1) runs here
/// instead: both channel counts multiples of 16, on a CPU with AVX-512F.
pub(crate) fn applies(d: &Dims) -> bool {
    d.c_in > 0
        && d.c_out > 0
        && d.c_in.is_multiple_of(LANES)
        && d.c_out.is_multiple_of(LANES)
        && available()
}

/// The transformed filters `u[e, c_in, c_out] = (G g Gᵀ)[e]` of every filter `g = wt[c_out,
/// c_in]`, with `G = [[1, 0, 0], [½, ½, ½], [½, -½, ½], [0, 0, 1]]`, computed in f64.
///
/// # Shapes
/// `wt`: `[c_out, c_in, 3, 3]` -> `[16, c_in, c_out]`.
pub(crate) fn transform_filters(d: &Dims, wt: &[f32]) -> Vec<f32> {
    let (ci, co) = (d.c_in, d.c_out);
    assert!(wt.len() >= co * ci * 9);
    let mut u = vec![0f32; 16 * ci * co];
    let g_rows = |a: f64, b: f64, c: f64| [a, (a + b + c) / 2.0, (a - b + c) / 2.0, c];
    for (oc, filters) in wt.chunks(ci * 9).take(co).enumerate() {
        for (ic, g) in filters.chunks(9).enumerate() {
            let g: Vec<f64> = g.iter().map(|&v| v as f64).collect();
            // `G g`, one column of the filter at a time, then `(G g) Gᵀ` row by row.
            let cols: Vec<[f64; 4]> = (0..3).map(|j| g_rows(g[j], g[3 + j], g[6 + j])).collect();
            for r in 0..4 {
                for (j, v) in g_rows(cols[0][r], cols[1][r], cols[2][r])
                    .iter()
                    .enumerate()
                {
                    u[((r * 4 + j) * ci + ic) * co + oc] = *v as f32;
                }
            }
        }
    }
    u
}

/// One thread's working buffers, sized for the last geometry it convolved.
struct Buffers {
    /// The `(c_in, h, w)` whose zero border `xb` holds.
    geometry: (usize, usize, usize),
    /// The input, channel-last, with a zero border: `[(2·th + 2)·(2·tw + 2), c_in]`.
    xb: Vec<f32>,
    /// Transformed input tiles `[16, T, c_in]`.
    v: Vec<f32>,
    /// Products `[16, T, c_out]`.
    m: Vec<f32>,
    /// The output (or its gradient), channel-last: `[h·w, c_out]`.
    yt: Vec<f32>,
    /// The weight gradient's products `[16, c_in, c_out]`.
    du: Vec<f32>,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = const {
        RefCell::new(Buffers {
            geometry: (0, 0, 0),
            xb: Vec::new(),
            v: Vec::new(),
            m: Vec::new(),
            yt: Vec::new(),
            du: Vec::new(),
        })
    };
}

impl Buffers {
    /// Sizes the buffers for `d`; zeroes `xb` (its border) only when the geometry changed.
    fn fit(&mut self, d: &Dims) {
        let (th, tw) = (d.h.div_ceil(2), d.w.div_ceil(2));
        let xb_len = (2 * th + 2) * (2 * tw + 2) * d.c_in;
        if self.geometry != (d.c_in, d.h, d.w) || self.xb.len() != xb_len {
            self.xb.clear();
            self.xb.resize(xb_len, 0.0);
            self.geometry = (d.c_in, d.h, d.w);
        }
        let grow = |buf: &mut Vec<f32>, len: usize| {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
        };
        grow(&mut self.v, 16 * th * tw * d.c_in);
        grow(&mut self.m, 16 * th * tw * d.c_out);
        grow(&mut self.yt, d.h * d.w * d.c_out);
    }

    /// [`Buffers::fit`], and `du` for the weight gradient.
    fn fit_grad(&mut self, d: &Dims) {
        self.fit(d);
        if self.du.len() < 16 * d.c_in * d.c_out {
            self.du.resize(16 * d.c_in * d.c_out, 0.0);
        }
    }
}

/// Forward of one image: writes every element of `y` with `Σ_ic wt[oc, ic] * x[ic]` (plus
/// `bias[oc]` when given, added to the sum), then `store` applied, and returns it as
/// initialized. The convolution op's input gradient is this with the flipped kernel and no
/// bias.
///
/// # Shapes
/// `x`: `[c_in, h·w]`; `u`: [`transform_filters`]' `[16, c_in, c_out]`; `bias`: `[c_out]`;
/// `y`: `[c_out, h·w]`; `store`: `[c_out]` and `[c_out, h·w]`.
pub(crate) fn forward_image<'a>(
    d: &Dims,
    x: &[f32],
    u: &[f32],
    bias: Option<&[f32]>,
    store: Store<'_>,
    y: &'a mut [MaybeUninit<f32>],
) -> &'a mut [f32] {
    let hw = d.h * d.w;
    assert!(applies(d));
    assert!(x.len() >= d.c_in * hw && u.len() >= 16 * d.c_in * d.c_out);
    assert!(bias.is_none_or(|b| b.len() >= d.c_out) && y.len() == d.c_out * hw);
    assert!(store.affine.is_none_or(|a| a.len() >= d.c_out));
    assert!(store.residual.is_none_or(|r| r.len() >= d.c_out * hw));
    BUFFERS.with(|cell| {
        let b = &mut *cell.borrow_mut();
        b.fit(d);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512F is present and the channel counts are multiples of 16 (`applies`);
        // `fit` sized every buffer for `d`, the asserts above bound the caller's slices.
        unsafe {
            let yp = y.as_mut_ptr() as *mut f32;
            avx512::to_bordered(d, x, &mut b.xb);
            avx512::input_transform(d, &b.xb, &mut b.v);
            avx512::products(d, &b.v, u, &mut b.m);
            avx512::output_transform(d, &b.m, &mut b.yt);
            avx512::to_planar(d, &b.yt, bias, store, yp);
        }
    });
    // SAFETY: `to_planar` stored every pixel of every output channel.
    unsafe { &mut *(y as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// Weight gradient of one image, added to `dw_t` in the gemm's orientation:
/// `dw_t[ic·9 + 3·ki + kj, oc] += Σ_p dy[oc, p] · x[ic, p shifted by (ki - 1, kj - 1)]`, by
/// the adjoint of the forward's factorization (`weight_grad.rs`): the input transformed as in
/// the forward, the output gradient by `A dY Aᵀ` per tile, 16 products summed over the tiles,
/// then `Gᵀ dU G` added.
///
/// # Shapes
/// `x`: `[c_in, h·w]`; `dy`: `[c_out, h·w]`; `dw_t`: `[c_in·9, c_out]`.
pub(crate) fn weight_grad(d: &Dims, x: &[f32], dy: &[f32], dw_t: &mut [f32]) {
    let hw = d.h * d.w;
    assert!(applies(d));
    assert!(x.len() >= d.c_in * hw && dy.len() >= d.c_out * hw);
    assert!(dw_t.len() >= d.c_in * 9 * d.c_out);
    BUFFERS.with(|cell| {
        let b = &mut *cell.borrow_mut();
        b.fit_grad(d);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512F is present and the channel counts are multiples of 16 (`applies`);
        // `fit_grad` sized every buffer for `d`, the asserts above bound the caller's slices.
        unsafe {
            avx512::to_bordered(d, x, &mut b.xb);
            avx512::input_transform(d, &b.xb, &mut b.v);
            avx512::to_channel_last(d.c_out, hw, dy, &mut b.yt);
            weight_grad::output_adjoint(d, &b.yt, &mut b.m);
            weight_grad::products(d, &b.v, &b.m, &mut b.du);
            weight_grad::filter_adjoint(d, &b.du, dw_t);
        }
    });
}

#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod weight_grad;

#[cfg(test)]
mod tests;
