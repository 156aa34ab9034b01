//! The two per-plane sums of BatchNorm's backward, `Σ dz` and `Σ dz·x̂` with `x̂ = (x - m)·is`,
//! where `dz` is the gradient at the BatchNorm's output, masked by the ReLU that follows it
//! where there is one: one definition for the fast ops that end in a BatchNorm (`bn_relu`, the
//! block op, the residual unit's training tail).
//!
//! Every sum runs in f32 lanes `i mod 8`, element by element in order, and the eight lanes are
//! then added in f64: a fixed order, so the result does not depend on threads, and the same
//! with the AVX kernel as with the portable loop (the same IEEE operations per lane: the mask
//! selects `dz` or `+0`, then one multiplication and one addition each). The portable loop's
//! conditional compiles to a branch per element on the baseline x86-64 target; the AVX kernel,
//! chosen at run time, masks eight lanes at once.

/// Which elements of the output gradient count (the others count as `+0`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Keep<'a> {
    /// Every element.
    All,
    /// Where `gate[i] > 0`: a ReLU's output (or input) saved by the forward.
    Positive(&'a [f32]),
    /// Where `(x[i] - m)·k + b > 0`: the ReLU of the BatchNorm's output, recomputed from `x`.
    Affine { k: f32, b: f32 },
}

/// `(Σ d_i, Σ d_i·((x_i - m)·is))` over one plane, `d_i = dz_i` where `keep` holds, else `+0`.
///
/// # Shapes
/// `dz`, `x` and a [`Keep::Positive`] gate: the same length.
pub(crate) fn masked_moments(dz: &[f32], x: &[f32], m: f32, is: f32, keep: Keep<'_>) -> (f64, f64) {
    assert_eq!(dz.len(), x.len());
    if let Keep::Positive(g) = keep {
        assert_eq!(g.len(), dz.len());
    }
    let (mut a, mut b) = ([0f32; 8], [0f32; 8]);
    let body = dz.len() / 8 * 8;
    #[cfg(target_arch = "x86_64")]
    if avx() {
        // SAFETY: AVX is present; the asserts above bound every slice to `dz.len() >= body`.
        unsafe { avx::lanes(&dz[..body], &x[..body], m, is, keep, &mut a, &mut b) };
    } else {
        lanes(&dz[..body], &x[..body], m, is, keep, 0, &mut a, &mut b);
    }
    #[cfg(not(target_arch = "x86_64"))]
    lanes(&dz[..body], &x[..body], m, is, keep, 0, &mut a, &mut b);
    lanes(&dz[body..], &x[body..], m, is, keep, body, &mut a, &mut b);
    (
        a.iter().map(|&v| v as f64).sum(),
        b.iter().map(|&v| v as f64).sum(),
    )
}

/// The portable loop: element `i` of the slices (element `from + i` of the plane, for the
/// gate) into lane `i mod 8` (`from` is a multiple of 8).
#[allow(clippy::too_many_arguments)]
fn lanes(
    dz: &[f32],
    x: &[f32],
    m: f32,
    is: f32,
    keep: Keep<'_>,
    from: usize,
    a: &mut [f32; 8],
    b: &mut [f32; 8],
) {
    for (i, (&dv, &xv)) in dz.iter().zip(x).enumerate() {
        let t = xv - m;
        let kept = match keep {
            Keep::All => true,
            Keep::Positive(g) => g[from + i] > 0.0,
            Keep::Affine { k, b } => t * k + b > 0.0,
        };
        let d = if kept { dv } else { 0.0 };
        a[i % 8] += d;
        b[i % 8] += d * (t * is);
    }
}

/// Whether this CPU has AVX, detected once.
#[cfg(target_arch = "x86_64")]
fn avx() -> bool {
    static AVX: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVX.get_or_init(|| std::arch::is_x86_feature_detected!("avx"))
}

#[cfg(target_arch = "x86_64")]
mod avx {
    //! [`super::lanes`] on eight lanes at once.

    use std::arch::x86_64::{
        _mm256_add_ps, _mm256_and_ps, _mm256_castsi256_ps, _mm256_cmp_ps, _mm256_loadu_ps,
        _mm256_mul_ps, _mm256_set1_epi32, _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps,
        _mm256_sub_ps, _CMP_GT_OQ,
    };

    use super::Keep;

