//! The fused BatchNorm2d + ReLU op (`ops::bn_relu` with `Kernels::Fast`) against two references:
//! the plain-candle path (`batch_norm_{train,eval}_reference`: mean/var/normalize/affine/ReLU
//! as candle ops, differentiated by candle's autograd) for outputs, batch statistics and all
//! gradients, and central finite differences of the fast op itself along random directions.

use ablate_model::ops::bn_relu::{
    batch_norm_eval, batch_norm_eval_reference, batch_norm_train, batch_norm_train_reference,
    update_running,
};
use ablate_model::ops::kernels::Kernels;
use candle_core::{Result, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

mod common;
use common::{dot, rand_tensor, rel_err};

const EPS: f64 = 1e-5;

/// Shapes `(n, c, h, w)`: batch 1, odd sizes, a 1x1 image, the seed's channel counts at small
/// spatial sizes.
const SHAPES: &[(usize, usize, usize, usize)] = &[
    (4, 3, 5, 5),
    (1, 2, 3, 3),
    (1, 4, 1, 7),
    (7, 5, 1, 1),
    (3, 32, 4, 4),
    (2, 6, 9, 11),
];

struct Case {
    x: Var,
    gamma: Var,
    beta: Var,
    running_mean: Tensor,
    running_var: Tensor,
    r: Tensor,
}

fn case(seed: u64, (n, c, h, w): (usize, usize, usize, usize)) -> Result<Case> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // An offset and a scale per tensor, so that the statistics are not trivially 0 and 1.
    let x = rand_tensor(&mut rng, &[n, c, h, w], -2.0, 2.0)?.affine(1.5, 0.7)?;
    Ok(Case {
        x: Var::from_tensor(&x)?,
        gamma: Var::from_tensor(&rand_tensor(&mut rng, &[c], 0.5, 1.5)?)?,
        beta: Var::from_tensor(&rand_tensor(&mut rng, &[c], -0.5, 0.5)?)?,
        running_mean: rand_tensor(&mut rng, &[c], -0.5, 0.5)?,
        running_var: rand_tensor(&mut rng, &[c], 0.5, 2.0)?,
        r: rand_tensor(&mut rng, &[n, c, h, w], -1.0, 1.0)?,
    })
}

#[test]
fn train_mode_matches_candle_reference() -> Result<()> {
    for (i, &s) in SHAPES.iter().enumerate() {
        for relu in [true, false] {
            let c = case(i as u64, s)?;
            let (yf, sf) = batch_norm_train(&c.x, &c.gamma, &c.beta, EPS, relu, Kernels::Fast)?;
            let (yr, sr) =
                batch_norm_train_reference(&c.x, &c.gamma, &c.beta, EPS, relu, Kernels::Reference)?;
            let e = rel_err(&yf, &yr)?;
            assert!(e < 1e-5, "forward {s:?} relu={relu}: rel err {e}");
            assert!(rel_err(&sf.mean, &sr.mean)? < 1e-5, "mean {s:?}");
            assert!(
                rel_err(&sf.var_unbiased, &sr.var_unbiased)? < 1e-5,
                "var {s:?}"
            );

            let gf = (yf * &c.r)?.sum_all()?.backward()?;
            let gr = (yr * &c.r)?.sum_all()?.backward()?;
            for (name, v) in [("x", &c.x), ("gamma", &c.gamma), ("beta", &c.beta)] {
                let e = rel_err(gf.get(v).expect("fast"), gr.get(v).expect("reference"))?;
                assert!(e < 1e-5, "d{name} {s:?} relu={relu}: rel err {e}");
            }
        }
    }
    Ok(())
}

#[test]
fn eval_mode_matches_candle_reference() -> Result<()> {
    for (i, &s) in SHAPES.iter().enumerate() {
        for relu in [true, false] {
            let c = case(10 + i as u64, s)?;
            let (rm, rv) = (&c.running_mean, &c.running_var);
            let yf = batch_norm_eval(&c.x, &c.gamma, &c.beta, rm, rv, EPS, relu, Kernels::Fast)?;
            let yr = batch_norm_eval_reference(
                &c.x,
                &c.gamma,
                &c.beta,
                rm,
                rv,
                EPS,
                relu,
                Kernels::Reference,
            )?;
            let e = rel_err(&yf, &yr)?;
            assert!(e < 1e-5, "eval forward {s:?} relu={relu}: rel err {e}");
            let gf = (yf * &c.r)?.sum_all()?.backward()?;
            let gr = (yr * &c.r)?.sum_all()?.backward()?;
            for (name, v) in [("x", &c.x), ("gamma", &c.gamma), ("beta", &c.beta)] {
                let e = rel_err(gf.get(v).expect("fast"), gr.get(v).expect("reference"))?;
                assert!(e < 1e-5, "eval d{name} {s:?} relu={relu}: rel err {e}");
            }
        }
    }
    Ok(())
}

