//! The seed CNN with optional attention modules (the project's seed study; the reference model
//! is `../shared/reference/torch_seed.py`'s `SeedCNN`).
//!
//! Three blocks `conv 3x3 (pad 1, bias) -> BatchNorm2d -> ReLU -> max-pool 2x2` with 32/64/128
//! channels, the attention module of the spec inserted at `placement` in the attended blocks;
//! then flatten (2048 values, NCHW order) -> `fc1` 2048-512 -> ReLU -> dropout -> `fc2`
//! 512-classes. Parameter names: `conv{i}`, `bn{i}`, `ca{i}`, `sa{i}`, `fc1`, `fc2`; see
//! `docs/models.md`.

use candle_core::{Device, Result, Tensor, Var};

use super::{
    attend, push_batch_norm, push_params, record, set_attention_kernels, ConvBn, GateTensors,
    Record,
};
use crate::attention::Attention;
use crate::layers::{
    dropout, BatchNorm2d, BatchNorm2dConfig, Conv2d, Conv2dConfig, Linear, LinearConfig, Mode,
    Param,
};
use crate::ops::block::{conv_bn_relu_eval, conv_bn_relu_train};
use crate::ops::kernels::Kernels;
use crate::ops::max_pool2x2;
use crate::spec::{ModelSpec, Placement, BLOCK_CHANNELS, BLOCK_INPUT_SIDE};

/// Width of the hidden fully connected layer.
pub const HIDDEN_FEATURES: usize = 512;

/// One `conv -> BN -> ReLU -> pool` block with its optional attention module.
#[derive(Clone, Debug)]
struct Block {
    index: usize,
    conv: Conv2d,
    bn: BatchNorm2d,
    attention: Option<Attention>,
}

/// What follows `conv -> BN -> ReLU` inside a fused block op (`crate::ops::block`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fused {
    /// The 2x2 max-pool.
    Pooled,
    /// Nothing: the block's attention module and the pool run as separate ops.
    Unpooled,
    /// The block's channel attention (SE or ECA), then the pool.
    GatePooled,
}

/// The seed CNN's layers.
#[derive(Clone, Debug)]
pub(crate) struct SeedCnn {
    placement: Placement,
    dropout: f32,
    blocks: Vec<Block>,
    fc1: Linear,
    fc2: Linear,
    kernels: Kernels,
}

impl SeedCnn {
    /// The layers of `spec` for `num_classes` outputs, initialized from `seed`.
    pub(crate) fn new(
        spec: &ModelSpec,
        num_classes: usize,
        input_side: usize,
        seed: u64,
        device: &Device,
    ) -> Result<SeedCnn> {
        let mut blocks = Vec::with_capacity(3);
        let mut in_channels = crate::models::INPUT_CHANNELS;
        for (k, &channels) in BLOCK_CHANNELS.iter().enumerate() {
            let i = k + 1;
            let conv = Conv2d::new(
                Conv2dConfig {
                    in_channels,
                    out_channels: channels,
                    kernel: 3,
                    padding: 1,
                    stride: 1,
                    bias: true,
                },
                &format!("conv{i}"),
                seed,
                device,
            )?;
            let bn = BatchNorm2d::new(BatchNorm2dConfig::new(channels), &format!("bn{i}"), device)?;
            let attention = if spec.blocks.contains(i) {
                Attention::for_block(spec, i, seed, device)?
            } else {
                None
            };
            blocks.push(Block {
                index: i,
                conv,
                bn,
                attention,
            });
            in_channels = channels;
        }
        let flat = BLOCK_CHANNELS[2] * (input_side / 8) * (input_side / 8);
        let linear = |in_features, out_features, name: &str| {
            Linear::new(
                LinearConfig {
                    in_features,
                    out_features,
                    bias: true,
                },
                name,
                seed,
                device,
            )
        };
        Ok(SeedCnn {
            placement: spec.placement,
            dropout: spec.dropout,
            blocks,
            fc1: linear(flat, HIDDEN_FEATURES, "fc1")?,
            fc2: linear(HIDDEN_FEATURES, num_classes, "fc2")?,
            kernels: Kernels::default(),
        })
    }

    /// Selects every layer's kernels.
    pub(crate) fn set_kernels(&mut self, kernels: Kernels) {
        self.kernels = kernels;
        for b in &mut self.blocks {
            b.conv.kernels = kernels;
            b.bn.kernels = kernels;
            set_attention_kernels(&mut b.attention, kernels);
        }
        self.fc1.kernels = kernels;
        self.fc2.kernels = kernels;
    }

    /// Logits.
    ///
    /// # Shapes
    /// x: `[B, 3, 32, 32]` -> `[B, num_classes]`.
    pub(crate) fn forward(&self, x: &Tensor, mode: Mode, mut rec: Record<'_>) -> Result<Tensor> {
        let mut y = x.clone();
        for block in &self.blocks {
            y = self.block_forward(block, &y, mode, &mut rec)?;
        }
        let y = y.flatten_from(1)?;
        let y = self.kernels.relu(&self.fc1.forward(&y, mode)?)?;
        let y = match mode {
            Mode::Train { dropout: masks } => dropout(&y, self.dropout, masks)?,
            Mode::Eval => y,
        };
        self.fc2.forward(&y, mode)
    }