    /// See `super::lanes`, for slices whose length is a multiple of 8, from the plane's start.
    ///
    /// # Safety
    /// AVX must be present; `x` and a [`Keep::Positive`] gate at least as long as `dz`.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn lanes(
        dz: &[f32],
        x: &[f32],
        m: f32,
        is: f32,
        keep: Keep<'_>,
        a: &mut [f32; 8],
        b: &mut [f32; 8],
    ) {
        let (mv, isv, zero) = (_mm256_set1_ps(m), _mm256_set1_ps(is), _mm256_setzero_ps());
        let all = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
        let (mut av, mut bv) = (_mm256_loadu_ps(a.as_ptr()), _mm256_loadu_ps(b.as_ptr()));
        for i in (0..dz.len() / 8 * 8).step_by(8) {
            let (dv, xv) = (
                _mm256_loadu_ps(dz.as_ptr().add(i)),
                _mm256_loadu_ps(x.as_ptr().add(i)),
            );
            let t = _mm256_sub_ps(xv, mv);
            let kept = match keep {
                Keep::All => all,
                Keep::Positive(g) => {
                    _mm256_cmp_ps::<_CMP_GT_OQ>(_mm256_loadu_ps(g.as_ptr().add(i)), zero)
                }
                Keep::Affine { k, b } => {
                    let z = _mm256_add_ps(_mm256_mul_ps(t, _mm256_set1_ps(k)), _mm256_set1_ps(b));
                    _mm256_cmp_ps::<_CMP_GT_OQ>(z, zero)
                }
            };
            let d = _mm256_and_ps(kept, dv);
            av = _mm256_add_ps(av, d);
            bv = _mm256_add_ps(bv, _mm256_mul_ps(d, _mm256_mul_ps(t, isv)));
        }
        _mm256_storeu_ps(a.as_mut_ptr(), av);
        _mm256_storeu_ps(b.as_mut_ptr(), bv);
    }
}

#[cfg(test)]
mod tests {
    //! The AVX kernel against the portable loop, bit for bit, on planes whose lengths leave
    //! remainders, every kind of mask, NaN and signed zeros included.

    use super::*;
    use crate::ops::direct3x3::tests::data;

    /// Pseudo-random values in [-1, 1] with a `-0` and a `+0` every 37 elements, at positions
    /// that depend on the seed (so that a gate's zeros meet nonzero gradients).
    fn plane(n: usize, seed: u32) -> Vec<f32> {
        let mut v = data(n, seed);
        for (i, x) in v.iter_mut().enumerate() {
            match (i + 3 * seed as usize) % 37 {
                5 => *x = -0.0,
                11 => *x = 0.0,
                _ => {}
            }
        }
        v
    }

    #[test]
    fn every_path_sums_the_same_bits() {
        for n in [0, 1, 7, 8, 9, 64, 100, 1024, 1031] {
            let (dz, x, g) = (plane(n, 1), plane(n, 2), plane(n, 3));
            let mut gn = g.clone();
            if n > 3 {
                gn[3] = f32::NAN;
            }
            for keep in [
                Keep::All,
                Keep::Positive(&g),
                Keep::Positive(&gn),
                Keep::Affine { k: 1.7, b: -0.1 },
            ] {
                let (m, is) = (0.05, 1.3);
                let got = masked_moments(&dz, &x, m, is, keep);
                let (mut a, mut b) = ([0f32; 8], [0f32; 8]);
                lanes(&dz, &x, m, is, keep, 0, &mut a, &mut b);
                let want: (f64, f64) = (
                    a.iter().map(|&v| v as f64).sum(),
                    b.iter().map(|&v| v as f64).sum(),
                );
                assert_eq!(got.0.to_bits(), want.0.to_bits(), "{n} {keep:?}");
                assert_eq!(got.1.to_bits(), want.1.to_bits(), "{n} {keep:?}");
                // And against f64 arithmetic, loosely (the lanes round in f32).
                let (mut sa, mut sb) = (0f64, 0f64);
                for i in 0..n {
                    let t = (x[i] - m) as f64;
                    let kept = match keep {
                        Keep::All => true,
                        Keep::Positive(g) => g[i] > 0.0,
                        Keep::Affine { k, b } => (x[i] - m) * k + b > 0.0,
                    };
                    if kept {
                        sa += dz[i] as f64;
                        sb += dz[i] as f64 * t * is as f64;
                    }
                }
                assert!((got.0 - sa).abs() < 1e-4 * (1.0 + sa.abs()), "{n} {keep:?}");
                assert!((got.1 - sb).abs() < 1e-4 * (1.0 + sb.abs()), "{n} {keep:?}");
            }
        }
    }
}
