//! The fused block op (`ops::block`: convolution -> BatchNorm -> ReLU -> optional 2x2 max-pool
//! in one candle custom op) against the composition of the reference ops
//! (`conv_bn_relu_reference`: candle's `conv2d` + plain-candle BatchNorm/ReLU + the argmax
//! max-pool, differentiated by candle's autograd): outputs, batch statistics and every
//! gradient, in training and evaluation mode, with and without the ReLU (`conv_bn_train`); and
//! whole networks with the fused path against the same networks on `Kernels::Reference`.

use ablate_model::layers::{DropoutMasks, Mode};
use ablate_model::ops::block::{
    conv_bn_reference, conv_bn_relu_eval, conv_bn_relu_reference, conv_bn_relu_train,
    conv_bn_train, BlockParams, ChannelGate, EcaParams, SeParams,
};
use ablate_model::ops::kernels::Kernels;
use ablate_model::{GateFunction, Squeeze};
use ablate_model::{ModelSpec, Net};
use candle_core::{Device, Result, Tensor, Var};
use rand_chacha::ChaCha8Rng;

mod common;
use common::{rand_tensor, rel_err, rng, with_threads};

/// Shapes `(n, c_in, h, w, c_out, k, padding)`: the seed's 3x3/pad 1 layers at small sizes, odd
/// sides (the pool drops the last row/column), batch 1, a 1x1 output, no padding.
const SHAPES: &[(usize, usize, usize, usize, usize, usize, usize)] = &[
    (4, 3, 8, 8, 5, 3, 1),
    (1, 2, 5, 7, 3, 3, 1),
    (3, 4, 6, 6, 2, 3, 0),
    (2, 3, 9, 5, 4, 1, 0),
    (5, 2, 1, 1, 3, 3, 1),
    (2, 32, 4, 4, 8, 3, 1),
];

struct Case {
    x: Var,
    w: Var,
    b: Var,
    gamma: Var,
    beta: Var,
    running_mean: Tensor,
    running_var: Tensor,
    pad: usize,
    stride: usize,
}

fn case(
    seed: u64,
    (n, ci, h, w, co, k, pad): (usize, usize, usize, usize, usize, usize, usize),
) -> Result<Case> {
    let mut r = rng(seed);
    let t = |r: &mut ChaCha8Rng, d: &[usize], lo, hi| rand_tensor(r, d, lo, hi);
    Ok(Case {
        x: Var::from_tensor(&t(&mut r, &[n, ci, h, w], -1.0, 1.0)?)?,
        w: Var::from_tensor(&t(&mut r, &[co, ci, k, k], -0.5, 0.5)?)?,
        // An offset per channel, so that the batch mean is not near 0.
        b: Var::from_tensor(&t(&mut r, &[co], -2.0, 2.0)?)?,
        // Negative scales too: then ReLU(BN(.)) is decreasing in the convolution output.
        gamma: Var::from_tensor(&t(&mut r, &[co], -1.5, 1.5)?)?,
        beta: Var::from_tensor(&t(&mut r, &[co], -0.5, 0.5)?)?,
        running_mean: t(&mut r, &[co], -1.0, 1.0)?,
        running_var: t(&mut r, &[co], 0.5, 2.0)?,
        pad,
        stride: 1,
    })
}

impl Case {
    fn params(&self, bias: bool, pool: bool) -> BlockParams<'_> {
        BlockParams {
            weight: self.w.as_tensor(),
            bias: bias.then(|| self.b.as_tensor()),
            padding: self.pad,
            stride: self.stride,
            gamma: self.gamma.as_tensor(),
            beta: self.beta.as_tensor(),
            eps: 1e-5,
            pool,
            gate: None,
        }
    }

    fn vars(&self, bias: bool) -> Vec<(&'static str, &Var)> {
        let mut v = vec![("x", &self.x), ("weight", &self.w)];
        if bias {
            v.push(("bias", &self.b));
        }
        v.push(("gamma", &self.gamma));
        v.push(("beta", &self.beta));
        v
    }
}

