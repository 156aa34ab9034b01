//! CBAM and spatial attention as one op (`ops::cbam`, what the modules run with the fast
//! kernels) against the modules composed of plain candle ops (`Kernels::Reference`): output,
//! gates, the input's and every parameter's gradient, on odd shapes (maps smaller than the
//! kernel, one channel, one pixel), both gate functions, with and without biases, every channel
//! descriptor; with the 2x2 max-pool that follows in the seed CNN's blocks (against the modules
//! then `max_pool2x2`); thread counts.

use ablate_model::attention::{Attention, Cbam, Names, SeConfig, SpatialAttention, SpatialConfig};
use ablate_model::ops::block::SeParams;
use ablate_model::ops::cbam::{cbam, SpatialGateParams};
use ablate_model::ops::kernels::Kernels;
use ablate_model::ops::max_pool2x2;
use ablate_model::{DropoutMasks, GateFunction, Mode, Squeeze};
use candle_core::{Device, Result, Tensor, Var};

mod common;
use common::{rand_tensor, rel_err, rng, with_threads};

/// One case: map shape, spatial kernel, biases, gate function, channel gate (its descriptor).
#[derive(Clone, Copy, Debug)]
struct Case {
    shape: (usize, usize, usize, usize),
    kernel: usize,
    bias: bool,
    gate: GateFunction,
    channel: Option<Squeeze>,
}

const fn case(
    shape: (usize, usize, usize, usize),
    kernel: usize,
    bias: bool,
    gate: GateFunction,
    channel: Option<Squeeze>,
) -> Case {
    Case {
        shape,
        kernel,
        bias,
        gate,
        channel,
    }
}

const SIG: GateFunction = GateFunction::Sigmoid;
const HARD: GateFunction = GateFunction::HardSigmoid;

const CASES: &[Case] = &[
    case((4, 32, 8, 8), 7, false, SIG, Some(Squeeze::AvgMax)),
    case((3, 5, 7, 6), 7, true, SIG, Some(Squeeze::AvgMax)),
    case((2, 16, 9, 11), 3, true, HARD, Some(Squeeze::AvgMax)),
    case((2, 8, 5, 4), 5, false, SIG, Some(Squeeze::Avg)),
    case((2, 8, 5, 4), 5, true, HARD, Some(Squeeze::Max)),
    case((1, 1, 1, 1), 7, true, SIG, Some(Squeeze::AvgMax)),
    case((3, 1, 4, 3), 3, false, SIG, None),
    case((4, 32, 8, 8), 7, false, SIG, None),
    case((2, 6, 3, 2), 7, true, HARD, None),
    case((2, 64, 16, 16), 7, false, SIG, None),
];

fn module(c: &Case, kernels: Kernels) -> Result<Attention> {
    let channels = c.shape.1;
    let spatial = SpatialConfig {
        kernel: c.kernel,
        gate: c.gate,
        bias: c.bias,
    };
    let dev = Device::Cpu;
    let mut m = match c.channel {
        Some(squeeze) => Attention::Cbam(Cbam::new(
            SeConfig {
                channels,
                hidden: (channels / 2).max(1),
                squeeze,
                gate: c.gate,
                bias: c.bias,
            },
            spatial,
            Names {
                channel: "ca1",
                spatial: "sa1",
            },
            7,
            &dev,
        )?),
        None => Attention::Spatial(SpatialAttention::new(spatial, "sa1", 7, &dev)?),
    };
    m.set_kernels(kernels);
    Ok(m)
}

/// Output, gates, then the gradients of the input and of every parameter for `Σ out ⊙ r`.
fn run(seed: u64, c: &Case, kernels: Kernels) -> Result<Vec<(String, Tensor)>> {
    let (b, ch, h, w) = c.shape;
    let mut r = rng(seed);
    let m = module(c, kernels)?;
    let x = Var::from_tensor(&rand_tensor(&mut r, &[b, ch, h, w], -2.0, 2.0)?)?;
    let rr = rand_tensor(&mut r, &[b, ch, h, w], -1.0, 1.0)?;
    let train = Mode::Train {
        dropout: DropoutMasks::Off,
    };
    let (y, gates) = m.forward(x.as_tensor(), train)?;
    let grads = (&y * &rr)?.sum_all()?.backward()?;
    let mut out = vec![("output".to_string(), y)];
    out.extend(gates.channel.map(|g| ("channel gate".to_string(), g)));
    out.extend(gates.spatial.map(|g| ("spatial gate".to_string(), g)));
    out.push(("dx".into(), grads.get(&x).cloned().expect("dx")));
    for p in m.params() {
        let g = grads.get(&p.var).cloned().expect("parameter gradient");
        out.push((format!("d {}", p.name), g));
    }
    Ok(out)
}

#[test]
fn fused_op_matches_candle_composition() -> Result<()> {
    for (i, c) in CASES.iter().enumerate() {
        let fast = run(i as u64, c, Kernels::Fast)?;
        let reference = run(i as u64, c, Kernels::Reference)?;
        assert_eq!(fast.len(), reference.len(), "{c:?}");
        for ((name, a), (_, b)) in fast.iter().zip(&reference) {
            assert_eq!(a.dims(), b.dims(), "{c:?}: {name}");
            let e = rel_err(a, b)?;
            assert!(e < 1e-5, "{c:?}: {name} rel err {e}");
        }
    }
    Ok(())
}

