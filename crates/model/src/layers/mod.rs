//! Building blocks of the seed CNN, each a documented config plus parameters named as PyTorch's
//! `state_dict`, computed with candle tensor ops (reference path) or our custom ops (`crate::ops`).

pub mod batchnorm;
pub mod conv;
pub mod dropout;
pub mod linear;

use candle_core::{Result, Tensor, Var};

pub use batchnorm::{BatchNorm2d, BatchNorm2dConfig};
pub use conv::{Conv2d, Conv2dConfig};
pub use dropout::{dropout, DropoutMasks};
pub use linear::{Linear, LinearConfig};

use crate::ops::kernels::Kernels;
use crate::spec::GateFunction;

/// Forward-pass mode.
#[derive(Clone, Copy, Debug, PartialEq)]
// `Train` carries `DropoutMasks` by value (PyTorch's generator state, 2.5 KB) to stay `Copy`.
#[allow(clippy::large_enum_variant)]
pub enum Mode {
    /// Inference: BatchNorm uses its running statistics, no dropout, parameters detached (no
    /// autograd graph is recorded through them).
    Eval,
    /// Training: BatchNorm uses batch statistics and updates its running statistics
    /// (momentum 0.1, unbiased variance); dropout masks come from `dropout`
    /// ([`DropoutMasks::Off`]: no dropout, as PyTorch's golden files, made with p = 0).
    Train {
        /// Where this step's dropout masks come from.
        dropout: DropoutMasks,
    },
}

impl Mode {
    /// Whether this is a training-mode forward.
    pub fn is_train(self) -> bool {
        matches!(self, Mode::Train { .. })
    }
}

/// A named trainable parameter.
#[derive(Clone, Debug)]
pub struct Param {
    /// Full PyTorch `state_dict` name, e.g. `conv1.weight`.
    pub name: String,
    /// The value, updated in place by optimizers.
    pub var: Var,
}

impl Param {
    /// A parameter holding `value`.
    pub fn new(name: impl Into<String>, value: Tensor) -> Result<Param> {
        Ok(Param {
            name: name.into(),
            var: Var::from_tensor(&value)?,
        })
    }

    /// The value to compute with: the variable itself in training mode (so gradients flow to
    /// it), a detached view in eval mode.
    pub fn get(&self, mode: Mode) -> Tensor {
        match mode {
            Mode::Train { .. } => self.var.as_tensor().clone(),
            Mode::Eval => self.var.as_tensor().detach(),
        }
    }

    /// Number of scalars.
    pub fn elem_count(&self) -> usize {
        self.var.elem_count()
    }
}

/// Applies the gate function elementwise (the hard sigmoid of `kernels`' path: on the generic
/// path with PyTorch's gradient at the kinks, `crate::ops::generic::hard_sigmoid`).
///
/// # Shapes
/// any -> same.
pub fn apply_gate(z: &Tensor, gate: GateFunction, kernels: Kernels) -> Result<Tensor> {
    match gate {
        GateFunction::Sigmoid => candle_nn::ops::sigmoid(z),
        GateFunction::HardSigmoid if kernels.use_generic(z.device()) => {
            crate::ops::generic::hard_sigmoid(z)
        }
        // PyTorch's Hardsigmoid: relu6(x + 3) / 6 = clamp(x / 6 + 1/2, 0, 1)
        GateFunction::HardSigmoid => z.affine(1.0 / 6.0, 0.5)?.clamp(0f32, 1f32),
    }
}