/// Output, statistics and gradients of `Σ out ⊙ r` for `r` seeded like the output's shape;
/// without the ReLU unless `relu`.
fn train_run(
    c: &Case,
    (bias, pool, relu): (bool, bool, bool),
    fused: bool,
) -> Result<(Tensor, Vec<Tensor>, Vec<Tensor>)> {
    let p = c.params(bias, pool);
    let (out, stats) = if fused {
        conv_bn_train(c.x.as_tensor(), &p, relu)?
    } else {
        conv_bn_reference(c.x.as_tensor(), &p, None, Kernels::Reference, relu)?
    };
    let r = rand_tensor(&mut rng(out.elem_count() as u64), out.dims(), -1.0, 1.0)?;
    let grads = (&out * &r)?.sum_all()?.backward()?;
    let g = c
        .vars(bias)
        .into_iter()
        .map(|(name, v)| {
            grads
                .get(v)
                .cloned()
                .unwrap_or_else(|| panic!("no gradient for {name}"))
        })
        .collect();
    Ok((out, vec![stats.mean, stats.var_unbiased], g))
}

#[test]
fn train_mode_matches_the_reference_composition() -> Result<()> {
    for (i, &s) in SHAPES.iter().enumerate() {
        // (pool, bias, relu): without the ReLU, a residual unit's conv2 -> bn2 before a module.
        let variants = [
            (true, true, true),
            (false, true, true),
            (true, false, true),
            (false, false, true),
            (false, true, false),
            (false, false, false),
        ];
        for (pool, bias, relu) in variants {
            let c = case(i as u64, s)?;
            let (a, sa, ga) = train_run(&c, (bias, pool, relu), true)?;
            let (b, sb, gb) = train_run(&c, (bias, pool, relu), false)?;
            let what = format!("shape {s:?} pool {pool} bias {bias} relu {relu}");
            assert_eq!(a.dims(), b.dims(), "{what}");
            let e = rel_err(&a, &b)?;
            assert!(e < 1e-5, "{what}: output rel err {e}");
            for (x, y) in sa.iter().zip(&sb) {
                let e = rel_err(x, y)?;
                assert!(e < 1e-5, "{what}: statistics rel err {e}");
            }
            for ((name, _), (x, y)) in c.vars(bias).iter().zip(ga.iter().zip(&gb)) {
                if *name == "bias" {
                    // Exactly zero in exact arithmetic (BatchNorm removes the batch mean):
                    // both sides are rounding noise; compare against the weight gradient.
                    let scale = gb[1].abs()?.max_all()?.to_scalar::<f32>()?;
                    let d = (x - y)?.abs()?.max_all()?.to_scalar::<f32>()?;
                    assert!(
                        d <= 1e-5 * scale.max(1e-3),
                        "{what}: bias gradient off by {d}"
                    );
                    continue;
                }
                let e = rel_err(x, y)?;
                assert!(e < 2e-5, "{what}: gradient of {name} rel err {e}");
            }
        }
    }
    Ok(())
}

/// Strided shapes `(n, c_in, h, w, c_out, k, padding)` run with stride 2: a ResNet's
/// downsampling conv (3x3, pad 1) and odd sides.
const STRIDED: &[(usize, usize, usize, usize, usize, usize, usize)] = &[
    (3, 4, 8, 8, 6, 3, 1),
    (2, 3, 7, 9, 4, 3, 1),
    (2, 5, 6, 6, 3, 1, 0),
];

