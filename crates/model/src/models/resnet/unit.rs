//! A ResNet's basic residual unit (K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for
//! Image Recognition", CVPR 2016, Fig. 2 and Sec. 4.2) with an optional attention module at one
//! of the integration points of J. Hu, L. Shen, S. Albanie, G. Sun, E. Wu,
//! "Squeeze-and-Excitation Networks", TPAMI 2019, Fig. 5 and Table 14:
//!
//! ```text
//! x ── [pre] ── conv1 3x3 (stride s) ─ BN ─ ReLU ─ conv2 3x3 ─ BN ── [standard] ──┐
//! │                                                                               + ─ ReLU ── [post] ──
//! └──── shortcut (identity, option A or B) ──────────────────────── [identity] ───┘
//! ```
//!
//! The convolutions have no bias. On the fast CPU path `conv1 -> bn1 -> ReLU` is one fused op
//! (`crate::ops::block`) and `bn2 -> add -> ReLU` another (`crate::ops::bn_add_relu`; with the
//! attention module between BN and the addition, the addition with the ReLU,
//! `crate::ops::residual`). Parameter names, as torchvision's `BasicBlock` within
//! `layer{stage}.{unit}`: `conv1`, `bn1`, `conv2`, `bn2`, the attention module's `ca` and `sa`,
//! then option B's `downsample.0` (conv) and `downsample.1` (BN).

use candle_core::{Device, Result, Tensor, Var};

use super::shortcut::ShortcutPath;
use crate::attention::{Attention, Names};
use crate::layers::{BatchNorm2d, BatchNorm2dConfig, Conv2d, Conv2dConfig, Mode, Param};
use crate::models::{
    attend, conv_bn, conv_bn_relu, push_batch_norm, push_params, record, ConvBn, GateTensors,
    Record,
};
use crate::ops::block::{conv_bn_add_relu_train, conv_bn_eval, Epilogue};
use crate::ops::kernels::Kernels;
use crate::ops::residual::add_relu;
use crate::spec::{Integration, ModelSpec};

/// One residual unit.
#[derive(Clone, Debug)]
pub(crate) struct ResidualUnit {
    /// 1-based over the whole network, in forward order (`block{index}` in the intermediates).
    pub(crate) index: usize,
    pub(crate) conv1: Conv2d,
    pub(crate) bn1: BatchNorm2d,
    pub(crate) conv2: Conv2d,
    pub(crate) bn2: BatchNorm2d,
    pub(crate) attention: Option<Attention>,
    pub(crate) integration: Integration,
    pub(crate) shortcut: ShortcutPath,
}

/// A 3x3 convolution without bias, padding 1.
fn conv3x3(
    in_channels: usize,
    out_channels: usize,
    stride: usize,
    name: &str,
    seed: u64,
    device: &Device,
) -> Result<Conv2d> {
    Conv2d::new(
        Conv2dConfig {
            in_channels,
            out_channels,
            kernel: 3,
            padding: 1,
            stride,
            bias: false,
        },
        name,
        seed,
        device,
    )
}

/// Where a unit sits and what it maps.
pub(crate) struct UnitPlace {
    /// 1-based over the network.
    pub(crate) index: usize,
    /// 1-based stage.
    pub(crate) stage: usize,
    /// 0-based within the stage.
    pub(crate) unit: usize,
    /// Input channels.
    pub(crate) in_channels: usize,
    /// Output channels.
    pub(crate) out_channels: usize,
    /// 1 or 2.
    pub(crate) stride: usize,
}

impl ResidualUnit {
    /// The unit at `place` of the ResNet of `spec`, initialized from `seed`.
    pub(crate) fn new(
        spec: &ModelSpec,
        place: &UnitPlace,
        seed: u64,
        device: &Device,
    ) -> Result<ResidualUnit> {
        let prefix = format!("layer{}.{}", place.stage, place.unit);
        let (cin, cout, stride) = (place.in_channels, place.out_channels, place.stride);
        let n = |what: &str| format!("{prefix}.{what}");
        let conv1 = conv3x3(cin, cout, stride, &n("conv1"), seed, device)?;
        let bn1 = BatchNorm2d::new(BatchNorm2dConfig::new(cout), &n("bn1"), device)?;
        let conv2 = conv3x3(cout, cout, 1, &n("conv2"), seed, device)?;
        let bn2 = BatchNorm2d::new(BatchNorm2dConfig::new(cout), &n("bn2"), device)?;
        let attention = if spec.blocks.contains(place.stage) {
            let channels = spec.resnet_attention_channels(place.stage, place.unit);
            let names = Names {
                channel: &n("ca"),
                spatial: &n("sa"),
            };
            Attention::new(spec, channels, names, seed, device)?
        } else {
            None
        };
        let shortcut = ShortcutPath::new(spec.shortcut, cin, cout, stride, &prefix, seed, device)?;
        Ok(ResidualUnit {
            index: place.index,
            conv1,
            bn1,
            conv2,
            bn2,
            attention,
            integration: spec.integration,
            shortcut,
        })
    }

