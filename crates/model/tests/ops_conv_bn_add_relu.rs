//! A residual unit's second half in training as one op (`ops::block::conv_bn_add_relu_train`:
//! convolution -> BatchNorm with batch statistics -> + shortcut -> ReLU) against the
//! composition of plain candle ops (`conv_bn_reference` without the ReLU on
//! `Kernels::Reference`, then `add` and `relu`): output, batch statistics and the gradients of
//! the input, weight, bias, γ, β and the residual, within 1e-5. Odd shapes, stride 1 and 2 (the
//! direct 3x3 kernel and im2col + gemm), with and without a bias; thread counts; bad input.

use ablate_model::ops::block::{conv_bn_add_relu_train, conv_bn_reference, BlockParams};
use ablate_model::ops::kernels::Kernels;
use candle_core::{Result, Tensor, Var};

mod common;
use common::{assert_same_on_any_thread_count, rand_tensor, rel_err, rng};

/// `(n, c_in, c_out, h, w, stride)`.
const SHAPES: &[(usize, usize, usize, usize, usize, usize)] = &[
    (3, 4, 6, 8, 8, 1),
    (2, 16, 16, 7, 5, 1),
    (4, 3, 5, 1, 1, 1),
    (4, 8, 16, 9, 9, 2),
    (2, 5, 7, 6, 10, 2),
];

/// Output, batch mean and unbiased variance, then the gradients of x, weight, (bias,) γ, β and
/// the residual for `Σ out ⊙ w`.
fn run(
    seed: u64,
    (n, ci, co, h, w, stride): (usize, usize, usize, usize, usize, usize),
    bias: bool,
    fused: bool,
) -> Result<Vec<Tensor>> {
    let mut g = rng(seed);
    let (oh, ow) = ((h - 1) / stride + 1, (w - 1) / stride + 1);
    let mut var = |dims: &[usize], lo, hi| -> Result<Var> {
        Var::from_tensor(&rand_tensor(&mut g, dims, lo, hi)?)
    };
    let x = var(&[n, ci, h, w], -2.0, 2.0)?;
    let weight = var(&[co, ci, 3, 3], -0.5, 0.5)?;
    let b = var(&[co], -0.5, 0.5)?;
    let gamma = var(&[co], 0.5, 1.5)?;
    let beta = var(&[co], -0.5, 0.5)?;
    let r = var(&[n, co, oh, ow], -2.0, 2.0)?;
    let weights = rand_tensor(&mut rng(seed + 100), &[n, co, oh, ow], -1.0, 1.0)?;
    let p = BlockParams {
        weight: weight.as_tensor(),
        bias: bias.then_some(b.as_tensor()),
        padding: 1,
        stride,
        gamma: gamma.as_tensor(),
        beta: beta.as_tensor(),
        eps: 1e-5,
        pool: false,
        gate: None,
    };
    let (y, stats) = if fused {
        conv_bn_add_relu_train(x.as_tensor(), &p, r.as_tensor())?
    } else {
        let (z, stats) = conv_bn_reference(x.as_tensor(), &p, None, Kernels::Reference, false)?;
        ((z + r.as_tensor())?.relu()?, stats)
    };
    let grads = (&y * &weights)?.sum_all()?.backward()?;
    let mut out = vec![y, stats.mean, stats.var_unbiased];
    let vars = [
        Some(&x),
        Some(&weight),
        bias.then_some(&b),
        Some(&gamma),
        Some(&beta),
        Some(&r),
    ];
    for v in vars.into_iter().flatten() {
        out.push(grads.get(v).cloned().expect("gradient"));
    }
    Ok(out)
}

#[test]
fn fused_op_matches_candle_composition() -> Result<()> {
    for (i, &s) in SHAPES.iter().enumerate() {
        for bias in [false, true] {
            let fast = run(i as u64, s, bias, true)?;
            let reference = run(i as u64, s, bias, false)?;
            assert_eq!(fast.len(), reference.len());
            for (j, (a, b)) in fast.iter().zip(&reference).enumerate() {
                assert_eq!(a.dims(), b.dims(), "{s:?} bias={bias}: tensor {j}");
                if bias && j == 5 {
                    // The bias gradient is zero in exact arithmetic (BatchNorm removes the
                    // batch mean): both sides are rounding noise.
                    let d = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
                    assert!(d < 1e-4, "{s:?}: bias gradient off by {d}");
                    continue;
                }
                let e = rel_err(a, b)?;
                assert!(e < 1e-5, "{s:?} bias={bias}: tensor {j} rel err {e}");
            }
        }
    }
    Ok(())
}

#[test]
fn results_do_not_depend_on_thread_count() -> Result<()> {
    assert_same_on_any_thread_count(|| run(3, (9, 16, 16, 6, 6, 1), true, true))?;
    Ok(())
}

#[test]
fn bad_input_is_an_error() -> Result<()> {
    let mut g = rng(0);
    let x = rand_tensor(&mut g, &[2, 3, 4, 4], -1.0, 1.0)?;
    let weight = rand_tensor(&mut g, &[5, 3, 3, 3], -1.0, 1.0)?;
    let c = rand_tensor(&mut g, &[5], 0.5, 1.5)?;
    let p = BlockParams {
        weight: &weight,
        bias: None,
        padding: 1,
        stride: 1,
        gamma: &c,
        beta: &c,
        eps: 1e-5,
        pool: false,
        gate: None,
    };
    let wrong = rand_tensor(&mut g, &[2, 5, 4, 3], -1.0, 1.0)?;
    let e = conv_bn_add_relu_train(&x, &p, &wrong).expect_err("a residual of the wrong shape");
    assert!(e.to_string().contains("residual"), "{e}");
    let pooled = BlockParams { pool: true, ..p };
    let right = rand_tensor(&mut g, &[2, 5, 4, 4], -1.0, 1.0)?;
    let e = conv_bn_add_relu_train(&x, &pooled, &right).expect_err("a pool");
    assert!(e.to_string().contains("pool"), "{e}");
    Ok(())
}
