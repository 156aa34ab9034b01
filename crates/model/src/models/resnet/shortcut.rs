//! The shortcut of a residual unit (K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for
//! Image Recognition", CVPR 2016, Sec. 3.3 and 4.2): the identity, or where the unit halves the
//! map and widens it, option A (the identity subsampled, new channels zero, no parameters) or
//! option B (a 1x1 convolution with stride 2 and BatchNorm, `downsample.0` and `downsample.1` as
//! torchvision names them).

use candle_core::{Device, Result, Tensor};

use crate::layers::{BatchNorm2d, BatchNorm2dConfig, Conv2d, Conv2dConfig, Mode};
use crate::ops::kernels::Kernels;
use crate::ops::shortcut::subsample_zero_pad;
use crate::spec::Shortcut;

/// A residual unit's shortcut.
#[derive(Clone, Debug)]
pub(crate) enum ShortcutPath {
    /// `x` itself (the unit keeps the shape).
    Identity,
    /// Option A: `x[:, :, ::2, ::2]` with zero channels around it up to `out_channels`.
    ZeroPad {
        /// Channels after padding.
        out_channels: usize,
    },
    /// Option B: `BN(conv1x1_stride2(x))` (boxed: the layers are large next to the other
    /// variants).
    Projection {
        /// `{prefix}.downsample.0`: 1x1, stride 2, no bias.
        conv: Box<Conv2d>,
        /// `{prefix}.downsample.1`.
        bn: Box<BatchNorm2d>,
    },
}

impl ShortcutPath {
    /// The shortcut of unit `prefix` (`layer2.0`) from `in_channels` to `out_channels` with
    /// `stride`: the identity when both are unchanged, else `option`'s.
    pub(crate) fn new(
        option: Shortcut,
        in_channels: usize,
        out_channels: usize,
        stride: usize,
        prefix: &str,
        seed: u64,
        device: &Device,
    ) -> Result<ShortcutPath> {
        if in_channels == out_channels && stride == 1 {
            return Ok(ShortcutPath::Identity);
        }
        if stride != 2 || out_channels < in_channels {
            candle_core::bail!(
                "resnet {prefix}: a shortcut from {in_channels} to {out_channels} channels with stride {stride} (only stride 2 and more channels)"
            );
        }
        Ok(match option {
            Shortcut::A => ShortcutPath::ZeroPad { out_channels },
            Shortcut::B => ShortcutPath::Projection {
                conv: Box::new(Conv2d::new(
                    Conv2dConfig {
                        in_channels,
                        out_channels,
                        kernel: 1,
                        padding: 0,
                        stride,
                        bias: false,
                    },
                    &format!("{prefix}.downsample.0"),
                    seed,
                    device,
                )?),
                bn: Box::new(BatchNorm2d::new(
                    BatchNorm2dConfig::new(out_channels),
                    &format!("{prefix}.downsample.1"),
                    device,
                )?),
            },
        })
    }

    /// # Shapes
    /// x: `[B, Cin, H, W]` -> `[B, Cout, H', W']` (`H' = H` for the identity, `ceil(H / 2)`
    /// otherwise).
    pub(crate) fn forward(&self, x: &Tensor, mode: Mode, kernels: Kernels) -> Result<Tensor> {
        match self {
            ShortcutPath::Identity => Ok(x.clone()),
            ShortcutPath::ZeroPad { out_channels } => subsample_zero_pad(x, *out_channels, kernels),
            ShortcutPath::Projection { conv, bn } => bn.forward(&conv.forward(x, mode)?, mode),
        }
    }
}