    fn block_forward(
        &self,
        block: &Block,
        x: &Tensor,
        mode: Mode,
        rec: &mut Record<'_>,
    ) -> Result<Tensor> {
        let i = block.index;
        let attend_at = |y: Tensor, at: Placement, rec: &mut Record<'_>| -> Result<Tensor> {
            match &block.attention {
                Some(att) if self.placement == at => attend(att, i, &y, mode, rec),
                _ => Ok(y),
            }
        };
        // conv -> BN -> ReLU (-> pool) as one op when nothing sits in between and no
        // intermediate is recorded (`crate::ops::block`).
        let fusable = rec.is_none()
            && block.conv.kernels.use_fast(x.device(), x.dtype())
            && block.bn.kernels.use_fast(x.device(), x.dtype());
        let placement = block.attention.as_ref().map(|_| self.placement);
        match placement {
            None | Some(Placement::PostPool) if fusable => {
                let y = Self::fused_block(block, x, mode, Fused::Pooled)?;
                return attend_at(y, Placement::PostPool, rec);
            }
            // SE or ECA between ReLU and pool (the seed's placement) fuses too.
            Some(Placement::PostRelu)
                if fusable
                    && matches!(block.attention, Some(Attention::Se(_) | Attention::Eca(_))) =>
            {
                return Self::fused_block(block, x, mode, Fused::GatePooled);
            }
            Some(Placement::PostRelu) if fusable => {
                let y = Self::fused_block(block, x, mode, Fused::Unpooled)?;
                // Spatial attention and CBAM with the pool as one op (no gates are recorded
                // here: `fusable` means no recording).
                let pooled = match &block.attention {
                    Some(att) => att.forward_pooled(&y, mode)?,
                    None => None,
                };
                if let Some((y, _)) = pooled {
                    return Ok(y);
                }
                let y = attend_at(y, Placement::PostRelu, &mut *rec)?;
                return max_pool2x2(&y, self.kernels);
            }
            _ => {}
        }
        let y = block.conv.forward(x, mode)?;
        record(rec, || format!("block{i}.conv"), &y);
        let y = attend_at(y, Placement::PostConv, &mut *rec)?;
        // BN and ReLU fused into one op, unless an attention module sits between them.
        let y = if block.attention.is_some() && self.placement == Placement::PostBn {
            let y = block.bn.forward(&y, mode)?;
            self.kernels
                .relu(&attend_at(y, Placement::PostBn, &mut *rec)?)?
        } else {
            block.bn.forward_relu(&y, mode)?
        };
        let y = attend_at(y, Placement::PostRelu, &mut *rec)?;
        let y = max_pool2x2(&y, self.kernels)?;
        attend_at(y, Placement::PostPool, rec)
    }

    /// `conv -> BN -> ReLU` (then as `what` says) as one fused op; updates BatchNorm's running
    /// statistics in training mode.
    fn fused_block(block: &Block, x: &Tensor, mode: Mode, what: Fused) -> Result<Tensor> {
        let pool = what != Fused::Unpooled;
        let bn = &block.bn;
        let layers = ConvBn::new(&block.conv, bn, mode);
        let gated = what == Fused::GatePooled;
        let gate_tensors = GateTensors::of(block.attention.as_ref().filter(|_| gated), mode);
        let gate = gate_tensors.as_ref().and_then(GateTensors::gate);
        let p = layers.params(pool, gate);
        match mode {
            Mode::Eval => conv_bn_relu_eval(
                x,
                &p,
                &bn.running_mean.as_tensor().detach(),
                &bn.running_var.as_tensor().detach(),
            ),
            Mode::Train { .. } => {
                let (y, stats) = conv_bn_relu_train(x, &p)
                    .map_err(|e| e.context(format!("block {}", block.index)))?;
                bn.update_running_from(&stats)?;
                Ok(y)
            }
        }
    }

    /// The generator draws PyTorch's dropout takes in one training step of `batch` images.
    pub(crate) fn torch_dropout_draws(&self, batch: usize) -> u64 {
        crate::layers::dropout::torch_draws(batch * HIDDEN_FEATURES, self.dropout)
    }

    /// The trainable parameters in `state_dict` order.
    pub(crate) fn params(&self) -> Vec<&Param> {
        let mut v = Vec::new();
        for b in &self.blocks {
            v.extend(b.conv.params());
            v.extend(b.bn.params());
            if let Some(a) = &b.attention {
                v.extend(a.params());
            }
        }
        v.extend(self.fc1.params());
        v.extend(self.fc2.params());
        v
    }

    /// The BatchNorm layers in `state_dict` order.
    pub(crate) fn batch_norms(&self) -> Vec<&BatchNorm2d> {
        self.blocks.iter().map(|b| &b.bn).collect()
    }

    /// Parameters and buffers in `state_dict` order: per block the convolution, the BatchNorm
    /// (parameters, then buffers), the attention module; then `fc1`, `fc2`.
    pub(crate) fn named_storage(&self) -> Vec<(String, &Var)> {
        let mut v = Vec::new();
        for b in &self.blocks {
            push_params(&mut v, b.conv.params());
            push_batch_norm(&mut v, &b.bn);
            if let Some(a) = &b.attention {
                push_params(&mut v, a.params());
            }
        }
        push_params(&mut v, self.fc1.params());
        push_params(&mut v, self.fc2.params());
        v
    }

    /// Multiply-accumulates of one image's forward pass (see `Net::macs`).
    pub(crate) fn macs(&self) -> u64 {
        let mut total = 0u64;
        for b in &self.blocks {
            let side = BLOCK_INPUT_SIDE[b.index - 1];
            total += b.conv.config.macs(side, side);
            if let Some(a) = &b.attention {
                let s = match self.placement {
                    Placement::PostPool => side / 2,
                    _ => side,
                };
                total += a.macs(s, s);
            }
        }
        total + self.fc1.config.macs() + self.fc2.config.macs()
    }
}