#[test]
fn strided_convolution_matches_the_reference_composition() -> Result<()> {
    for (i, &s) in STRIDED.iter().enumerate() {
        for (pool, bias) in [(false, false), (true, true)] {
            let mut c = case(50 + i as u64, s)?;
            c.stride = 2;
            let (a, sa, ga) = train_run(&c, (bias, pool, true), true)?;
            let (b, sb, gb) = train_run(&c, (bias, pool, true), false)?;
            let what = format!("strided shape {s:?} pool {pool} bias {bias}");
            assert_eq!(a.dims(), b.dims(), "{what}");
            assert!(rel_err(&a, &b)? < 1e-5, "{what}: output");
            for (x, y) in sa.iter().zip(&sb) {
                assert!(rel_err(x, y)? < 1e-5, "{what}: statistics");
            }
            for ((name, _), (x, y)) in c.vars(bias).iter().zip(ga.iter().zip(&gb)) {
                if *name != "bias" {
                    let e = rel_err(x, y)?;
                    assert!(e < 2e-5, "{what}: gradient of {name} rel err {e}");
                }
            }
            let p = c.params(bias, pool);
            let (rm, rv) = (&c.running_mean, &c.running_var);
            let (w, b) = (p.weight.detach(), p.bias.map(|b| b.detach()));
            let (gm, bt) = (p.gamma.detach(), p.beta.detach());
            let detached = BlockParams {
                weight: &w,
                bias: b.as_ref(),
                gamma: &gm,
                beta: &bt,
                ..p
            };
            let x = c.x.as_tensor().detach();
            let e = conv_bn_relu_eval(&x, &detached, rm, rv)?;
            let (r, _) = conv_bn_relu_reference(&x, &detached, Some((rm, rv)), Kernels::Reference)?;
            assert!(rel_err(&e, &r)? < 1e-5, "{what}: eval output");
        }
    }
    Ok(())
}

#[test]
fn eval_mode_matches_the_reference_composition() -> Result<()> {
    for (i, &s) in SHAPES.iter().enumerate() {
        for pool in [true, false] {
            let c = case(100 + i as u64, s)?;
            let x = c.x.as_tensor().detach();
            let (w, b, gm, bt) = (
                c.w.as_tensor().detach(),
                c.b.as_tensor().detach(),
                c.gamma.as_tensor().detach(),
                c.beta.as_tensor().detach(),
            );
            let p = BlockParams {
                weight: &w,
                bias: Some(&b),
                padding: c.pad,
                stride: c.stride,
                gamma: &gm,
                beta: &bt,
                eps: 1e-5,
                pool,
                gate: None,
            };
            let a = conv_bn_relu_eval(&x, &p, &c.running_mean, &c.running_var)?;
            let (r, _) = conv_bn_relu_reference(
                &x,
                &p,
                Some((&c.running_mean, &c.running_var)),
                Kernels::Reference,
            )?;
            let e = rel_err(&a, &r)?;
            assert!(e < 1e-5, "shape {s:?} pool {pool}: eval output rel err {e}");
        }
    }
    Ok(())
}

#[test]
fn all_negative_windows_pass_no_gradient() -> Result<()> {
    // β far below zero: every ReLU output is 0, every pooling window a four-way tie; the
    // gradient of everything but β's own sum must vanish, as in the reference.
    let c = case(7, (3, 2, 6, 6, 3, 3, 1))?;
    c.beta.set(&Tensor::full(-100f32, 3, &Device::Cpu)?)?;
    let (a, _, ga) = train_run(&c, (true, true, true), true)?;
    let (_, _, gb) = train_run(&c, (true, true, true), false)?;
    assert_eq!(a.abs()?.max_all()?.to_scalar::<f32>()?, 0.0);
    for (x, y) in ga.iter().zip(&gb) {
        assert_eq!(x.abs()?.max_all()?.to_scalar::<f32>()?, 0.0);
        assert_eq!(y.abs()?.max_all()?.to_scalar::<f32>()?, 0.0);
    }
    Ok(())
}

#[test]
fn results_do_not_depend_on_thread_count() -> Result<()> {
    let c = case(42, (13, 4, 7, 6, 5, 3, 1))?;
    let run = |threads: usize| -> Result<Vec<Vec<f32>>> {
        with_threads(threads, || {
            let (out, stats, grads) = train_run(&c, (true, true, true), true)?;
            std::iter::once(out)
                .chain(stats)
                .chain(grads)
                .map(|t| t.flatten_all()?.to_vec1::<f32>())
                .collect()
        })
    };
    let one = run(1)?;
    assert_eq!(one, run(2)?);
    assert_eq!(one, run(5)?);
    Ok(())
}

