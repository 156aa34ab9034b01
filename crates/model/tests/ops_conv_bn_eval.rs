//! A residual unit's second half in evaluation mode as one op (`ops::block::conv_bn_eval` with
//! `Kernels::Fast`: convolution -> BatchNorm with running statistics [-> SE or ECA]
//! [-> + shortcut] [-> ReLU], per image) against the separate ops: plain candle ops
//! (`Kernels::Reference`) within 1e-5, and our fast convolution, BatchNorm and attention ops bit
//! for bit (the same arithmetic, term for term). Odd shapes, stride 1 and 2 (the direct 3x3
//! kernel and im2col + gemm), with and without a bias, a gate (SE with the average or both
//! descriptors, ECA), a residual, a ReLU; thread counts; bad input.

use ablate_model::ops::attention::{attend, Then};
use ablate_model::ops::block::{
    conv_bn_eval, BlockParams, ChannelGate, EcaParams, Epilogue, SeParams,
};
use ablate_model::ops::bn_add_relu::batch_norm_add_relu_eval;
use ablate_model::ops::bn_relu::batch_norm_eval;
use ablate_model::ops::conv::conv2d_strided;
use ablate_model::ops::kernels::Kernels;
use ablate_model::ops::residual::add_relu;
use ablate_model::spec::{GateFunction, Squeeze};
use candle_core::{Result, Tensor};

mod common;
use common::{assert_same_on_any_thread_count, rand_tensor, rel_err, rng};

const EPS: f64 = 1e-5;

/// `(n, c_in, c_out, h, w, stride)`.
const SHAPES: &[(usize, usize, usize, usize, usize, usize)] = &[
    (3, 4, 6, 8, 8, 1),
    (2, 16, 16, 7, 5, 1),
    (1, 3, 5, 1, 1, 1),
    (4, 8, 16, 9, 9, 2),
    (2, 5, 7, 6, 10, 2),
];

/// The parameters and inputs of one case.
struct Case {
    x: Tensor,
    weight: Tensor,
    bias: Option<Tensor>,
    gamma: Tensor,
    beta: Tensor,
    mean: Tensor,
    var: Tensor,
    residual: Tensor,
    stride: usize,
    /// SE's `w1 [hidden, C]`, `b1`, `w2 [C, hidden]`, `b2`; ECA's `[1, 1, 3]` weight.
    se: [Tensor; 4],
    eca: Tensor,
}

/// Which channel gate a case runs.
#[derive(Debug, Clone, Copy)]
enum Gate {
    None,
    Se(Squeeze),
    Eca,
}

const GATES: [Gate; 4] = [
    Gate::None,
    Gate::Se(Squeeze::Avg),
    Gate::Se(Squeeze::AvgMax),
    Gate::Eca,
];

fn case(seed: u64, (n, ci, co, h, w, stride): (usize, usize, usize, usize, usize, usize)) -> Case {
    let mut g = rng(seed);
    let mut t = |dims: &[usize], lo, hi| rand_tensor(&mut g, dims, lo, hi).expect("tensor");
    let (oh, ow) = ((h - 1) / stride + 1, (w - 1) / stride + 1);
    Case {
        x: t(&[n, ci, h, w], -2.0, 2.0),
        weight: t(&[co, ci, 3, 3], -0.5, 0.5),
        bias: (seed % 2 == 1).then(|| t(&[co], -0.5, 0.5)),
        gamma: t(&[co], 0.5, 1.5),
        beta: t(&[co], -0.5, 0.5),
        mean: t(&[co], -0.5, 0.5),
        var: t(&[co], 0.5, 2.0),
        residual: t(&[n, co, oh, ow], -2.0, 2.0),
        stride,
        se: [
            t(&[2, co], -1.0, 1.0),
            t(&[2], -0.5, 0.5),
            t(&[co, 2], -1.0, 1.0),
            t(&[co], -0.5, 0.5),
        ],
        eca: t(&[1, 1, 3], -1.0, 1.0),
    }
}

