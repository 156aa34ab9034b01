//! A residual unit's second half in evaluation mode as one op (`ops::block::conv_bn_eval` with
//! `Kernels::Fast`: convolution -> BatchNorm with running statistics [-> + shortcut] [-> ReLU],
//! per image) against the separate ops: plain candle ops (`Kernels::Reference`) within 1e-5,
//! and our fast convolution followed by the fast BatchNorm ops bit for bit (the same arithmetic,
//! term for term). Odd shapes, stride 1 and 2 (the direct 3x3 kernel and im2col + gemm), with
//! and without a bias, a residual, a ReLU; thread counts; bad input.

use ablate_model::ops::block::{conv_bn_eval, BlockParams, Epilogue};
use ablate_model::ops::bn_add_relu::batch_norm_add_relu_eval;
use ablate_model::ops::bn_relu::batch_norm_eval;
use ablate_model::ops::conv::conv2d_strided;
use ablate_model::ops::kernels::Kernels;
use candle_core::{Result, Tensor};

mod common;
use common::{rand_tensor, rel_err, rng, with_threads};

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
}

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

    fn fused(&self, residual: bool, relu: bool, k: Kernels) -> Result<Tensor> {
        let epilogue = Epilogue {
            residual: residual.then_some(&self.residual),
            relu,
        };
        conv_bn_eval(&self.x, &self.params(), &self.mean, &self.var, epilogue, k)
    }

    /// The fast convolution, then the fast BatchNorm (+ ReLU) or BatchNorm + add + ReLU op.
    fn separate_fast(&self, residual: bool, relu: bool) -> Result<Tensor> {
        let k = Kernels::Fast;
        let y = conv2d_strided(&self.x, &self.weight, self.bias.as_ref(), 1, self.stride, k)?;
        let (g, b, m, v) = (&self.gamma, &self.beta, &self.mean, &self.var);
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
        for (residual, relu) in EPILOGUES {
            let fast = c.fused(residual, relu, Kernels::Fast)?;
            let reference = c.fused(residual, relu, Kernels::Reference)?;
            assert_eq!(fast.dims(), reference.dims());
            let e = rel_err(&fast, &reference)?;
            assert!(
                e < 1e-5,
                "{s:?} residual={residual} relu={relu}: rel err {e}"
            );
        }
    }
    Ok(())
}

#[test]
fn fused_op_equals_the_fast_ops_bit_for_bit() -> Result<()> {
    for (i, &s) in SHAPES.iter().enumerate() {
        let c = case(i as u64, s);
        for (residual, relu) in EPILOGUES {
            let fused = c.fused(residual, relu, Kernels::Fast)?;
            let separate = c.separate_fast(residual, relu)?;
            assert_eq!(
                fused.flatten_all()?.to_vec1::<f32>()?,
                separate.flatten_all()?.to_vec1::<f32>()?,
                "{s:?} residual={residual} relu={relu}"
            );
        }
    }
    Ok(())
}

#[test]
fn results_do_not_depend_on_thread_count() -> Result<()> {
    let go = |t| -> Result<Vec<f32>> {
        with_threads(t, || {
            case(1, (9, 16, 16, 6, 6, 1))
                .fused(true, true, Kernels::Fast)?
                .flatten_all()?
                .to_vec1::<f32>()
        })
    };
    let one = go(1)?;
    assert_eq!(one, go(2)?);
    assert_eq!(one, go(5)?);
    Ok(())
}

#[test]
fn bad_input_is_an_error() -> Result<()> {
    let c = case(0, (2, 4, 6, 5, 5, 1));
    let wrong = rand_tensor(&mut rng(1), &[2, 6, 5, 4], -1.0, 1.0)?;
    let epilogue = Epilogue {
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
        residual: None,
        relu: true,
    };
    let e = conv_bn_eval(&c.x, &pooled, &c.mean, &c.var, plain, Kernels::Fast).expect_err("a pool");
    assert!(e.to_string().contains("pool"), "{e}");
    Ok(())
}