/// Logits, gradients and running statistics after one train-mode step of `spec`.
fn net_step(spec: &str, kernels: Kernels) -> Result<Vec<(String, Tensor)>> {
    let spec: ModelSpec = spec.parse().expect("spec");
    let mut net = Net::new(&spec, 10, &Device::Cpu, 3)?;
    net.set_kernels(kernels);
    let x = rand_tensor(&mut rng(9), &[4, 3, 32, 32], -2.0, 2.0)?;
    let mode = Mode::Train {
        dropout: DropoutMasks::Off,
    };
    let logits = net.forward(&x, mode)?;
    let r = rand_tensor(&mut rng(10), logits.dims(), -1.0, 1.0)?;
    let grads = (&logits * &r)?.sum_all()?.backward()?;
    let mut out = vec![("logits".to_string(), logits)];
    for (name, v) in net.trainable() {
        let g = grads.get(&v).cloned().expect("gradient");
        out.push((format!("grad.{name}"), g));
    }
    out.extend(net.buffers());
    out.push(("eval".into(), net.forward(&x, Mode::Eval)?));
    Ok(out)
}

#[test]
fn fused_networks_match_reference_kernels() -> Result<()> {
    // The fused op runs for blocks without attention, with attention after the pool, and
    // (unpooled) with attention between ReLU and pool.
    for spec in [
        "attention=none",
        "attention=se,reduction=4",
        "attention=se,placement=post_pool,blocks=1+3",
        "attention=eca,blocks=2",
        "attention=se,reduction=2,squeeze=max,gate=hard_sigmoid",
        "attention=se,squeeze=avg_max,attention_bias=true,blocks=2+3",
        "attention=eca,squeeze=avg_max,gate=hard_sigmoid,attention_bias=true",
        "attention=eca,squeeze=max,eca_kernel=5",
        "attention=cbam,placement=post_relu",
    ] {
        let fast = net_step(spec, Kernels::Fast)?;
        let reference = net_step(spec, Kernels::Reference)?;
        for ((name, a), (_, b)) in fast.iter().zip(&reference) {
            if name.starts_with("grad.conv") && name.ends_with(".bias") {
                continue; // rounding noise on both sides (see the op test above)
            }
            let e = rel_err(a, b)?;
            assert!(e < 1e-4, "{spec}: {name} rel err {e}");
        }
    }
    Ok(())
}

/// The fused op with channel gate `gate` (pooled) against the reference composition: output,
/// batch statistics, and the gradients of x, the block's parameters and the gate module's
/// `module_vars` (named for the failure message).
fn gate_stage_matches(
    c: &Case,
    gate: ChannelGate<'_>,
    module_vars: &[(&str, &Var)],
    what: &str,
) -> Result<()> {
    let run = |fused: bool| -> Result<Vec<(String, Tensor)>> {
        let mut p = c.params(true, true);
        p.gate = Some(gate);
        let (out, stats) = if fused {
            conv_bn_relu_train(c.x.as_tensor(), &p)?
        } else {
            conv_bn_relu_reference(c.x.as_tensor(), &p, None, Kernels::Reference)?
        };
        let rr = rand_tensor(&mut rng(7), out.dims(), -1.0, 1.0)?;
        let grads = (&out * &rr)?.sum_all()?.backward()?;
        let block = [
            ("dx", &c.x),
            ("dw", &c.w),
            ("dgamma", &c.gamma),
            ("dbeta", &c.beta),
        ];
        let mut all = vec![
            ("out".to_string(), out),
            ("mean".to_string(), stats.mean),
            ("var".to_string(), stats.var_unbiased),
        ];
        for (name, v) in block.iter().chain(module_vars) {
            all.push((name.to_string(), grads.get(v).cloned().expect("gradient")));
        }
        Ok(all)
    };
    for ((name, x), (_, y)) in run(true)?.iter().zip(&run(false)?) {
        let e = rel_err(x, y)?;
        assert!(e < 5e-5, "{what}: {name} rel err {e}");
    }
    Ok(())
}

