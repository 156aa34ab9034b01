//! The weight gradient's own passes (`super::weight_grad`), the adjoint of the forward's
//! factorization `Y_t = Aᵀ [Σ_c (G g_c Gᵀ) ⊙ V_t,c] A`: with `dM_t = A dY_t Aᵀ` for each tile's
//! 2x2 output gradient, `dU[e, c, k] = Σ_t dM_t[e, k] · V_t[e, c]`, then `dg = Gᵀ dU G`.
//! `V` is the forward's input transform (`super::avx512::input_transform`), recomputed.

// Index loops over the register tiles' constant dimensions are the kernels' shape: the compiler
// unrolls them and keeps every vector in a register.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::{
    __m512, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mul_ps, _mm512_set1_ps,
    _mm512_setzero_ps, _mm512_storeu_ps, _mm512_sub_ps,
};

use super::avx512::tiles;
use super::{Dims, LANES};

/// `m[e, t, k] = (A dY_t Aᵀ)[e]` for the 2x2 output gradient `dY_t` of every tile (zeros past
/// an odd map's edge), `A = [[1, 0], [1, 1], [1, -1], [0, -1]]`.
///
/// # Safety
/// AVX-512F; `c_out` a multiple of 16, `dyt` `[h·w, c_out]` (channel-last), `m` sized by
/// `Buffers::fit`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn output_adjoint(d: &Dims, dyt: &[f32], m: &mut [f32]) {
    let c = d.c_out;
    let (th, tw, t_all, _) = tiles(d);
    let (dyt, m) = (dyt.as_ptr(), m.as_mut_ptr());
    // `A` applied to two vectors.
    let a = |p: __m512, q: __m512| {
        [
            p,
            _mm512_add_ps(p, q),
            _mm512_sub_ps(p, q),
            _mm512_sub_ps(_mm512_setzero_ps(), q),
        ]
    };
    for ty in 0..th {
        for tx in 0..tw {
            let t = ty * tw + tx;
            for kv in (0..c).step_by(LANES) {
                let ld = |i: usize, j: usize| {
                    let (oy, ox) = (2 * ty + i, 2 * tx + j);
                    if oy < d.h && ox < d.w {
                        _mm512_loadu_ps(dyt.add((oy * d.w + ox) * c + kv))
                    } else {
                        _mm512_setzero_ps()
                    }
                };
                // `A dY` column by column, then each of its rows times `Aᵀ`.
                let (c0, c1) = (a(ld(0, 0), ld(1, 0)), a(ld(0, 1), ld(1, 1)));
                for i in 0..4 {
                    for (j, val) in a(c0[i], c1[i]).iter().enumerate() {
                        _mm512_storeu_ps(m.add(((i * 4 + j) * t_all + t) * c + kv), *val);
                    }
                }
            }
        }
    }
}

/// `du[e, c, k] = Σ_t v[e, t, c] · m[e, t, k]` for the 16 positions `e`, in register tiles of
/// `R` input channels by `NV` vectors of output channels, summed over the tiles in order.
///
/// # Safety
/// AVX-512F; both channel counts multiples of 16, `v`, `m` and `du` sized by `Buffers::fit`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn products(d: &Dims, v: &[f32], m: &[f32], du: &mut [f32]) {
    let (.., t_all, _) = tiles(d);
    let vectors = d.c_out / LANES;
    for e in 0..16 {
        let p = Operands {
            c_in: d.c_in,
            c_out: d.c_out,
            tiles: t_all,
            v: v.as_ptr().add(e * t_all * d.c_in),
            m: m.as_ptr().add(e * t_all * d.c_out),
            du: du.as_mut_ptr().add(e * d.c_in * d.c_out),
        };
        macro_rules! sweep {
            ($r:literal, $nv:literal) => {{
                for kv in (0..vectors).step_by($nv) {
                    for c in (0..d.c_in).step_by($r) {
                        tile::<$r, $nv>(p, c, kv);
                    }
                }
            }};
        }
        // `c_in` is a multiple of 16, so every channel tile is whole.
        match vectors {
            v if v.is_multiple_of(4) => sweep!(4, 4),
            v if v.is_multiple_of(2) => sweep!(8, 2),
            _ => sweep!(16, 1),
        }
    }
}

/// One position's operands of [`products`].
#[derive(Clone, Copy)]
struct Operands {
    c_in: usize,
    c_out: usize,
    tiles: usize,
    v: *const f32,
    m: *const f32,
    du: *mut f32,
}

/// `R` input channels from `c` by `NV` vectors of output channels from vector `kv`.
#[inline(always)]
unsafe fn tile<const R: usize, const NV: usize>(p: Operands, c: usize, kv: usize) {
    let mut acc = [[_mm512_setzero_ps(); NV]; R];
    for t in 0..p.tiles {
        let mut mv = [_mm512_setzero_ps(); NV];
        for n in 0..NV {
            mv[n] = _mm512_loadu_ps(p.m.add(t * p.c_out + (kv + n) * LANES));
        }
        for r in 0..R {
            let b = _mm512_set1_ps(*p.v.add(t * p.c_in + c + r));
            for n in 0..NV {
                acc[r][n] = _mm512_fmadd_ps(b, mv[n], acc[r][n]);
            }
        }
    }
    for r in 0..R {
        for n in 0..NV {
            _mm512_storeu_ps(p.du.add((c + r) * p.c_out + (kv + n) * LANES), acc[r][n]);
        }
    }
}

/// `dw_t[c·9 + 3i + j, k] += (Gᵀ du[·, c, k] G)[i, j]`, `Gᵀ = [[1, ½, ½, 0], [0, ½, -½, 0],
/// [0, ½, ½, 1]]`, 16 output channels at a time.
///
/// # Safety
/// AVX-512F; `c_out` a multiple of 16, `du` `[16, c_in, c_out]`, `dw_t` `[c_in·9, c_out]`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn filter_adjoint(d: &Dims, du: &[f32], dw_t: &mut [f32]) {
    let (ci, co) = (d.c_in, d.c_out);
    let (du, dw) = (du.as_ptr(), dw_t.as_mut_ptr());
    let half = _mm512_set1_ps(0.5);
    // `Gᵀ` applied to four vectors.
    let gt = |a: [__m512; 4]| {
        let s = _mm512_mul_ps(half, _mm512_add_ps(a[1], a[2]));
        [
            _mm512_add_ps(a[0], s),
            _mm512_mul_ps(half, _mm512_sub_ps(a[1], a[2])),
            _mm512_add_ps(s, a[3]),
        ]
    };
    for c in 0..ci {
        for kv in (0..co).step_by(LANES) {
            let ld = |e: usize| _mm512_loadu_ps(du.add((e * ci + c) * co + kv));
            // `Gᵀ dU` column by column, then each of its rows times `G`.
            let mut r = [[_mm512_setzero_ps(); 4]; 3];
            for b in 0..4 {
                let col = gt([ld(b), ld(4 + b), ld(8 + b), ld(12 + b)]);
                for i in 0..3 {
                    r[i][b] = col[i];
                }
            }
            for (i, ri) in r.iter().enumerate() {
                for (j, val) in gt(*ri).iter().enumerate() {
                    let at = dw.add((c * 9 + i * 3 + j) * co + kv);
                    _mm512_storeu_ps(at, _mm512_add_ps(_mm512_loadu_ps(at), *val));
                }
            }
        }
    }
}
