//! The passes of `super::forward_image` (and the two the weight gradient shares with it, the
//! input's transpose and transform). Each takes the buffers as sized by `Buffers::fit`.

// Index loops over the register tiles' constant dimensions are the kernels' shape: the compiler
// unrolls them and keeps every vector in a register.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::{
    __m512, _mm512_add_ps, _mm512_castpd_ps, _mm512_castps_pd, _mm512_fmadd_ps, _mm512_loadu_ps,
    _mm512_maskz_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_shuffle_f32x4,
    _mm512_storeu_ps, _mm512_sub_ps, _mm512_unpackhi_pd, _mm512_unpackhi_ps, _mm512_unpacklo_pd,
    _mm512_unpacklo_ps,
};

use super::{Dims, Store, LANES};
use crate::ops::direct3x3::store_lanes;

/// Tiles `(th, tw)`, their count and the bordered map's row length `2·tw + 2`.
pub(super) fn tiles(d: &Dims) -> (usize, usize, usize, usize) {
    let (th, tw) = (d.h.div_ceil(2), d.w.div_ceil(2));
    (th, tw, th * tw, 2 * tw + 2)
}

/// The lanes of the first `n <= 16` elements.
pub(super) fn first(n: usize) -> u16 {
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

/// `src` (`[c, hw]`) channel-last into `dst`: pixel `p`'s channels at `dst[at(p)·c..]`, 16
/// channels by 16 pixels at a time.
#[inline(always)]
unsafe fn gather_channel_last(
    c: usize,
    hw: usize,
    src: *const f32,
    dst: *mut f32,
    at: impl Fn(usize) -> usize,
) {
    for cb in (0..c).step_by(LANES) {
        for p0 in (0..hw).step_by(LANES) {
            let n = (hw - p0).min(LANES);
            let mut r = [_mm512_setzero_ps(); 16];
            for (i, v) in r.iter_mut().enumerate() {
                *v = _mm512_maskz_loadu_ps(first(n), src.add((cb + i) * hw + p0));
            }
            transpose16(&mut r);
            for (j, v) in r.iter().take(n).enumerate() {
                _mm512_storeu_ps(dst.add(at(p0 + j) * c + cb), *v);
            }
        }
    }
}

/// Pass 1: `x` (`[c_in, h·w]`) into `xb`'s interior, channel-last.
///
/// # Safety
/// AVX-512F; `c_in` a multiple of 16, `x` `[c_in, h·w]`, `xb` sized by `Buffers::fit`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn to_bordered(d: &Dims, x: &[f32], xb: &mut [f32]) {
    let (.., row) = tiles(d);
    let at = |p: usize| (p / d.w + 1) * row + p % d.w + 1;
    gather_channel_last(d.c_in, d.h * d.w, x.as_ptr(), xb.as_mut_ptr(), at);
}

/// `src` (`[c, hw]`) into `dst` (`[hw, c]`).
///
/// # Safety
/// AVX-512F; `c` a multiple of 16, `src` and `dst` hold `c·hw`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn to_channel_last(c: usize, hw: usize, src: &[f32], dst: &mut [f32]) {
    gather_channel_last(c, hw, src.as_ptr(), dst.as_mut_ptr(), |p| p);
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
