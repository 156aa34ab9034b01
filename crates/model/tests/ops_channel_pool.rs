//! Spatial attention's channel mean and maximum (`ops::channel_pool::channel_mean_max`) against
//! candle's `mean_keepdim`/`max_keepdim` (`channel_mean_max_reference`): output and input
//! gradient on odd shapes; ties; thread counts.

use ablate_model::ops::channel_pool::{channel_mean_max, channel_mean_max_reference};
use ablate_model::ops::kernels::Kernels;
use candle_core::{Device, Result, Tensor, Var};

mod common;
use common::{rand_tensor, rel_err, rng, with_threads};

const SHAPES: &[(usize, usize, usize, usize)] =
    &[(4, 32, 8, 8), (1, 1, 3, 5), (3, 7, 1, 1), (2, 128, 4, 3)];

fn run(x: &Var, r: &Tensor, fast: bool) -> Result<(Tensor, Tensor)> {
    let y = if fast {
        channel_mean_max(x.as_tensor(), Kernels::Fast)?
    } else {
        channel_mean_max_reference(x.as_tensor(), Kernels::Reference)?
    };
    let g = (&y * r)?.sum_all()?.backward()?;
    Ok((y, g.get(x).cloned().expect("gradient")))
}

#[test]
fn output_and_gradient_match_candle() -> Result<()> {
    for (i, &(b, c, h, w)) in SHAPES.iter().enumerate() {
        let mut r = rng(i as u64);
        let x = Var::from_tensor(&rand_tensor(&mut r, &[b, c, h, w], -2.0, 2.0)?)?;
        let rr = rand_tensor(&mut r, &[b, 2, h, w], -1.0, 1.0)?;
        let (ya, ga) = run(&x, &rr, true)?;
        let (yb, gb) = run(&x, &rr, false)?;
        assert!(
            rel_err(&ya, &yb)? < 1e-6,
            "shape {:?}: output",
            (b, c, h, w)
        );
        assert!(
            rel_err(&ga, &gb)? < 1e-6,
            "shape {:?}: gradient",
            (b, c, h, w)
        );
    }
    Ok(())
}

#[test]
fn a_tied_maximum_sends_its_gradient_to_the_first_channel() -> Result<()> {
    let x = Var::from_tensor(&Tensor::ones(
        (1, 3, 1, 2),
        candle_core::DType::F32,
        &Device::Cpu,
    )?)?;
    let r = Tensor::from_vec(vec![0f32, 0.0, 1.0, 1.0], (1, 2, 1, 2), &Device::Cpu)?;
    let (_, g) = run(&x, &r, true)?;
    assert_eq!(
        g.flatten_all()?.to_vec1::<f32>()?,
        vec![1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    );
    Ok(())
}

#[test]
fn results_do_not_depend_on_thread_count() -> Result<()> {
    let mut r = rng(9);
    let x = Var::from_tensor(&rand_tensor(&mut r, &[9, 16, 6, 6], -1.0, 1.0)?)?;
    let rr = rand_tensor(&mut r, &[9, 2, 6, 6], -1.0, 1.0)?;
    let go = |t| -> Result<Vec<Vec<f32>>> {
        with_threads(t, || {
            let (y, g) = run(&x, &rr, true)?;
            Ok(vec![
                y.flatten_all()?.to_vec1::<f32>()?,
                g.flatten_all()?.to_vec1::<f32>()?,
            ])
        })
    };
    let one = go(1)?;
    assert_eq!(one, go(2)?);
    assert_eq!(one, go(5)?);
    Ok(())
}
