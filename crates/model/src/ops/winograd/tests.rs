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

/// `(c_in, c_out, h, w)`: the ResNets' three stages' sizes, odd maps, a 1x1 map, and channel
/// counts whose vectors leave each register-tile shape (4, 2 and 1 vectors of 16) in use.
const SHAPES: [(usize, usize, usize, usize); 5] = [
    (16, 16, 32, 32),
    (32, 64, 8, 8),
    (64, 16, 5, 7),
    (16, 48, 1, 1),
    (48, 32, 3, 17),
];

fn dims(c_in: usize, c_out: usize, h: usize, w: usize) -> Dims {
    Dims { c_in, c_out, h, w }
}

#[test]
fn forward_matches_the_definition() {
    if !available() {
        eprintln!("no AVX-512F on this CPU: the Winograd kernel is not used");
        assert!(!applies(&dims(16, 16, 8, 8)));
        return;
    }
    for (seed, (ci, co, h, w)) in SHAPES.into_iter().enumerate() {
        let d = dims(ci, co, h, w);
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
fn weight_gradient_matches_the_definition() {
    if !available() {
        return;
    }
    for (seed, (ci, co, h, w)) in SHAPES.into_iter().enumerate() {
        let d = dims(ci, co, h, w);
        let seed = 10 * seed as u32 + 5;
        let (x, dy) = (data(ci * h * w, seed), data(co * h * w, seed + 1));
        // Added to what is there, in the gemm's orientation `[c_in·9, c_out]`.
        let start = data(ci * 9 * co, seed + 2);
        let mut dw_t = start.clone();
        weight_grad(&d, &x, &dy, &mut dw_t);
        let mut want: Vec<f64> = (0..co * ci * 9)
            .map(|i| start[(i % (ci * 9)) * co + i / (ci * 9)] as f64)
            .collect();
        for_each_tap(d, |y, k, xi| want[k] += dy[y] as f64 * x[xi] as f64);
        let got: Vec<f32> = (0..co * ci * 9)
            .map(|i| dw_t[(i % (ci * 9)) * co + i / (ci * 9)])
            .collect();
        // The sums run over up to 1,024 pixels: relative to their scale.
        let scale = (h * w) as f64;
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (*g as f64 - w).abs() <= 1e-5 * (scale.sqrt() + w.abs()),
                "{:?} element {i}: {g} vs {w}",
                (ci, co, h, w)
            );
        }
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
