//! The attention modules as one op (`ops::attention::attend`, what SE, ECA, spatial attention
//! and CBAM run with the fast kernels outside the seed CNN's fused blocks) against the modules
//! composed of plain candle ops (`Kernels::Reference`): output, gates, the input's and every
//! parameter's gradient, on odd shapes (maps smaller than the kernel, one channel, one pixel),
//! both gate functions, with and without biases, every channel descriptor; with the 2x2
//! max-pool that follows in the seed CNN's blocks (against the modules then `max_pool2x2`);
//! thread counts.

use ablate_model::attention::{
    Attention, Cbam, Eca, EcaConfig, Names, Se, SeConfig, SpatialAttention, SpatialConfig,
};
use ablate_model::ops::attention::{attend, SpatialGateParams, Then};
use ablate_model::ops::block::{ChannelGate, EcaParams, SeParams};
use ablate_model::ops::kernels::Kernels;
use ablate_model::ops::max_pool2x2;
use ablate_model::{DropoutMasks, GateFunction, Mode, Squeeze};
use candle_core::{Device, Result, Tensor, Var};

mod common;
use common::{assert_same_on_any_thread_count, rand_tensor, rel_err, rng};

/// Which module.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Se,
    Eca,
    Spatial,
    Cbam,
}

/// One case: module, map shape, kernel (spatial or ECA), biases, gate function, channel
/// descriptor.
#[derive(Clone, Copy, Debug)]
struct Case {
    kind: Kind,
    shape: (usize, usize, usize, usize),
    kernel: usize,
    bias: bool,
    gate: GateFunction,
    squeeze: Squeeze,
}

const fn case(
    kind: Kind,
    shape: (usize, usize, usize, usize),
    kernel: usize,
    bias: bool,
    gate: GateFunction,
    squeeze: Squeeze,
) -> Case {
    Case {
        kind,
        shape,
        kernel,
        bias,
        gate,
        squeeze,
    }
}

const SIG: GateFunction = GateFunction::Sigmoid;
const HARD: GateFunction = GateFunction::HardSigmoid;
const AVG: Squeeze = Squeeze::Avg;
const MAX: Squeeze = Squeeze::Max;
const BOTH: Squeeze = Squeeze::AvgMax;

const CASES: &[Case] = &[
    case(Kind::Cbam, (4, 32, 8, 8), 7, false, SIG, BOTH),
    case(Kind::Cbam, (3, 5, 7, 6), 7, true, SIG, BOTH),
    case(Kind::Cbam, (2, 16, 9, 11), 3, true, HARD, BOTH),
    case(Kind::Cbam, (2, 8, 5, 4), 5, false, SIG, AVG),
    case(Kind::Cbam, (2, 8, 5, 4), 5, true, HARD, MAX),
    case(Kind::Cbam, (1, 1, 1, 1), 7, true, SIG, BOTH),
    case(Kind::Spatial, (3, 1, 4, 3), 3, false, SIG, AVG),
    case(Kind::Spatial, (4, 32, 8, 8), 7, false, SIG, AVG),
    case(Kind::Spatial, (2, 6, 3, 2), 7, true, HARD, AVG),
    case(Kind::Spatial, (2, 64, 16, 16), 7, false, SIG, AVG),
    case(Kind::Se, (4, 32, 8, 8), 0, false, SIG, AVG),
    case(Kind::Se, (3, 5, 7, 6), 0, true, HARD, BOTH),
    case(Kind::Se, (2, 16, 3, 2), 0, true, SIG, MAX),
    case(Kind::Se, (1, 1, 1, 1), 0, false, SIG, AVG),
    case(Kind::Eca, (4, 32, 8, 8), 3, false, SIG, AVG),
    case(Kind::Eca, (3, 5, 7, 6), 5, true, HARD, BOTH),
    case(Kind::Eca, (2, 16, 3, 2), 3, false, SIG, MAX),
];