#[test]
fn se_stage_matches_the_reference_composition() -> Result<()> {
    // conv -> BN -> ReLU -> SE -> pool in one op, every squeeze and gate, with and without the
    // MLP's biases, against candle ops (mean/max, matmul, sigmoid/hardsigmoid, broadcast_mul).
    let squeezes = [Squeeze::Avg, Squeeze::Max, Squeeze::AvgMax];
    let gates = [GateFunction::Sigmoid, GateFunction::HardSigmoid];
    for (i, &shape) in SHAPES.iter().enumerate() {
        for (j, (&squeeze, &gate, bias)) in squeezes
            .iter()
            .flat_map(|s| {
                gates
                    .iter()
                    .flat_map(move |g| [(s, g, false), (s, g, true)])
            })
            .enumerate()
        {
            let c = case(300 + i as u64, shape)?;
            let co = shape.4;
            let hidden = (co / 2).max(1);
            let mut r = rng(400 + j as u64);
            // Weights large enough that the hard sigmoid saturates for some channels.
            let w1 = Var::from_tensor(&rand_tensor(&mut r, &[hidden, co], -2.0, 2.0)?)?;
            let b1 = Var::from_tensor(&rand_tensor(&mut r, &[hidden], -0.5, 0.5)?)?;
            let w2 = Var::from_tensor(&rand_tensor(&mut r, &[co, hidden], -2.0, 2.0)?)?;
            let b2 = Var::from_tensor(&rand_tensor(&mut r, &[co], -0.5, 0.5)?)?;
            let se = ChannelGate::Se(SeParams {
                w1: w1.as_tensor(),
                b1: bias.then(|| b1.as_tensor()),
                w2: w2.as_tensor(),
                b2: bias.then(|| b2.as_tensor()),
                squeeze,
                gate,
            });
            let mut vars = vec![("dw1", &w1), ("dw2", &w2)];
            if bias {
                vars.extend([("db1", &b1), ("db2", &b2)]);
            }
            let what = format!("shape {shape:?} {squeeze:?} {gate:?} bias {bias}");
            gate_stage_matches(&c, se, &vars, &what)?;
        }
    }
    Ok(())
}

/// `Σ out ⊙ r` in f64.
fn loss64(out: &Tensor, r: &Tensor) -> Result<f64> {
    common::dot(out, r)
}

#[test]
fn gradients_match_finite_differences() -> Result<()> {
    // The directional derivative along a random direction in all inputs and parameters at once
    // (x, weight, bias, γ, β and, with SE, its MLP), against a central difference of the fused
    // op itself in f64 sums. Seeded: the inputs are fixed, so no kink of ReLU or max-pool moves
    // between runs.
    for (seed, with_se) in [(11u64, false), (12, true)] {
        let shape = (3, 2, 6, 6, 4, 3, 1);
        let c = case(seed, shape)?;
        let mut r = rng(seed + 100);
        let w1 = Var::from_tensor(&rand_tensor(&mut r, &[2, 4], -1.0, 1.0)?)?;
        let w2 = Var::from_tensor(&rand_tensor(&mut r, &[4, 2], -1.0, 1.0)?)?;
        let vars: Vec<&Var> = if with_se {
            vec![&c.x, &c.w, &c.b, &c.gamma, &c.beta, &w1, &w2]
        } else {
            vec![&c.x, &c.w, &c.b, &c.gamma, &c.beta]
        };
        let dirs: Vec<Tensor> = vars
            .iter()
            .map(|v| rand_tensor(&mut r, v.dims(), -1.0, 1.0))
            .collect::<Result<_>>()?;
        let forward = |ts: &[Tensor]| -> Result<Tensor> {
            let p = BlockParams {
                weight: &ts[1],
                bias: Some(&ts[2]),
                padding: 1,
                stride: 1,
                gamma: &ts[3],
                beta: &ts[4],
                eps: 1e-5,
                pool: true,
                gate: with_se.then(|| {
                    ChannelGate::Se(SeParams {
                        w1: &ts[5],
                        b1: None,
                        w2: &ts[6],
                        b2: None,
                        squeeze: Squeeze::Avg,
                        gate: GateFunction::Sigmoid,
                    })
                }),
            };
            Ok(conv_bn_relu_train(&ts[0], &p)?.0)
        };
        let at = |t: f64| -> Result<Vec<Tensor>> {
            vars.iter()
                .zip(&dirs)
                .map(|(v, d)| v.as_tensor().detach() + (d * t)?)
                .collect()
        };
        let base: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let out = forward(&base)?;
        let rr = rand_tensor(&mut rng(seed + 200), out.dims(), -1.0, 1.0)?;
        let grads = (&out * &rr)?.sum_all()?.backward()?;
        let analytic: f64 = vars
            .iter()
            .zip(&dirs)
            .map(|(v, d)| common::dot(grads.get(v).expect("gradient"), d))
            .sum::<Result<f64>>()?;
        let h = 1e-3;
        let fd = (loss64(&forward(&at(h)?)?, &rr)? - loss64(&forward(&at(-h)?)?, &rr)?) / (2.0 * h);
        let rel = (fd - analytic).abs() / analytic.abs().max(1e-3);
        assert!(
            rel < 2e-3,
            "se {with_se}: finite difference {fd}, analytic {analytic}, rel {rel}"
        );
    }
    Ok(())
}

