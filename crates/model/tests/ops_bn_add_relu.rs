//! The end of a residual unit as one op (`ops::bn_add_relu` with `Kernels::Fast`,
//! `relu(bn(x) + r)`) against plain candle ops (`Kernels::Reference`: BatchNorm's reference
//! path, `add`, `relu`): output, batch statistics and the gradients of x, γ, β and the residual,
//! in training and evaluation mode, on odd shapes; thread counts.

use ablate_model::ops::bn_add_relu::{batch_norm_add_relu_eval, batch_norm_add_relu_train};
use ablate_model::ops::kernels::Kernels;
use candle_core::{Result, Tensor, Var};

mod common;
use common::{assert_same_on_any_thread_count, rand_tensor, rel_err, rng};

const EPS: f64 = 1e-5;

const SHAPES: &[(usize, usize, usize, usize)] = &[
    (4, 3, 5, 5),
    (1, 2, 3, 3),
    (7, 5, 1, 1),
    (3, 16, 8, 8),
    (2, 6, 9, 11),
];

/// Output, then (training) the batch statistics, then the gradients of x, γ, β and r for
/// `Σ out ⊙ w`.
fn run(
    seed: u64,
    (n, c, h, w): (usize, usize, usize, usize),
    train: bool,
    k: Kernels,
) -> Result<Vec<Tensor>> {
    let mut g = rng(seed);
    let x = Var::from_tensor(&rand_tensor(&mut g, &[n, c, h, w], -2.0, 2.0)?.affine(1.5, 0.7)?)?;
    let gamma = Var::from_tensor(&rand_tensor(&mut g, &[c], 0.5, 1.5)?)?;
    let beta = Var::from_tensor(&rand_tensor(&mut g, &[c], -0.5, 0.5)?)?;
    let r = Var::from_tensor(&rand_tensor(&mut g, &[n, c, h, w], -2.0, 2.0)?)?;
    let weights = rand_tensor(&mut g, &[n, c, h, w], -1.0, 1.0)?;
    let mut out = Vec::new();
    let y = if train {
        let (y, stats) = batch_norm_add_relu_train(&x, &gamma, &beta, &r, EPS, k)?;
        out.extend([stats.mean, stats.var_unbiased]);
        y
    } else {
        let rm = rand_tensor(&mut g, &[c], -0.5, 0.5)?;
        let rv = rand_tensor(&mut g, &[c], 0.5, 2.0)?;
        batch_norm_add_relu_eval(&x, &gamma, &beta, &rm, &rv, &r, EPS, k)?
    };
    let grads = (&y * &weights)?.sum_all()?.backward()?;
    out.insert(0, y);
    for v in [&x, &gamma, &beta, &r] {
        out.push(grads.get(v).cloned().expect("gradient"));
    }
    Ok(out)
}

#[test]
fn fused_op_matches_candle_composition() -> Result<()> {
    for (i, &s) in SHAPES.iter().enumerate() {
        for train in [true, false] {
            let fast = run(i as u64, s, train, Kernels::Fast)?;
            let reference = run(i as u64, s, train, Kernels::Reference)?;
            assert_eq!(fast.len(), reference.len());
            for (j, (a, b)) in fast.iter().zip(&reference).enumerate() {
                assert_eq!(a.dims(), b.dims());
                let e = rel_err(a, b)?;
                assert!(e < 1e-5, "{s:?} train={train}: tensor {j} rel err {e}");
            }
        }
    }
    Ok(())
}

#[test]
fn results_do_not_depend_on_thread_count() -> Result<()> {
    assert_same_on_any_thread_count(|| run(3, (9, 16, 6, 6), true, Kernels::Fast))?;
    Ok(())
}

#[test]
fn mismatched_residual_is_an_error() -> Result<()> {
    let mut g = rng(0);
    let x = rand_tensor(&mut g, &[2, 3, 4, 4], -1.0, 1.0)?;
    let r = rand_tensor(&mut g, &[2, 3, 4, 5], -1.0, 1.0)?;
    let p = rand_tensor(&mut g, &[3], 0.5, 1.5)?;
    let e = batch_norm_add_relu_train(&x, &p, &p, &r, EPS, Kernels::Fast).unwrap_err();
    assert!(e.to_string().contains("residual"), "{e}");
    Ok(())
}