fn module(c: &Case, kernels: Kernels) -> Result<Attention> {
    let channels = c.shape.1;
    let spatial = SpatialConfig {
        kernel: c.kernel,
        gate: c.gate,
        bias: c.bias,
    };
    let se = SeConfig {
        channels,
        hidden: (channels / 2).max(1),
        squeeze: c.squeeze,
        gate: c.gate,
        bias: c.bias,
    };
    let names = Names {
        channel: "ca1",
        spatial: "sa1",
    };
    let dev = Device::Cpu;
    let mut m = match c.kind {
        Kind::Cbam => Attention::Cbam(Cbam::new(se, spatial, names, 7, &dev)?),
        Kind::Spatial => Attention::Spatial(SpatialAttention::new(spatial, "sa1", 7, &dev)?),
        Kind::Se => Attention::Se(Se::new(se, "ca1", 7, &dev)?),
        Kind::Eca => Attention::Eca(Eca::new(
            EcaConfig {
                channels,
                kernel: c.kernel,
                squeeze: c.squeeze,
                gate: c.gate,
                bias: c.bias,
            },
            "ca1",
            7,
            &dev,
        )?),
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
    let mut out = vec![("output".to_string(), y.clone())];
    out.extend(gates.channel.map(|g| ("channel gate".to_string(), g)));
    out.extend(gates.spatial.map(|g| ("spatial gate".to_string(), g)));
    out.extend(gradients(&y, &rr, &x, &m)?);
    Ok(out)
}

/// The gradients of the input and of every parameter of `m` for `Σ y ⊙ r`, named.
fn gradients(y: &Tensor, r: &Tensor, x: &Var, m: &Attention) -> Result<Vec<(String, Tensor)>> {
    let grads = (y * r)?.sum_all()?.backward()?;
    let mut out = vec![("dx".to_string(), grads.get(x).cloned().expect("dx"))];
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

/// The module `m` (built for case `c`) on `x` as one op with its own parameters, then `then`.
fn fused(m: &Attention, c: &Case, x: &Tensor, then: Then<'_>) -> Result<Tensor> {
    let t = |p: &ablate_model::layers::Param| p.var.as_tensor().clone();
    let b = |l: &ablate_model::layers::Linear| l.bias.as_ref().map(t);
    let (se, spatial) = match &m {
        Attention::Cbam(m) => (Some(&m.channel), Some(&m.spatial)),
        Attention::Spatial(m) => (None, Some(m)),
        Attention::Se(m) => (Some(m), None),
        Attention::Eca(_) => (None, None),
    };
    let se = se.map(|se| {
        let cfg = se.config;
        (
            t(&se.fc0.weight),
            b(&se.fc0),
            t(&se.fc2.weight),
            b(&se.fc2),
            cfg,
        )
    });
    let eca = match &m {
        Attention::Eca(e) => Some((t(&e.weight), e.bias.as_ref().map(t), e.config)),
        _ => None,
    };
    let channel = match (&se, &eca) {
        (Some((w1, b1, w2, b2, cfg)), _) => Some(ChannelGate::Se(SeParams {
            w1,
            b1: b1.as_ref(),
            w2,
            b2: b2.as_ref(),
            squeeze: cfg.squeeze,
            gate: cfg.gate,
        })),
        (None, Some((w, b, cfg))) => Some(ChannelGate::Eca(EcaParams {
            weight: w,
            bias: b.as_ref(),
            squeeze: cfg.squeeze,
            gate: cfg.gate,
        })),
        _ => None,
    };
    let sp = spatial.map(|s| (t(&s.conv.weight), s.conv.bias.as_ref().map(t)));
    let sp = sp.as_ref().map(|(w, b)| SpatialGateParams {
        weight: w,
        bias: b.as_ref(),
        gate: c.gate,
    });
    Ok(attend(x, channel.as_ref(), sp.as_ref(), then)?.y)
}

/// What follows the module in [`run_after`].
#[derive(Debug, Clone, Copy)]
enum After {
    /// A 2x2 max-pool.
    Pool,
    /// A residual unit's end, `relu(out + res)`.
    AddRelu,
}

/// As [`run`], the module followed by `after`: one op (`attend` with `Then::Pool` or
/// `Then::AddRelu`) or the reference module then `max_pool2x2`, or `add` and `relu`. With the
/// residual, its gradient comes last.
fn run_after(seed: u64, c: &Case, after: After, fused_op: bool) -> Result<Vec<(String, Tensor)>> {
    let (b, ch, h, w) = c.shape;
    let mut r = rng(seed);
    let kernels = if fused_op {
        Kernels::Fast
    } else {
        Kernels::Reference
    };
    let m = module(c, kernels)?;
    let x = Var::from_tensor(&rand_tensor(&mut r, &[b, ch, h, w], -2.0, 2.0)?)?;
    let out_dims = match after {
        After::Pool => [b, ch, h / 2, w / 2],
        After::AddRelu => [b, ch, h, w],
    };
    let rr = rand_tensor(&mut r, &out_dims, -1.0, 1.0)?;
    let res = Var::from_tensor(&rand_tensor(&mut r, &[b, ch, h, w], -1.0, 1.0)?)?;
    let y = if fused_op {
        let then = match after {
            After::Pool => Then::Pool,
            After::AddRelu => Then::AddRelu(res.as_tensor()),
        };
        fused(&m, c, x.as_tensor(), then)?
    } else {
        let train = Mode::Train {
            dropout: DropoutMasks::Off,
        };
        let (y, _) = m.forward(x.as_tensor(), train)?;
        match after {
            After::Pool => max_pool2x2(&y, Kernels::Reference)?,
            After::AddRelu => (y + res.as_tensor())?.relu()?,
        }
    };
    let mut out = vec![("output".to_string(), y.clone())];
    out.extend(gradients(&y, &rr, &x, &m)?);
    if let After::AddRelu = after {
        let grads = (&y * &rr)?.sum_all()?.backward()?;
        out.push(("dres".to_string(), grads.get(&res).cloned().expect("dres")));
    }
    Ok(out)
}

/// [`run_after`] fused against the reference, within 1e-5, for every case whose map `after`
/// can follow.
fn check_after(after: After) -> Result<()> {
    let fits = |c: &Case| matches!(after, After::AddRelu) || (c.shape.2 >= 2 && c.shape.3 >= 2);
    for (i, c) in CASES.iter().enumerate().filter(|(_, c)| fits(c)) {
        let fused_op = run_after(i as u64, c, after, true)?;
        let reference = run_after(i as u64, c, after, false)?;
        assert_eq!(fused_op.len(), reference.len(), "{c:?} {after:?}");
        for ((name, a), (_, b)) in fused_op.iter().zip(&reference) {
            assert_eq!(a.dims(), b.dims(), "{c:?} {after:?}: {name}");
            let e = rel_err(a, b)?;
            assert!(e < 1e-5, "{c:?} {after:?}: {name} rel err {e}");
        }
    }
    Ok(())
}

#[test]
fn fused_op_with_pool_matches_module_then_pool() -> Result<()> {
    check_after(After::Pool)
}

#[test]
fn fused_op_with_residual_matches_module_then_add_relu() -> Result<()> {
    check_after(After::AddRelu)
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
    assert_same_on_any_thread_count(|| {
        Ok(run(3, &CASES[0], Kernels::Fast)?
            .into_iter()
            .map(|(_, t)| t)
            .collect())
    })?;
    Ok(())
}

#[test]
fn bad_parameters_are_errors() -> Result<()> {
    let dev = Device::Cpu;
    let x = Tensor::zeros((1, 2, 4, 4), candle_core::DType::F32, &dev)?;
    let even = Tensor::zeros((1, 2, 4, 4), candle_core::DType::F32, &dev)?;
    let p = SpatialGateParams {
        weight: &even,
        bias: None,
        gate: SIG,
    };
    let e = attend(&x, None, Some(&p), Then::Map).unwrap_err();
    assert!(e.to_string().contains("k odd"), "{e}");
    let e = attend(&x, None, None, Then::Map).unwrap_err();
    assert!(e.to_string().contains("neither"), "{e}");
    Ok(())
}
