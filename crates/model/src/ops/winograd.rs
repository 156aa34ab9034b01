//! Winograd's minimal filtering F(2x2, 3x3) for the forward of 3x3 convolutions with stride 1
//! and padding 1, and for their input gradient (the forward with the flipped kernel), on CPUs
//! with AVX-512 (A. Lavin and S. Gray, "Fast Algorithms for
//! Convolutional Neural Networks", CVPR 2016, Sec. 4): each 2x2 block of output pixels of one
//! output channel is `Aᵀ [Σ_c (G g_c Gᵀ) ⊙ (Bᵀ d_c B)] A`, with `d_c` the block's 4x4 input
//! window of channel `c` and `g_c` its 3x3 filter: 16 multiplications per block, input channel
//! and output channel where the direct kernel (`super::direct3x3`) does 36. The convolution op
//! and the fused ops call it per image, in place of the direct kernel, where [`applies`] says so:
//! the CIFAR ResNets' stride-1 layers (16 to 64 channels) and the CNN's second and third.
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
    /// The output, channel-last: `[h·w, c_out]`.
    yt: Vec<f32>,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = const {
        RefCell::new(Buffers {
            geometry: (0, 0, 0),
            xb: Vec::new(),
            v: Vec::new(),
            m: Vec::new(),
            yt: Vec::new(),
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

#[cfg(target_arch = "x86_64")]
// Index loops over the register tiles' constant dimensions are the kernels' shape: the compiler
// unrolls them and keeps every vector in a register.
#[allow(clippy::needless_range_loop)]
mod avx512 {
    //! The passes of `super::forward_image`. Each takes the buffers as sized by `Buffers::fit`.

    use std::arch::x86_64::{
        __m512, _mm512_add_ps, _mm512_castpd_ps, _mm512_castps_pd, _mm512_fmadd_ps,
        _mm512_loadu_ps, _mm512_maskz_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps,
        _mm512_shuffle_f32x4, _mm512_storeu_ps, _mm512_sub_ps, _mm512_unpackhi_pd,
        _mm512_unpackhi_ps, _mm512_unpacklo_pd, _mm512_unpacklo_ps,
    };

    use super::{Dims, Store, LANES};
    use crate::ops::direct3x3::store_lanes;

    /// Tiles `(th, tw)`, their count and the bordered map's row length `2·tw + 2`.
    fn tiles(d: &Dims) -> (usize, usize, usize, usize) {
        let (th, tw) = (d.h.div_ceil(2), d.w.div_ceil(2));
        (th, tw, th * tw, 2 * tw + 2)
    }

    /// The lanes of the first `n <= 16` elements.
    fn first(n: usize) -> u16 {
        (((1u32 << n) - 1) & 0xffff) as u16
    }

    /// Transposes a 16x16 block held as 16 row vectors: `r[i][j]` becomes `r[j][i]`.
    #[inline(always)]
    pub(super) unsafe fn transpose16(r: &mut [__m512; 16]) {
        let mut t = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        // Per block `b` of four rows: `r[4b + k]`, 128-bit lane `l`, holds column `4l + k` of
        // those rows.
        let pd = |a: __m512, b: __m512, hi: bool| {
            let (a, b) = (_mm512_castps_pd(a), _mm512_castps_pd(b));
            _mm512_castpd_ps(if hi {
                _mm512_unpackhi_pd(a, b)
            } else {
                _mm512_unpacklo_pd(a, b)
            })
        };
        for b in 0..4 {
            let (lo01, hi01, lo23, hi23) = (t[4 * b], t[4 * b + 1], t[4 * b + 2], t[4 * b + 3]);
            r[4 * b] = pd(lo01, lo23, false);
            r[4 * b + 1] = pd(lo01, lo23, true);
            r[4 * b + 2] = pd(hi01, hi23, false);
            r[4 * b + 3] = pd(hi01, hi23, true);
        }
        // A 4x4 transpose of 128-bit lanes for each `k`: column `4l + k` gathers lane `l` of
        // `r[k], r[4 + k], r[8 + k], r[12 + k]`.
        for k in 0..4 {
            let p = _mm512_shuffle_f32x4::<0x88>(r[k], r[4 + k]);
            let q = _mm512_shuffle_f32x4::<0xdd>(r[k], r[4 + k]);
            let p2 = _mm512_shuffle_f32x4::<0x88>(r[8 + k], r[12 + k]);
            let q2 = _mm512_shuffle_f32x4::<0xdd>(r[8 + k], r[12 + k]);
            t[k] = _mm512_shuffle_f32x4::<0x88>(p, p2);
            t[4 + k] = _mm512_shuffle_f32x4::<0x88>(q, q2);
            t[8 + k] = _mm512_shuffle_f32x4::<0xdd>(p, p2);
            t[12 + k] = _mm512_shuffle_f32x4::<0xdd>(q, q2);
        }
        *r = t;
    }

    /// Pass 1: `x` (`[c_in, h·w]`) into `xb`'s interior, channel-last, 16 channels by 16
    /// pixels at a time.
    ///
    /// # Safety
    /// AVX-512F; `c_in` a multiple of 16, `x` `[c_in, h·w]`, `xb` sized by `Buffers::fit`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn to_bordered(d: &Dims, x: &[f32], xb: &mut [f32]) {
        let (hw, c) = (d.h * d.w, d.c_in);
        let (.., row) = tiles(d);
        let (x, xb) = (x.as_ptr(), xb.as_mut_ptr());
        for cb in (0..c).step_by(LANES) {
            for p0 in (0..hw).step_by(LANES) {
                let n = (hw - p0).min(LANES);
                let mut r = [_mm512_setzero_ps(); 16];
                for (i, v) in r.iter_mut().enumerate() {
                    *v = _mm512_maskz_loadu_ps(first(n), x.add((cb + i) * hw + p0));
                }
                transpose16(&mut r);
                for (j, v) in r.iter().take(n).enumerate() {
                    let (py, px) = ((p0 + j) / d.w, (p0 + j) % d.w);
                    _mm512_storeu_ps(xb.add(((py + 1) * row + px + 1) * c + cb), *v);
                }
            }
        }
    }

    /// Pass 2: `v[e, t, c] = (Bᵀ d B)[e]` for the 4x4 window `d` of tile `t` in `xb`, with
    /// `Bᵀ = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]`.
    ///
    /// # Safety
    /// AVX-512F; `c_in` a multiple of 16, `xb` and `v` sized by `Buffers::fit`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn input_transform(d: &Dims, xb: &[f32], v: &mut [f32]) {
        let c = d.c_in;
        let (th, tw, t_all, row) = tiles(d);
        let (xb, v) = (xb.as_ptr(), v.as_mut_ptr());
        // `Bᵀ` applied to four vectors.
        let bt = |a: [__m512; 4]| {
            [
                _mm512_sub_ps(a[0], a[2]),
                _mm512_add_ps(a[1], a[2]),
                _mm512_sub_ps(a[2], a[1]),
                _mm512_sub_ps(a[1], a[3]),
            ]
        };
        for ty in 0..th {
            for tx in 0..tw {
                let (t, base) = (ty * tw + tx, (2 * ty * row + 2 * tx) * c);
                for cv in (0..c).step_by(LANES) {
                    // Rows of the window, each transformed along x: `(d B)[i]`.
                    let mut db = [[_mm512_setzero_ps(); 4]; 4];
                    for i in 0..4 {
                        let at = |j: usize| _mm512_loadu_ps(xb.add(base + (i * row + j) * c + cv));
                        db[i] = bt([at(0), at(1), at(2), at(3)]);
                    }
                    // Then along y: `Bᵀ (d B)`, column by column.
                    for j in 0..4 {
                        let col = bt([db[0][j], db[1][j], db[2][j], db[3][j]]);
                        for (i, val) in col.iter().enumerate() {
                            let e = i * 4 + j;
                            _mm512_storeu_ps(v.add((e * t_all + t) * c + cv), *val);
                        }
                    }
                }
            }
        }
    }

    /// Pass 3: `m[e] = v[e] · u[e]` for the 16 positions `e`, in register tiles of `R` tiles
    /// by `NV` vectors of output channels, summed over input channels in order.
    ///
    /// # Safety
    /// AVX-512F; both channel counts multiples of 16, `v` and `m` sized by `Buffers::fit`,
    /// `u` `[16, c_in, c_out]`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn products(d: &Dims, v: &[f32], u: &[f32], m: &mut [f32]) {
        let (.., t_all, _) = tiles(d);
        let vectors = d.c_out / LANES;
        for e in 0..16 {
            let p = Products {
                c_in: d.c_in,
                c_out: d.c_out,
                v: v.as_ptr().add(e * t_all * d.c_in),
                u: u.as_ptr().add(e * d.c_in * d.c_out),
                m: m.as_mut_ptr().add(e * t_all * d.c_out),
            };
            macro_rules! sweep {
                ($r:literal, $nv:literal) => {{
                    for kv in (0..vectors).step_by($nv) {
                        let mut t = 0;
                        while t + $r <= t_all {
                            product_tile::<$r, $nv>(p, t, kv);
                            t += $r;
                        }
                        for t in t..t_all {
                            product_tile::<1, $nv>(p, t, kv);
                        }
                    }
                }};
            }
            match vectors {
                v if v.is_multiple_of(4) => sweep!(4, 4),
                v if v.is_multiple_of(2) => sweep!(8, 2),
                _ => sweep!(16, 1),
            }
        }
    }

    /// One position's operands of [`products`].
    #[derive(Clone, Copy)]
    struct Products {
        c_in: usize,
        c_out: usize,
        v: *const f32,
        u: *const f32,
        m: *mut f32,
    }

    /// `R` tiles from `t` by `NV` vectors of output channels from vector `kv`.
    #[inline(always)]
    unsafe fn product_tile<const R: usize, const NV: usize>(p: Products, t: usize, kv: usize) {
        let mut acc = [[_mm512_setzero_ps(); NV]; R];
        for c in 0..p.c_in {
            let mut uv = [_mm512_setzero_ps(); NV];
            for n in 0..NV {
                uv[n] = _mm512_loadu_ps(p.u.add(c * p.c_out + (kv + n) * LANES));
            }
            for r in 0..R {
                let b = _mm512_set1_ps(*p.v.add((t + r) * p.c_in + c));
                for n in 0..NV {
                    acc[r][n] = _mm512_fmadd_ps(b, uv[n], acc[r][n]);
                }
            }
        }
        for r in 0..R {
            for n in 0..NV {
                _mm512_storeu_ps(p.m.add((t + r) * p.c_out + (kv + n) * LANES), acc[r][n]);
            }
        }
    }

    /// Pass 4: the output transform `Aᵀ m A` of every tile, `Aᵀ = [[1, 1, 1, 0], [0, 1, -1,
    /// -1]]`, into `yt` (`[h·w, c_out]`); a tile's pixels past the map (odd sizes) are dropped.
    ///
    /// # Safety
    /// AVX-512F; `c_out` a multiple of 16, `m` and `yt` sized by `Buffers::fit`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn output_transform(d: &Dims, m: &[f32], yt: &mut [f32]) {
        let c = d.c_out;
        let (th, tw, t_all, _) = tiles(d);
        let (m, yt) = (m.as_ptr(), yt.as_mut_ptr());
        let at = |a: [__m512; 4]| {
            [
                _mm512_add_ps(_mm512_add_ps(a[0], a[1]), a[2]),
                _mm512_sub_ps(_mm512_sub_ps(a[1], a[2]), a[3]),
            ]
        };
        for ty in 0..th {
            for tx in 0..tw {
                let t = ty * tw + tx;
                for kv in (0..c).step_by(LANES) {
                    let ld = |e: usize| _mm512_loadu_ps(m.add((e * t_all + t) * c + kv));
                    // Along y (`Aᵀ m`), column by column, then along x.
                    let mut s = [[_mm512_setzero_ps(); 4]; 2];
                    for j in 0..4 {
                        let col = at([ld(j), ld(4 + j), ld(8 + j), ld(12 + j)]);
                        s[0][j] = col[0];
                        s[1][j] = col[1];
                    }
                    for (i, si) in s.iter().enumerate() {
                        let oy = 2 * ty + i;
                        if oy >= d.h {
                            continue;
                        }
                        for (j, val) in at(*si).iter().enumerate() {
                            let ox = 2 * tx + j;
                            if ox < d.w {
                                _mm512_storeu_ps(yt.add((oy * d.w + ox) * c + kv), *val);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Pass 5: `yt` (`[h·w, c_out]`) back to `y` (`[c_out, h·w]`), 16 pixels by 16 channels
    /// at a time, each value stored as `yt + bias[oc]` (no addition without a bias) with
    /// `store` applied.
    ///
    /// # Safety
    /// AVX-512F; `c_out` a multiple of 16, `yt` `[h·w, c_out]`; `y` points to `[c_out, h·w]`
    /// writable floats; `bias` and `store` bounded by the caller.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn to_planar(
        d: &Dims,
        yt: &[f32],
        bias: Option<&[f32]>,
        store: Store<'_>,
        y: *mut f32,
    ) {
        let (hw, c) = (d.h * d.w, d.c_out);
        let yt = yt.as_ptr();
        for kb in (0..c).step_by(LANES) {
            for p0 in (0..hw).step_by(LANES) {
                let n = (hw - p0).min(LANES);
                let mut r = [_mm512_setzero_ps(); 16];
                for (j, v) in r.iter_mut().take(n).enumerate() {
                    *v = _mm512_loadu_ps(yt.add((p0 + j) * c + kb));
                }
                transpose16(&mut r);
                for (i, acc) in r.iter().enumerate() {
                    let oc = kb + i;
                    let b = bias.map(|b| _mm512_set1_ps(b[oc]));
                    store_lanes(store, oc, b, *acc, oc * hw + p0, first(n), y);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The kernel against the plain definition of the convolution (f64), on maps of odd and
    //! even sizes, with and without a bias, and the 16x16 transpose against its definition.
    //! The op tests (`tests/ops_conv.rs`, the fused ops') and the goldens cover it in place.

    use super::*;
    use crate::ops::direct3x3::tests::{data, for_each_tap};

    fn close(got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (*g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
                "element {i}: {g} vs {w}"
            );
        }
    }

    #[test]
    fn forward_matches_the_definition() {
        if !available() {
            eprintln!("no AVX-512F on this CPU: the Winograd kernel is not used");
            assert!(!applies(&Dims {
                c_in: 16,
                c_out: 16,
                h: 8,
                w: 8
            }));
            return;
        }
        let shapes = [
            (16, 16, 32, 32),
            (32, 64, 8, 8),
            (64, 16, 5, 7),
            (16, 48, 1, 1),
            (48, 32, 3, 17),
        ];
        for (seed, (ci, co, h, w)) in shapes.into_iter().enumerate() {
            let d = Dims {
                c_in: ci,
                c_out: co,
                h,
                w,
            };
            assert!(applies(&d));
            let seed = 10 * seed as u32;
            let (x, wt, bias) = (
                data(ci * h * w, seed),
                data(co * ci * 9, seed + 1),
                data(co, seed + 2),
            );
            // Every other shape without a bias (the input gradient's form).
            let bias = seed.is_multiple_of(20).then_some(&bias[..]);
            let u = transform_filters(&d, &wt);
            let mut y = vec![MaybeUninit::new(f32::NAN); co * h * w];
            let got = forward_image(&d, &x, &u, bias, Store::default(), &mut y).to_vec();
            let mut want: Vec<f64> = (0..co * h * w)
                .map(|i| bias.map_or(0.0, |b| b[i / (h * w)] as f64))
                .collect();
            for_each_tap(d, |y, k, xi| want[y] += wt[k] as f64 * x[xi] as f64);
            close(&got, &want);
        }
    }

    #[test]
    fn the_store_epilogue_follows_the_sum() {
        if !available() {
            return;
        }
        let (ci, co, h, w) = (16, 32, 6, 5);
        let d = Dims {
            c_in: ci,
            c_out: co,
            h,
            w,
        };
        let (x, wt, bias) = (data(ci * h * w, 1), data(co * ci * 9, 2), data(co, 3));
        let residual = data(co * h * w, 4);
        let affine: Vec<(f32, f32, f32)> = (0..co).map(|c| (0.1 * c as f32, 1.5, -0.2)).collect();
        let u = transform_filters(&d, &wt);
        let mut plain = vec![MaybeUninit::new(f32::NAN); co * h * w];
        let plain = forward_image(&d, &x, &u, Some(&bias), Store::default(), &mut plain).to_vec();
        let store = Store {
            affine: Some(&affine),
            residual: Some(&residual),
            relu: true,
        };
        let mut y = vec![MaybeUninit::new(f32::NAN); co * h * w];
        let got = forward_image(&d, &x, &u, Some(&bias), store, &mut y);
        for (i, (&g, &p)) in got.iter().zip(&plain).enumerate() {
            let (m, k, b) = affine[i / (h * w)];
            assert_eq!(
                g.to_bits(),
                (((p - m) * k + b) + residual[i]).max(0.0).to_bits(),
                "element {i}"
            );
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn transposes_16x16() {
        use std::arch::x86_64::{_mm512_loadu_ps, _mm512_storeu_ps};
        if !available() {
            return;
        }
        let src: Vec<f32> = (0..256).map(|i| i as f32).collect();
        let mut dst = vec![0f32; 256];
        // SAFETY: AVX-512F is present; both buffers hold 16 rows of 16.
        unsafe {
            let mut r = [std::arch::x86_64::_mm512_setzero_ps(); 16];
            for (i, v) in r.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(src.as_ptr().add(16 * i));
            }
            avx512::transpose16(&mut r);
            for (i, v) in r.iter().enumerate() {
                _mm512_storeu_ps(dst.as_mut_ptr().add(16 * i), *v);
            }
        }
        for i in 0..16 {
            for j in 0..16 {
                assert_eq!(dst[16 * i + j], src[16 * j + i], "({i}, {j})");
            }
        }
    }
}
