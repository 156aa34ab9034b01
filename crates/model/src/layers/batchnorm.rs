//! Batch normalization over `[B, C, H, W]` (Ioffe & Szegedy, 2015), as `torch.nn.BatchNorm2d`.
//!
//! Training mode normalizes with the batch statistics (biased variance) and updates the running
//! statistics as PyTorch does: `running = (1 - momentum) * running + momentum * batch`, with the
//! unbiased batch variance (`n / (n - 1)`, n = B * H * W). Eval mode uses the running statistics.

use candle_core::{DType, Device, Result, Tensor, Var};

use super::{Mode, Param};
use crate::ops::kernels::Kernels;
use crate::ops::{bn_add_relu, bn_relu};

/// Configuration of a [`BatchNorm2d`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNorm2dConfig {
    /// Channels C.
    pub channels: usize,
    /// Added to the variance (PyTorch's default 1e-5).
    pub eps: f64,
    /// Running-statistics momentum (PyTorch's default 0.1).
    pub momentum: f64,
}

impl BatchNorm2dConfig {
    /// PyTorch's defaults for `channels`.
    pub fn new(channels: usize) -> Self {
        BatchNorm2dConfig {
            channels,
            eps: 1e-5,
            momentum: 0.1,
        }
    }
}

/// `torch.nn.BatchNorm2d` (affine, tracking running statistics): parameters `{prefix}.weight`,
/// `{prefix}.bias`, buffers `{prefix}.running_mean`, `{prefix}.running_var` (all `[C]`).
#[derive(Clone, Debug)]
pub struct BatchNorm2d {
    /// The configuration.
    pub config: BatchNorm2dConfig,
    /// Scale gamma, initialized to 1.
    pub weight: Param,
    /// Shift beta, initialized to 0.
    pub bias: Param,
    /// Running mean (a buffer, not trainable), initialized to 0.
    pub running_mean: Var,
    /// Running variance (a buffer, not trainable), initialized to 1.
    pub running_var: Var,
    /// Fused fast CPU kernel, the generic path or plain candle ops (`crate::ops::bn_relu`);
    /// [`Kernels::Fast`] by default.
    pub kernels: Kernels,
    prefix: String,
}

impl BatchNorm2d {
    /// A freshly initialized layer named `prefix`.
    pub fn new(config: BatchNorm2dConfig, prefix: &str, device: &Device) -> Result<BatchNorm2d> {
        let c = config.channels;
        Ok(BatchNorm2d {
            config,
            weight: Param::new(
                format!("{prefix}.weight"),
                Tensor::ones(c, DType::F32, device)?,
            )?,
            bias: Param::new(
                format!("{prefix}.bias"),
                Tensor::zeros(c, DType::F32, device)?,
            )?,
            running_mean: Var::zeros(c, DType::F32, device)?,
            running_var: Var::ones(c, DType::F32, device)?,
            kernels: Kernels::default(),
            prefix: prefix.to_string(),
        })
    }

    /// The parameters in `state_dict` order.
    pub fn params(&self) -> Vec<&Param> {
        vec![&self.weight, &self.bias]
    }

    /// The buffers in `state_dict` order, with their names.
    pub fn buffers(&self) -> Vec<(String, &Var)> {
        vec![
            (format!("{}.running_mean", self.prefix), &self.running_mean),
            (format!("{}.running_var", self.prefix), &self.running_var),
        ]
    }

    /// # Shapes
    /// x: `[B, C, H, W]` -> same. In training mode also updates the running statistics
    /// (errors if `B * H * W < 2`, as PyTorch).
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.forward_act(x, mode, false)
    }

    /// BatchNorm followed by ReLU, fused into one op on the fast path.
    ///
    /// # Shapes
    /// As [`BatchNorm2d::forward`].
    pub fn forward_relu(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.forward_act(x, mode, true)
    }

    /// `relu(bn(x) + residual)`, the end of a residual unit, fused into one op on the fast path
    /// ([`crate::ops::bn_add_relu`]).
    ///
    /// # Shapes
    /// x, residual: `[B, C, H, W]` -> same.
    pub fn forward_add_relu(&self, x: &Tensor, residual: &Tensor, mode: Mode) -> Result<Tensor> {
        self.check_channels(x)?;
        let (gamma, beta, eps) = (self.weight.get(mode), self.bias.get(mode), self.config.eps);
        match mode {
            Mode::Eval => {
                let rm = self.running_mean.as_tensor().detach();
                let rv = self.running_var.as_tensor().detach();
                bn_add_relu::batch_norm_add_relu_eval(
                    x,
                    &gamma,
                    &beta,
                    &rm,
                    &rv,
                    residual,
                    eps,
                    self.kernels,
                )
            }
            Mode::Train { .. } => {
                let (y, stats) = bn_add_relu::batch_norm_add_relu_train(
                    x,
                    &gamma,
                    &beta,
                    residual,
                    eps,
                    self.kernels,
                )
                .map_err(|e| e.context(format!("batch norm {}", self.prefix)))?;
                self.update_running_from(&stats)?;
                Ok(y)
            }
        }
    }

    fn check_channels(&self, x: &Tensor) -> Result<()> {
        let c = self.config.channels;
        let xc = x.dims4()?.1;
        if xc != c {
            candle_core::bail!(
                "batch norm {}: expected {c} channels, got {xc}",
                self.prefix
            );
        }
        Ok(())
    }

    fn forward_act(&self, x: &Tensor, mode: Mode, relu: bool) -> Result<Tensor> {
        self.check_channels(x)?;
        let (gamma, beta, eps) = (self.weight.get(mode), self.bias.get(mode), self.config.eps);
        match mode {
            Mode::Eval => {
                let rm = self.running_mean.as_tensor().detach();
                let rv = self.running_var.as_tensor().detach();
                bn_relu::batch_norm_eval(x, &gamma, &beta, &rm, &rv, eps, relu, self.kernels)
            }
            Mode::Train { .. } => {
                let (y, stats) =
                    bn_relu::batch_norm_train(x, &gamma, &beta, eps, relu, self.kernels)
                        .map_err(|e| e.context(format!("batch norm {}", self.prefix)))?;
                self.update_running_from(&stats)?;
                Ok(y)
            }
        }
    }

    /// Updates the running statistics from a training batch's statistics (computed by a fused
    /// op that contains this layer, `crate::ops::block`).
    pub fn update_running_from(&self, stats: &bn_relu::BatchStats) -> Result<()> {
        let m = self.config.momentum;
        let rm = bn_relu::update_running(self.running_mean.as_tensor(), &stats.mean, m)?;
        let rv = bn_relu::update_running(self.running_var.as_tensor(), &stats.var_unbiased, m)?;
        self.running_mean.set(&rm)?;
        self.running_var.set(&rv)
    }

    /// The prefix of the parameter names (`bn1`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}
