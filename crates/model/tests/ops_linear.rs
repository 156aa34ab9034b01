//! The fully connected op (`ops::linear::linear` with `Kernels::Fast`) against candle's
//! `matmul` + broadcast bias (`linear_reference`, differentiated by candle's autograd): output and
//! every gradient, with and without bias; and bit-identical results on 1, 2 and 5 threads.

use ablate_model::ops::kernels::Kernels;
use ablate_model::ops::linear::{linear, linear_reference};
use candle_core::{Result, Tensor, Var};

mod common;
use common::{rand_tensor, rel_err, rng, with_threads};

/// `(n, in, out)`: the seed's fc2 and (smaller) fc1, a single row, a single feature.
const SHAPES: &[(usize, usize, usize)] =
    &[(64, 512, 10), (5, 300, 70), (1, 7, 3), (9, 1, 4), (3, 4, 1)];

fn run(
    seed: u64,
    (n, fin, fout): (usize, usize, usize),
    bias: bool,
    k: Kernels,
) -> Result<Vec<Tensor>> {
    let mut r = rng(seed);
    let x = Var::from_tensor(&rand_tensor(&mut r, &[n, fin], -1.0, 1.0)?)?;
    let w = Var::from_tensor(&rand_tensor(&mut r, &[fout, fin], -0.5, 0.5)?)?;
    let b = Var::from_tensor(&rand_tensor(&mut r, &[fout], -0.5, 0.5)?)?;
    let rr = rand_tensor(&mut r, &[n, fout], -1.0, 1.0)?;
    let bias_t = bias.then(|| b.as_tensor());
    let y = match k {
        Kernels::Reference => linear_reference(x.as_tensor(), w.as_tensor(), bias_t)?,
        k => linear(x.as_tensor(), w.as_tensor(), bias_t, k)?,
    };
    let g = (&y * &rr)?.sum_all()?.backward()?;
    let mut out = vec![y];
    let vars: Vec<&Var> = if bias { vec![&x, &w, &b] } else { vec![&x, &w] };
    for v in vars {
        out.push(g.get(v).cloned().expect("gradient"));
    }
    if !bias {
        assert!(g.get(&b).is_none());
    }
    Ok(out)
}

#[test]
fn forward_and_gradients_match_candle() -> Result<()> {
    for (i, &s) in SHAPES.iter().enumerate() {
        for bias in [true, false] {
            let fast = run(i as u64, s, bias, Kernels::Fast)?;
            let reference = run(i as u64, s, bias, Kernels::Reference)?;
            for (j, (a, b)) in fast.iter().zip(&reference).enumerate() {
                let e = rel_err(a, b)?;
                assert!(e < 1e-5, "shape {s:?} bias {bias}: tensor {j} rel err {e}");
            }
        }
    }
    Ok(())
}

#[test]
fn results_do_not_depend_on_thread_count() -> Result<()> {
    let collect = |threads| -> Result<Vec<Vec<f32>>> {
        with_threads(threads, || {
            run(7, (64, 2048, 512), true, Kernels::Fast)?
                .iter()
                .map(|t| t.flatten_all()?.to_vec1::<f32>())
                .collect()
        })
    };
    let one = collect(1)?;
    assert_eq!(one, collect(2)?);
    assert_eq!(one, collect(5)?);
    Ok(())
}

#[test]
fn gradients_match_finite_differences() -> Result<()> {
    // `Σ r ⊙ (x·Wᵀ + b)` is quadratic along any direction in (x, W, b), so a central difference
    // with step 1 equals the directional derivative up to rounding.
    let mut r = rng(21);
    let (n, fin, fout) = (6, 33, 9);
    let x = Var::from_tensor(&rand_tensor(&mut r, &[n, fin], -1.0, 1.0)?)?;
    let w = Var::from_tensor(&rand_tensor(&mut r, &[fout, fin], -1.0, 1.0)?)?;
    let b = Var::from_tensor(&rand_tensor(&mut r, &[fout], -1.0, 1.0)?)?;
    let rr = rand_tensor(&mut r, &[n, fout], -1.0, 1.0)?;
    let vars = [&x, &w, &b];
    let dirs: Vec<Tensor> = vars
        .iter()
        .map(|v| rand_tensor(&mut r, v.dims(), -1.0, 1.0))
        .collect::<Result<_>>()?;
    let f = |t: f64| -> Result<f64> {
        let p: Vec<Tensor> = vars
            .iter()
            .zip(&dirs)
            .map(|(v, d)| v.as_tensor().detach() + (d * t)?)
            .collect::<Result<_>>()?;
        common::dot(&linear(&p[0], &p[1], Some(&p[2]), Kernels::Fast)?, &rr)
    };
    let y = linear(
        x.as_tensor(),
        w.as_tensor(),
        Some(b.as_tensor()),
        Kernels::Fast,
    )?;
    let g = (&y * &rr)?.sum_all()?.backward()?;
    let analytic: f64 = vars
        .iter()
        .zip(&dirs)
        .map(|(v, d)| common::dot(g.get(v).expect("gradient"), d))
        .sum::<Result<f64>>()?;
    let fd = (f(1.0)? - f(-1.0)?) / 2.0;
    let rel = (fd - analytic).abs() / analytic.abs().max(1e-3);
    assert!(
        rel < 1e-4,
        "finite difference {fd}, analytic {analytic}, rel {rel}"
    );
    Ok(())
}
