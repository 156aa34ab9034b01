//! Re-weighting by spatial attention's gate (`ops::scale::scale_pixels`) against candle's
//! `broadcast_mul` (`Kernels::Reference`): output and both gradients on odd shapes; thread
//! counts.

use ablate_model::ops::kernels::Kernels;
use ablate_model::ops::scale::scale_pixels;
use candle_core::{Result, Tensor, Var};

mod common;
use common::{rand_tensor, rel_err, rng, with_threads};

const SHAPES: &[(usize, usize, usize, usize)] = &[
    (4, 32, 8, 8),
    (1, 1, 3, 5),
    (3, 7, 1, 1),
    (2, 128, 4, 3),
    (5, 3, 9, 7),
];

/// Output and the gradients of x and g for `Σ out ⊙ r`.
fn run(seed: u64, (b, c, h, w): (usize, usize, usize, usize), k: Kernels) -> Result<Vec<Tensor>> {
    let mut r = rng(seed);
    let x = Var::from_tensor(&rand_tensor(&mut r, &[b, c, h, w], -2.0, 2.0)?)?;
    let g = Var::from_tensor(&rand_tensor(&mut r, &[b, 1, h, w], 0.0, 1.0)?)?;
    let rr = rand_tensor(&mut r, &[b, c, h, w], -1.0, 1.0)?;
    let y = scale_pixels(x.as_tensor(), g.as_tensor(), k)?;
    let grads = (&y * &rr)?.sum_all()?.backward()?;
    let dx = grads.get(&x).cloned().expect("dx");
    let dg = grads.get(&g).cloned().expect("dg");
    Ok(vec![y, dx, dg])
}

#[test]
fn output_and_gradients_match_candle() -> Result<()> {
    for (i, &s) in SHAPES.iter().enumerate() {
        let a = run(i as u64, s, Kernels::Fast)?;
        let b = run(i as u64, s, Kernels::Reference)?;
        for (j, (x, y)) in a.iter().zip(&b).enumerate() {
            let e = rel_err(x, y)?;
            assert!(e < 1e-5, "shape {s:?}: tensor {j} rel err {e}");
        }
    }
    Ok(())
}

#[test]
fn results_do_not_depend_on_thread_count() -> Result<()> {
    let go = |t| -> Result<Vec<Vec<f32>>> {
        with_threads(t, || {
            run(3, (9, 16, 6, 6), Kernels::Fast)?
                .iter()
                .map(|t| t.flatten_all()?.to_vec1::<f32>())
                .collect()
        })
    };
    let one = go(1)?;
    assert_eq!(one, go(2)?);
    assert_eq!(one, go(5)?);
    Ok(())
}
