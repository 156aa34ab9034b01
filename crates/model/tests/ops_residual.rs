//! The residual unit's final op (`ops::residual::add_relu`: `relu(a + b)` as one custom op)
//! against the composition of candle's `add` and the generic path's ReLU (PyTorch's gradient,
//! zero at 0), forward and both gradients, with exact zeros of `a + b` included; and the same
//! bits on any number of threads.

use ablate_model::ops::kernels::Kernels;
use ablate_model::ops::residual::add_relu;
use candle_core::{Result, Tensor, Var};

mod common;
use common::{rand_tensor, rng, with_threads};

fn values(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

#[test]
fn matches_add_then_relu_with_pytorchs_gradient_at_zero() -> Result<()> {
    let mut r = rng(3);
    let a = rand_tensor(&mut r, &[3, 4, 5, 7], -1.0, 1.0)?;
    // b = -a on the first image: a + b is exactly 0 there, where the gradient must be 0
    let b = rand_tensor(&mut r, &[3, 4, 5, 7], -1.0, 1.0)?;
    let b = Tensor::cat(&[&a.narrow(0, 0, 1)?.neg()?, &b.narrow(0, 1, 2)?], 0)?;
    let (va, vb) = (Var::from_tensor(&a)?, Var::from_tensor(&b)?);
    let dy = rand_tensor(&mut r, &[3, 4, 5, 7], -1.0, 1.0)?;
    let mut outs = Vec::new();
    for kernels in [Kernels::Fast, Kernels::Generic] {
        let y = add_relu(va.as_tensor(), vb.as_tensor(), kernels)?;
        let g = (&y * &dy)?.sum_all()?.backward()?;
        outs.push((
            values(&y)?,
            values(g.get(&va).expect("da"))?,
            values(g.get(&vb).expect("db"))?,
        ));
    }
    assert_eq!(outs[0], outs[1], "fast and generic differ");
    let (y, da, _) = &outs[0];
    let per_image = 4 * 5 * 7;
    assert!(y[..per_image].iter().all(|&v| v == 0.0));
    assert!(da[..per_image].iter().all(|&v| v == 0.0), "gradient at 0");
    assert!(da[per_image..].iter().any(|&v| v != 0.0));
    // shapes must agree
    assert!(add_relu(&a, &a.narrow(0, 0, 2)?, Kernels::Fast).is_err());
    Ok(())
}

#[test]
fn results_do_not_depend_on_thread_count() -> Result<()> {
    let mut r = rng(5);
    let a = Var::from_tensor(&rand_tensor(&mut r, &[4, 16, 32, 32], -1.0, 1.0)?)?;
    let b = rand_tensor(&mut r, &[4, 16, 32, 32], -1.0, 1.0)?;
    let run = |threads| {
        with_threads(threads, || -> Result<(Vec<f32>, Vec<f32>)> {
            let y = add_relu(a.as_tensor(), &b, Kernels::Fast)?;
            let g = y.sum_all()?.backward()?;
            Ok((values(&y)?, values(g.get(&a).expect("da"))?))
        })
    };
    let one = run(1)?;
    assert_eq!(one, run(2)?);
    assert_eq!(one, run(5)?);
    Ok(())
}