/// As [`run`], the module followed by a 2x2 max-pool: one op (`ops::cbam::cbam` with `pool`)
/// or the reference module then `max_pool2x2`.
fn run_pooled(seed: u64, c: &Case, fused: bool) -> Result<Vec<(String, Tensor)>> {
    let (b, ch, h, w) = c.shape;
    let mut r = rng(seed);
    let kernels = if fused {
        Kernels::Fast
    } else {
        Kernels::Reference
    };
    let m = module(c, kernels)?;
    let x = Var::from_tensor(&rand_tensor(&mut r, &[b, ch, h, w], -2.0, 2.0)?)?;
    let rr = rand_tensor(&mut r, &[b, ch, h / 2, w / 2], -1.0, 1.0)?;
    let y = if fused {
        let (spatial, channel) = match &m {
            Attention::Cbam(m) => (&m.spatial, Some(&m.channel)),
            Attention::Spatial(m) => (m, None),
            _ => unreachable!("CBAM or spatial attention"),
        };
        let t = |p: &ablate_model::layers::Param| p.var.as_tensor().clone();
        let (sw, sb) = (t(&spatial.conv.weight), spatial.conv.bias.as_ref().map(t));
        let se = channel.map(|se| {
            let b = |l: &ablate_model::layers::Linear| l.bias.as_ref().map(t);
            (
                t(&se.fc0.weight),
                b(&se.fc0),
                t(&se.fc2.weight),
                b(&se.fc2),
                se.config,
            )
        });
        let se_params = se.as_ref().map(|(w1, b1, w2, b2, cfg)| SeParams {
            w1,
            b1: b1.as_ref(),
            w2,
            b2: b2.as_ref(),
            squeeze: cfg.squeeze,
            gate: cfg.gate,
        });
        let sp = SpatialGateParams {
            weight: &sw,
            bias: sb.as_ref(),
            gate: c.gate,
        };
        cbam(x.as_tensor(), se_params.as_ref(), &sp, true)?.y
    } else {
        let train = Mode::Train {
            dropout: DropoutMasks::Off,
        };
        let (y, _) = m.forward(x.as_tensor(), train)?;
        max_pool2x2(&y, Kernels::Reference)?
    };
    let grads = (&y * &rr)?.sum_all()?.backward()?;
    let mut out = vec![("output".to_string(), y)];
    out.push(("dx".into(), grads.get(&x).cloned().expect("dx")));
    for p in m.params() {
        let g = grads.get(&p.var).cloned().expect("parameter gradient");
        out.push((format!("d {}", p.name), g));
    }
    Ok(out)
}

#[test]
fn fused_op_with_pool_matches_module_then_pool() -> Result<()> {
    for (i, c) in CASES
        .iter()
        .enumerate()
        .filter(|(_, c)| c.shape.2 >= 2 && c.shape.3 >= 2)
    {
        let fused = run_pooled(i as u64, c, true)?;
        let reference = run_pooled(i as u64, c, false)?;
        for ((name, a), (_, b)) in fused.iter().zip(&reference) {
            assert_eq!(a.dims(), b.dims(), "{c:?}: {name}");
            let e = rel_err(a, b)?;
            assert!(e < 1e-5, "{c:?} pooled: {name} rel err {e}");
        }
    }
    Ok(())
}

#[test]
fn evaluation_mode_matches_training_mode_output() -> Result<()> {
    let c = &CASES[1];
    let m = module(c, Kernels::Fast)?;
    let x = rand_tensor(&mut rng(9), &[3, 5, 7, 6], -2.0, 2.0)?;
    let mode = Mode::Train {
        dropout: DropoutMasks::Off,
    };
    let (train, _) = m.forward(&x, mode)?;
    let (eval, _) = m.forward(&x, Mode::Eval)?;
    assert_eq!(rel_err(&train, &eval)?, 0.0);
    Ok(())
}

#[test]
fn results_do_not_depend_on_thread_count() -> Result<()> {
    let go = |t| -> Result<Vec<Vec<f32>>> {
        with_threads(t, || {
            run(3, &CASES[0], Kernels::Fast)?
                .iter()
                .map(|(_, t)| t.flatten_all()?.to_vec1::<f32>())
                .collect()
        })
    };
    let one = go(1)?;
    assert_eq!(one, go(2)?);
    assert_eq!(one, go(5)?);
    Ok(())
}

#[test]
fn bad_parameters_are_errors() -> Result<()> {
    let dev = Device::Cpu;
    let x = Tensor::zeros((1, 2, 4, 4), candle_core::DType::F32, &dev)?;
    let even = Tensor::zeros((1, 2, 4, 4), candle_core::DType::F32, &dev)?;
    let p = ablate_model::ops::cbam::SpatialGateParams {
        weight: &even,
        bias: None,
        gate: SIG,
    };
    let e = ablate_model::ops::cbam::cbam(&x, None, &p, false).unwrap_err();
    assert!(e.to_string().contains("k odd"), "{e}");
    Ok(())
}