    /// Selects every layer's kernels.
    pub(crate) fn set_kernels(&mut self, kernels: Kernels) {
        for conv in [&mut self.conv1, &mut self.conv2] {
            conv.kernels = kernels;
        }
        for bn in [&mut self.bn1, &mut self.bn2] {
            bn.kernels = kernels;
        }
        if let ShortcutPath::Projection { conv, bn } = &mut self.shortcut {
            conv.kernels = kernels;
            bn.kernels = kernels;
        }
        crate::models::set_attention_kernels(&mut self.attention, kernels);
    }

    /// The attention module applied to `x` when it sits at `point`, else `x`.
    fn attend_at(
        &self,
        x: Tensor,
        point: Integration,
        mode: Mode,
        rec: &mut Record<'_>,
    ) -> Result<Tensor> {
        match &self.attention {
            Some(att) if self.integration == point => attend(att, self.index, &x, mode, rec),
            _ => Ok(x),
        }
    }

    /// Whether the unit has a module at the `standard` point (between bn2 and the addition).
    fn at_standard(&self) -> bool {
        self.attention.is_some() && self.integration == Integration::Standard
    }

    /// `relu(branch(x) + shortcut(x))` with the attention module at its integration point;
    /// records `block{index}.conv` (conv2's output, before BN) and the module's gates.
    ///
    /// # Shapes
    /// x: `[B, Cin, H, W]` -> `[B, Cout, H / stride, W / stride]`.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        mode: Mode,
        kernels: Kernels,
        rec: &mut Record<'_>,
    ) -> Result<Tensor> {
        let branch_in = self.attend_at(x.clone(), Integration::Pre, mode, rec)?;
        let y = conv_bn_relu(&self.conv1, &self.bn1, &branch_in, mode)?;
        let standard = self.at_standard();
        if rec.is_none() {
            if matches!(mode, Mode::Eval) {
                return self.forward_eval_tail(x, &y, kernels);
            }
            let shortcut = self.shortcut_out(x, mode, kernels, rec)?;
            let out = if standard {
                // conv2 -> bn2 as one op (no ReLU), then the module with the addition and the
                // ReLU as another.
                let z = conv_bn(&self.conv2, &self.bn2, &y, mode, false)?;
                self.attend_add_relu(z, &shortcut, mode, kernels)?
            } else {
                self.conv_bn_add_relu_train(&y, &shortcut, mode)?
            };
            return self.attend_at(out, Integration::Post, mode, rec);
        }
        let y = self.conv2.forward(&y, mode)?;
        record(rec, || format!("block{}.conv", self.index), &y);
        let out = if standard {
            let y = self.bn2.forward(&y, mode)?;
            let y = self.attend_at(y, Integration::Standard, mode, rec)?;
            add_relu(&y, &self.shortcut_out(x, mode, kernels, rec)?, kernels)?
        } else {
            // BN, the addition and the ReLU as one op on the fast path.
            self.bn2
                .forward_add_relu(&y, &self.shortcut_out(x, mode, kernels, rec)?, mode)?
        };
        self.attend_at(out, Integration::Post, mode, rec)
    }

    /// Evaluation without recording, from conv1's block output `y` on: conv2, bn2, SE or ECA
    /// at `standard`, the addition and the ReLU as one op (`conv_bn_eval`); with spatial
    /// attention or CBAM at `standard`, conv2 and bn2 as one op, the module, then the addition
    /// and the ReLU.
    fn forward_eval_tail(&self, x: &Tensor, y: &Tensor, kernels: Kernels) -> Result<Tensor> {
        let mode = Mode::Eval;
        let mut rec: Record<'_> = None;
        let shortcut = self.shortcut_out(x, mode, kernels, &mut rec)?;
        let layers = ConvBn::new(&self.conv2, &self.bn2, mode);
        let p = layers.params(false, None);
        let (rm, rv) = layers.running();
        let standard = self.at_standard();
        // SE and ECA at `standard` run inside the op; spatial attention and CBAM between it and
        // the addition.
        let gate_tensors = GateTensors::of(self.attention.as_ref().filter(|_| standard), mode);
        let gate = gate_tensors.as_ref().and_then(GateTensors::gate);
        let out = if standard && gate.is_none() {
            let plain = Epilogue {
                gate: None,
                residual: None,
                relu: false,
            };
            let z = conv_bn_eval(y, &p, &rm, &rv, plain, kernels)?;
            self.attend_add_relu(z, &shortcut, mode, kernels)?
        } else {
            let tail = Epilogue {
                gate,
                residual: Some(&shortcut),
                relu: true,
            };
            conv_bn_eval(y, &p, &rm, &rv, tail, kernels)?
        };
        self.attend_at(out, Integration::Post, mode, &mut rec)
    }

    /// Training: `relu(bn2(conv2(y)) + shortcut)`, one op on the fast path
    /// (`conv_bn_add_relu_train`), else the convolution then `bn2` with the addition and the
    /// ReLU; updates bn2's running statistics.
    fn conv_bn_add_relu_train(&self, y: &Tensor, shortcut: &Tensor, mode: Mode) -> Result<Tensor> {
        let (conv, bn) = (&self.conv2, &self.bn2);
        let fast = conv.kernels.use_fast(y.device(), y.dtype())
            && bn.kernels.use_fast(y.device(), y.dtype());
        if !fast {
            return bn.forward_add_relu(&conv.forward(y, mode)?, shortcut, mode);
        }
        let layers = ConvBn::new(conv, bn, mode);
        let (out, stats) = conv_bn_add_relu_train(y, &layers.params(false, None), shortcut)
            .map_err(|e| e.context(bn.prefix().to_string()))?;
        bn.update_running_from(&stats)?;
        Ok(out)
    }

    /// `relu(module(z) + shortcut)` for the module at the `standard` point, not recorded: one
    /// op on the fast path (`Attention::forward_add_relu`), else the module then `add_relu`.
    fn attend_add_relu(
        &self,
        z: Tensor,
        shortcut: &Tensor,
        mode: Mode,
        kernels: Kernels,
    ) -> Result<Tensor> {
        if let Some(att) = &self.attention {
            if let Some((out, _gates)) = att.forward_add_relu(&z, shortcut, mode)? {
                return Ok(out);
            }
        }
        let z = self.attend_at(z, Integration::Standard, mode, &mut None)?;
        add_relu(&z, shortcut, kernels)
    }

    /// The shortcut's output, with the attention module when it sits on the identity branch.
    fn shortcut_out(
        &self,
        x: &Tensor,
        mode: Mode,
        kernels: Kernels,
        rec: &mut Record<'_>,
    ) -> Result<Tensor> {
        let s = self.shortcut.forward(x, mode, kernels)?;
        self.attend_at(s, Integration::Identity, mode, rec)
    }

    /// The trainable parameters in `state_dict` order.
    pub(crate) fn params(&self) -> Vec<&Param> {
        let mut v = self.conv1.params();
        v.extend(self.bn1.params());
        v.extend(self.conv2.params());
        v.extend(self.bn2.params());
        if let Some(a) = &self.attention {
            v.extend(a.params());
        }
        if let ShortcutPath::Projection { conv, bn } = &self.shortcut {
            v.extend(conv.params());
            v.extend(bn.params());
        }
        v
    }

    /// The BatchNorm layers in `state_dict` order.
    pub(crate) fn batch_norms(&self) -> Vec<&BatchNorm2d> {
        let mut v = vec![&self.bn1, &self.bn2];
        if let ShortcutPath::Projection { bn, .. } = &self.shortcut {
            v.push(bn);
        }
        v
    }

    /// Parameters and buffers in `state_dict` order.
    pub(crate) fn named_storage(&self) -> Vec<(String, &Var)> {
        let mut v = Vec::new();
        push_params(&mut v, self.conv1.params());
        push_batch_norm(&mut v, &self.bn1);
        push_params(&mut v, self.conv2.params());
        push_batch_norm(&mut v, &self.bn2);
        if let Some(a) = &self.attention {
            push_params(&mut v, a.params());
        }
        if let ShortcutPath::Projection { conv, bn } = &self.shortcut {
            push_params(&mut v, conv.params());
            push_batch_norm(&mut v, bn);
        }
        v
    }

    /// Multiply-accumulates for one image whose input map is `side x side`.
    pub(crate) fn macs(&self, side: usize) -> u64 {
        let out = self.conv1.config.out_side(side);
        let mut total = self.conv1.config.macs(side, side) + self.conv2.config.macs(out, out);
        if let ShortcutPath::Projection { conv, .. } = &self.shortcut {
            total += conv.config.macs(side, side);
        }
        if let Some(a) = &self.attention {
            let s = if self.integration == Integration::Pre {
                side
            } else {
                out
            };
            total += a.macs(s, s);
        }
        total
    }
}
