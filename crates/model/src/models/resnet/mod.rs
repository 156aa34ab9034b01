//! CIFAR ResNets: K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for Image
//! Recognition", CVPR 2016, Sec. 4.2, with attention modules in the residual units at the
//! integration points of J. Hu, L. Shen, S. Albanie, G. Sun, E. Wu, "Squeeze-and-Excitation
//! Networks", TPAMI 2019 (Fig. 5, Table 14).
//!
//! `conv1` 3x3 (3 -> 16w channels, no bias) -> `bn1` -> ReLU, then three stages of
//! `n = (depth - 2) / 6` basic residual units (`unit.rs`) with 16w, 32w, 64w channels (`w` the
//! width multiplier) on 32x32, 16x16 and 8x8 maps (the first unit of stages 2 and 3 has stride
//! 2 and a shortcut of option A or B, `shortcut.rs`), then global average pooling and `fc`
//! (64w -> classes, with bias). ResNet-20 (n = 3, option A) has 0.27 M parameters.
//!
//! Parameter names: `conv1`, `bn1`, `layer{stage}.{unit}.{conv1,bn1,conv2,bn2,ca,sa,
//! downsample.0,downsample.1}`, `fc`; see `docs/models.md`.

mod shortcut;
mod unit;

use candle_core::{Device, Result, Tensor, Var};

use super::{push_batch_norm, push_params, Record};
use crate::layers::{
    BatchNorm2d, BatchNorm2dConfig, Conv2d, Conv2dConfig, Linear, LinearConfig, Mode, Param,
};
use crate::ops::kernels::Kernels;
use crate::spec::ModelSpec;
use unit::{ResidualUnit, UnitPlace};

/// A CIFAR ResNet's layers.
#[derive(Clone, Debug)]
pub(crate) struct ResNet {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    units: Vec<ResidualUnit>,
    fc: Linear,
    kernels: Kernels,
}

impl ResNet {
    /// The layers of `spec` (`arch = "resnet"`) for `num_classes` outputs, initialized from
    /// `seed`.
    pub(crate) fn new(
        spec: &ModelSpec,
        num_classes: usize,
        seed: u64,
        device: &Device,
    ) -> Result<ResNet> {
        let channels = spec.stage_channels();
        let conv1 = Conv2d::new(
            Conv2dConfig {
                in_channels: crate::models::INPUT_CHANNELS,
                out_channels: channels[0],
                kernel: 3,
                padding: 1,
                stride: 1,
                bias: false,
            },
            "conv1",
            seed,
            device,
        )?;
        let bn1 = BatchNorm2d::new(BatchNorm2dConfig::new(channels[0]), "bn1", device)?;
        let n = spec.units_per_stage();
        let mut units = Vec::with_capacity(3 * n);
        let mut in_channels = channels[0];
        for (s, &out_channels) in channels.iter().enumerate() {
            for u in 0..n {
                let place = UnitPlace {
                    index: units.len() + 1,
                    stage: s + 1,
                    unit: u,
                    in_channels,
                    out_channels,
                    stride: if s > 0 && u == 0 { 2 } else { 1 },
                };
                units.push(ResidualUnit::new(spec, &place, seed, device)?);
                in_channels = out_channels;
            }
        }
        let fc = Linear::new(
            LinearConfig {
                in_features: channels[2],
                out_features: num_classes,
                bias: true,
            },
            "fc",
            seed,
            device,
        )?;
        Ok(ResNet {
            conv1,
            bn1,
            units,
            fc,
            kernels: Kernels::default(),
        })
    }

    /// Selects every layer's kernels.
    pub(crate) fn set_kernels(&mut self, kernels: Kernels) {
        self.kernels = kernels;
        self.conv1.kernels = kernels;
        self.bn1.kernels = kernels;
        for u in &mut self.units {
            u.set_kernels(kernels);
        }
        self.fc.kernels = kernels;
    }

    /// Logits.
    ///
    /// # Shapes
    /// x: `[B, 3, H, W]` -> `[B, num_classes]`.
    pub(crate) fn forward(&self, x: &Tensor, mode: Mode, mut rec: Record<'_>) -> Result<Tensor> {
        let mut y = super::conv_bn_relu(&self.conv1, &self.bn1, x, mode)?;
        for u in &self.units {
            y = u
                .forward(&y, mode, self.kernels, &mut rec)
                .map_err(|e| e.context(format!("residual unit {}", u.index)))?;
        }
        // global average pooling: [B, C, H, W] -> [B, C]
        let y = y.flatten_from(2)?.mean(2)?;
        self.fc.forward(&y, mode)
    }

    /// The trainable parameters in `state_dict` order.
    pub(crate) fn params(&self) -> Vec<&Param> {
        let mut v = self.conv1.params();
        v.extend(self.bn1.params());
        for u in &self.units {
            v.extend(u.params());
        }
        v.extend(self.fc.params());
        v
    }

    /// The BatchNorm layers in `state_dict` order.
    pub(crate) fn batch_norms(&self) -> Vec<&BatchNorm2d> {
        let mut v = vec![&self.bn1];
        for u in &self.units {
            v.extend(u.batch_norms());
        }
        v
    }

    /// Parameters and buffers in `state_dict` order: `conv1`, `bn1`, the units, `fc`.
    pub(crate) fn named_storage(&self) -> Vec<(String, &Var)> {
        let mut v = Vec::new();
        push_params(&mut v, self.conv1.params());
        push_batch_norm(&mut v, &self.bn1);
        for u in &self.units {
            v.extend(u.named_storage());
        }
        push_params(&mut v, self.fc.params());
        v
    }

    /// Multiply-accumulates of one image's forward pass (see `Net::macs`).
    pub(crate) fn macs(&self, input_side: usize) -> u64 {
        let mut total = self.conv1.config.macs(input_side, input_side);
        let mut side = self.conv1.config.out_side(input_side);
        for u in &self.units {
            total += u.macs(side);
            side = u.conv1.config.out_side(side);
        }
        total + self.fc.config.macs()
    }
}