#[test]
fn train_gradients_match_finite_differences() -> Result<()> {
    for (i, &s) in SHAPES.iter().enumerate() {
        for relu in [true, false] {
            let c = case(20 + i as u64, s)?;
            // Loss weights zeroed where the pre-activation lies within 0.05 of ReLU's kink, so
            // that no perturbation below crosses it (the difference quotient would then
            // measure the kink, not the derivative).
            let (z, _) = batch_norm_train(&c.x, &c.gamma, &c.beta, EPS, false, Kernels::Fast)?;
            let far = z.abs()?.ge(0.05)?.to_dtype(candle_core::DType::F32)?;
            let r = (&c.r * far)?;
            let loss = |x: &Tensor, g: &Tensor, b: &Tensor| -> Result<f64> {
                dot(&batch_norm_train(x, g, b, EPS, relu, Kernels::Fast)?.0, &r)
            };
            let (y, _) = batch_norm_train(&c.x, &c.gamma, &c.beta, EPS, relu, Kernels::Fast)?;
            let grads = (y * &r)?.sum_all()?.backward()?;
            let mut rng = ChaCha8Rng::seed_from_u64(30 + i as u64);
            let (x, g, b) = (c.x.as_tensor(), c.gamma.as_tensor(), c.beta.as_tensor());
            for which in 0..3 {
                let target = [x, g, b][which];
                let dir = rand_tensor(&mut rng, target.dims(), -1.0, 1.0)?;
                // Step 1e-2: the central difference's truncation error is O(h²); the f32
                // rounding of the outputs summed into the loss, divided by 2h, is a few 1e-4
                // relative, hence the tolerance 1e-3.
                let h = 1e-2;
                let plus = (target + (&dir * h)?)?;
                let minus = (target - (&dir * h)?)?;
                let (lp, lm) = match which {
                    0 => (loss(&plus, g, b)?, loss(&minus, g, b)?),
                    1 => (loss(x, &plus, b)?, loss(x, &minus, b)?),
                    _ => (loss(x, g, &plus)?, loss(x, g, &minus)?),
                };
                let fd = (lp - lm) / (2.0 * h);
                let analytic = dot(grads.get(target).expect("gradient"), &dir)?;
                let scale = fd.abs().max(analytic.abs()).max(1e-1);
                let e = (fd - analytic).abs() / scale;
                assert!(
                    e < 1e-3,
                    "arg {which} {s:?} relu={relu}: fd {fd} analytic {analytic} rel err {e}"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn running_statistics_update_matches_pytorch_formula() -> Result<()> {
    // PyTorch: running = 0.9 * running + 0.1 * batch, with the unbiased batch variance.
    let c = case(3, (5, 3, 4, 2))?;
    let (_, st) = batch_norm_train(&c.x, &c.gamma, &c.beta, EPS, true, Kernels::Fast)?;
    let x = c.x.as_tensor();
    let m = (5 * 4 * 2) as f64;
    let mean = x.mean_keepdim((0, 2, 3))?.flatten_all()?;
    let var = (x
        .broadcast_sub(&x.mean_keepdim((0, 2, 3))?)?
        .sqr()?
        .sum_keepdim((0, 2, 3))?
        / (m - 1.0))?
        .flatten_all()?;
    let rm = update_running(&c.running_mean, &st.mean, 0.1)?;
    let rv = update_running(&c.running_var, &st.var_unbiased, 0.1)?;
    let rm_expected = ((&c.running_mean * 0.9)? + (mean * 0.1)?)?;
    let rv_expected = ((&c.running_var * 0.9)? + (var * 0.1)?)?;
    assert!(rel_err(&rm, &rm_expected)? < 1e-6);
    assert!(rel_err(&rv, &rv_expected)? < 1e-6);
    Ok(())
}

#[test]
fn single_value_per_channel_is_an_error_in_training() -> Result<()> {
    let c = case(4, (1, 3, 1, 1))?;
    assert!(batch_norm_train(&c.x, &c.gamma, &c.beta, EPS, true, Kernels::Fast).is_err());
    assert!(
        batch_norm_train_reference(&c.x, &c.gamma, &c.beta, EPS, true, Kernels::Reference).is_err()
    );
    Ok(())
}

#[test]
fn results_do_not_depend_on_thread_count() -> Result<()> {
    let c = case(9, (6, 5, 7, 3))?;
    let run = |threads: usize| -> Result<Vec<Vec<f32>>> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool");
        pool.install(|| {
            let (y, st) = batch_norm_train(&c.x, &c.gamma, &c.beta, EPS, true, Kernels::Fast)?;
            let g = (&y * &c.r)?.sum_all()?.backward()?;
            let mut out = vec![
                y.flatten_all()?.to_vec1::<f32>()?,
                st.var_unbiased.to_vec1()?,
            ];
            for v in [&c.x, &c.gamma, &c.beta] {
                out.push(
                    g.get(v)
                        .expect("gradient")
                        .flatten_all()?
                        .to_vec1::<f32>()?,
                );
            }
            Ok(out)
        })
    };
    let one = run(1)?;
    assert_eq!(one, run(2)?);
    assert_eq!(one, run(4)?);
    Ok(())
}

#[test]
fn statistics_stay_accurate_with_a_large_mean() -> Result<()> {
    // Mean 300 and standard deviation about 0.6: a naive one-pass E[x²] - E[x]² in f32 would
    // lose the variance entirely. Reference: candle's two-pass mean and centered squares.
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let x = rand_tensor(&mut rng, &[8, 4, 6, 6], -1.0, 1.0)?.affine(1.0, 300.0)?;
    let g = rand_tensor(&mut rng, &[4], 0.5, 1.5)?;
    let b = rand_tensor(&mut rng, &[4], -0.5, 0.5)?;
    let (yf, sf) = batch_norm_train(&x, &g, &b, EPS, false, Kernels::Fast)?;
    let (yr, sr) = batch_norm_train_reference(&x, &g, &b, EPS, false, Kernels::Reference)?;
    let e = rel_err(&sf.var_unbiased, &sr.var_unbiased)?;
    assert!(e < 1e-4, "variance rel err {e}");
    let e = rel_err(&yf, &yr)?;
    assert!(e < 1e-3, "output rel err {e}");
    Ok(())
}