impl Case {
    fn params(&self) -> BlockParams<'_> {
        BlockParams {
            weight: &self.weight,
            bias: self.bias.as_ref(),
            padding: 1,
            stride: self.stride,
            gamma: &self.gamma,
            beta: &self.beta,
            eps: EPS,
            pool: false,
            gate: None,
        }
    }

    fn gate(&self, gate: Gate) -> Option<ChannelGate<'_>> {
        let [w1, b1, w2, b2] = &self.se;
        match gate {
            Gate::None => None,
            Gate::Se(squeeze) => Some(ChannelGate::Se(SeParams {
                w1,
                b1: Some(b1),
                w2,
                b2: Some(b2),
                squeeze,
                gate: GateFunction::Sigmoid,
            })),
            Gate::Eca => Some(ChannelGate::Eca(EcaParams {
                weight: &self.eca,
                bias: None,
                squeeze: Squeeze::Avg,
                gate: GateFunction::Sigmoid,
            })),
        }
    }

    fn fused(&self, gate: Gate, residual: bool, relu: bool, k: Kernels) -> Result<Tensor> {
        let epilogue = Epilogue {
            gate: self.gate(gate),
            residual: residual.then_some(&self.residual),
            relu,
        };
        conv_bn_eval(&self.x, &self.params(), &self.mean, &self.var, epilogue, k)
    }

    /// The fast convolution, then the fast BatchNorm (+ ReLU) or BatchNorm + add + ReLU op;
    /// with a gate, BatchNorm, the attention op, then the addition and the ReLU.
    fn separate_fast(&self, gate: Gate, residual: bool, relu: bool) -> Result<Tensor> {
        let k = Kernels::Fast;
        let y = conv2d_strided(&self.x, &self.weight, self.bias.as_ref(), 1, self.stride, k)?;
        let (g, b, m, v) = (&self.gamma, &self.beta, &self.mean, &self.var);
        if let Some(cg) = self.gate(gate) {
            let z = batch_norm_eval(&y, g, b, m, v, EPS, false, k)?;
            let z = attend(&z, Some(&cg), None, Then::Map)?.y;
            return match (residual, relu) {
                (true, true) => add_relu(&z, &self.residual, k),
                (true, false) => z + &self.residual,
                (false, true) => z.relu(),
                (false, false) => Ok(z),
            };
        }
        match (residual, relu) {
            (true, true) => batch_norm_add_relu_eval(&y, g, b, m, v, &self.residual, EPS, k),
            (true, false) => batch_norm_eval(&y, g, b, m, v, EPS, false, k)? + &self.residual,
            (false, relu) => batch_norm_eval(&y, g, b, m, v, EPS, relu, k),
        }
    }
}

const EPILOGUES: [(bool, bool); 4] = [(true, true), (true, false), (false, true), (false, false)];

#[test]
fn fused_op_matches_candle_composition() -> Result<()> {
    for (i, &s) in SHAPES.iter().enumerate() {
        let c = case(i as u64, s);
        for gate in GATES {
            for (residual, relu) in EPILOGUES {
                let fast = c.fused(gate, residual, relu, Kernels::Fast)?;
                let reference = c.fused(gate, residual, relu, Kernels::Reference)?;
                assert_eq!(fast.dims(), reference.dims());
                let e = rel_err(&fast, &reference)?;
                let what = format!("{s:?} {gate:?} residual={residual} relu={relu}");
                assert!(e < 1e-5, "{what}: rel err {e}");
            }
        }
    }
    Ok(())
}

#[test]
fn fused_op_equals_the_fast_ops_bit_for_bit() -> Result<()> {
    for (i, &s) in SHAPES.iter().enumerate() {
        let c = case(i as u64, s);
        for gate in GATES {
            for (residual, relu) in EPILOGUES {
                let fused = c.fused(gate, residual, relu, Kernels::Fast)?;
                let separate = c.separate_fast(gate, residual, relu)?;
                assert_eq!(
                    fused.flatten_all()?.to_vec1::<f32>()?,
                    separate.flatten_all()?.to_vec1::<f32>()?,
                    "{s:?} {gate:?} residual={residual} relu={relu}"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn results_do_not_depend_on_thread_count() -> Result<()> {
    assert_same_on_any_thread_count(|| {
        let c = case(1, (9, 16, 16, 6, 6, 1));
        Ok(vec![c.fused(
            Gate::Se(Squeeze::Avg),
            true,
            true,
            Kernels::Fast,
        )?])
    })?;
    Ok(())
}

#[test]
fn bad_input_is_an_error() -> Result<()> {
    let c = case(0, (2, 4, 6, 5, 5, 1));
    let wrong = rand_tensor(&mut rng(1), &[2, 6, 5, 4], -1.0, 1.0)?;
    let epilogue = Epilogue {
        gate: None,
        residual: Some(&wrong),
        relu: true,
    };
    let e = conv_bn_eval(&c.x, &c.params(), &c.mean, &c.var, epilogue, Kernels::Fast)
        .expect_err("a residual of the wrong shape");
    assert!(e.to_string().contains("residual"), "{e}");
    let pooled = BlockParams {
        pool: true,
        ..c.params()
    };
    let plain = Epilogue {
        gate: None,
        residual: None,
        relu: true,
    };
    let e = conv_bn_eval(&c.x, &pooled, &c.mean, &c.var, plain, Kernels::Fast).expect_err("a pool");
    assert!(e.to_string().contains("pool"), "{e}");
    Ok(())
}