#[test]
fn statistics_stay_accurate_with_a_large_mean() -> Result<()> {
    // Convolution outputs around 1000 with a spread of about 0.01: a naive E[y²] - E[y]² in
    // f32 would lose every digit of the variance.
    let c = case(31, (4, 3, 6, 6, 3, 3, 1))?;
    c.b.set(&Tensor::full(1000f32, 3, &candle_core::Device::Cpu)?)?;
    c.w.set(&(c.w.as_tensor() * 0.01)?)?;
    let p = c.params(true, true);
    let (_, stats) = conv_bn_relu_train(c.x.as_tensor(), &p)?;
    let y = ablate_model::ops::conv::conv2d_reference(
        c.x.as_tensor(),
        c.w.as_tensor(),
        Some(c.b.as_tensor()),
        1,
    )?;
    let (n, ch, h, w) = y.dims4()?;
    let v = y.flatten_all()?.to_vec1::<f32>()?;
    let mean = stats.mean.to_vec1::<f32>()?;
    let var = stats.var_unbiased.to_vec1::<f32>()?;
    for k in 0..ch {
        let xs: Vec<f64> = (0..n)
            .flat_map(|i| v[(i * ch + k) * h * w..][..h * w].iter().map(|&x| x as f64))
            .collect();
        let m = xs.iter().sum::<f64>() / xs.len() as f64;
        let var64 = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (xs.len() - 1) as f64;
        assert!(
            (mean[k] as f64 - m).abs() < 1e-3,
            "channel {k}: mean {} vs {m}",
            mean[k]
        );
        let rel = (var[k] as f64 - var64).abs() / var64;
        assert!(
            rel < 1e-3,
            "channel {k}: variance {} vs {var64} (rel {rel})",
            var[k]
        );
    }
    Ok(())
}

#[test]
fn eca_stage_matches_the_reference_composition() -> Result<()> {
    // conv -> BN -> ReLU -> ECA -> pool in one op, every squeeze and gate, kernel 1, 3 and 5,
    // with and without bias, against candle ops (mean/max, conv1d, sigmoid/hardsigmoid,
    // broadcast_mul).
    let squeezes = [Squeeze::Avg, Squeeze::Max, Squeeze::AvgMax];
    let gates = [GateFunction::Sigmoid, GateFunction::HardSigmoid];
    let mut j = 0u64;
    for (i, &shape) in SHAPES.iter().enumerate() {
        for &squeeze in &squeezes {
            for &gate in &gates {
                for (k, bias) in [(3, false), (5, true), (1, true)] {
                    // candle's conv1d backward (the reference) underflows when the kernel is
                    // wider than the channel count (its conv_transpose1d output length).
                    if shape.4 < k {
                        continue;
                    }
                    j += 1;
                    let c = case(500 + i as u64, shape)?;
                    let mut r = rng(600 + j);
                    let w = Var::from_tensor(&rand_tensor(&mut r, &[1, 1, k], -2.0, 2.0)?)?;
                    let b = Var::from_tensor(&rand_tensor(&mut r, &[1], -0.5, 0.5)?)?;
                    let eca = ChannelGate::Eca(EcaParams {
                        weight: w.as_tensor(),
                        bias: bias.then(|| b.as_tensor()),
                        squeeze,
                        gate,
                    });
                    let mut vars = vec![("deca_w", &w)];
                    if bias {
                        vars.push(("deca_b", &b));
                    }
                    let what = format!("shape {shape:?} {squeeze:?} {gate:?} k {k} bias {bias}");
                    gate_stage_matches(&c, eca, &vars, &what)?;
                }
            }
        }
    }
    Ok(())
}
