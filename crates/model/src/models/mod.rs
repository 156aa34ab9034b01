//! The networks behind [`crate::Net`], one file (or folder) per model, the paper named in its
//! header:
//!
//! - `cnn.rs`: the seed CNN (three conv-BN-ReLU-pool blocks, two FC layers);
//! - `resnet/`: He et al.'s CIFAR ResNets (CVPR 2016, Sec. 4.2), with attention modules at the
//!   integration points of Hu et al. (TPAMI 2019).
//!
//! Each body builds its layers with PyTorch `state_dict` names, lists its parameters and
//! buffers in `state_dict` order and runs the forward pass; [`crate::Net`] holds the API they
//! share (input checks, weights in and out, initialization, counts).

pub(crate) mod cnn;
pub(crate) mod resnet;

use candle_core::{Result, Tensor, Var};

use crate::attention::Attention;
use crate::layers::{BatchNorm2d, Conv2d, Mode, Param};
use crate::ops::block::{
    conv_bn_eval, conv_bn_train, BlockParams, ChannelGate, EcaParams, Epilogue, SeParams,
};
use crate::ops::kernels::Kernels;

/// Input channels the networks are built for (CIFAR: 3 x 32 x 32).
pub const INPUT_CHANNELS: usize = 3;
/// Input side (square).
pub const INPUT_SIDE: usize = 32;

/// Where named intermediates go (`Net::forward_inspect`), if anywhere.
pub(crate) type Record<'a> = Option<&'a mut Vec<(String, Tensor)>>;

/// Appends `t` (detached) under `name()` when recording.
pub(crate) fn record(rec: &mut Record<'_>, name: impl FnOnce() -> String, t: &Tensor) {
    if let Some(r) = rec.as_mut() {
        r.push((name(), t.detach()));
    }
}

/// Runs an attention module and records its gates as `block{index}.gate` and
/// `block{index}.spatial_gate`.
///
/// # Shapes
/// x: `[B, C, H, W]` -> same.
pub(crate) fn attend(
    att: &Attention,
    index: usize,
    x: &Tensor,
    mode: Mode,
    rec: &mut Record<'_>,
) -> Result<Tensor> {
    let (y, gates) = att.forward(x, mode)?;
    if let Some(g) = &gates.channel {
        record(rec, || format!("block{index}.gate"), g);
    }
    if let Some(g) = &gates.spatial {
        record(rec, || format!("block{index}.spatial_gate"), g);
    }
    Ok(y)
}

/// The parameters and buffers of one BatchNorm in `state_dict` order, appended to `v`.
pub(crate) fn push_batch_norm<'a>(v: &mut Vec<(String, &'a Var)>, bn: &'a BatchNorm2d) {
    for p in bn.params() {
        v.push((p.name.clone(), &p.var));
    }
    v.extend(bn.buffers());
}

/// Parameters as `(name, var)` pairs, appended to `v`.
pub(crate) fn push_params<'a>(v: &mut Vec<(String, &'a Var)>, params: Vec<&'a Param>) {
    for p in params {
        v.push((p.name.clone(), &p.var));
    }
}

/// Sets the kernels of an attention module, if there is one.
pub(crate) fn set_attention_kernels(att: &mut Option<Attention>, kernels: Kernels) {
    if let Some(a) = att {
        a.set_kernels(kernels);
    }
}

/// A channel-attention module's (SE's or ECA's) tensors for a fused op, owned here because
/// [`ChannelGate`] borrows them.
pub(crate) struct GateTensors<'a> {
    attention: &'a Attention,
    tensors: Vec<Option<Tensor>>,
}

impl<'a> GateTensors<'a> {
    /// The tensors of `attention` in `mode` when it is a channel gate (SE or ECA), else `None`.
    pub(crate) fn of(attention: Option<&'a Attention>, mode: Mode) -> Option<GateTensors<'a>> {
        let tensors = match attention? {
            Attention::Se(se) => vec![
                Some(se.fc0.weight.get(mode)),
                se.fc0.bias.as_ref().map(|b| b.get(mode)),
                Some(se.fc2.weight.get(mode)),
                se.fc2.bias.as_ref().map(|b| b.get(mode)),
            ],
            Attention::Eca(eca) => vec![
                Some(eca.weight.get(mode)),
                eca.bias.as_ref().map(|b| b.get(mode)),
            ],
            _ => return None,
        };
        Some(GateTensors {
            attention: attention?,
            tensors,
        })
    }

    /// The module as the fused ops take it.
    pub(crate) fn gate(&self) -> Option<ChannelGate<'_>> {
        match (self.attention, self.tensors.as_slice()) {
            (Attention::Se(se), [Some(w1), b1, Some(w2), b2]) => Some(ChannelGate::Se(SeParams {
                w1,
                b1: b1.as_ref(),
                w2,
                b2: b2.as_ref(),
                squeeze: se.config.squeeze,
                gate: se.config.gate,
            })),
            (Attention::Eca(eca), [Some(w), b]) => Some(ChannelGate::Eca(EcaParams {
                weight: w,
                bias: b.as_ref(),
                squeeze: eca.config.squeeze,
                gate: eca.config.gate,
            })),
            _ => None,
        }
    }
}

/// A convolution and the BatchNorm after it, with their tensors in one mode: what the fused
/// ops take as [`BlockParams`] (which borrows the tensors held here).
pub(crate) struct ConvBn<'a> {
    conv: &'a Conv2d,
    bn: &'a BatchNorm2d,
    weight: Tensor,
    bias: Option<Tensor>,
    gamma: Tensor,
    beta: Tensor,
}

impl<'a> ConvBn<'a> {
    /// The layers' tensors in `mode`.
    pub(crate) fn new(conv: &'a Conv2d, bn: &'a BatchNorm2d, mode: Mode) -> ConvBn<'a> {
        ConvBn {
            conv,
            bn,
            weight: conv.weight.get(mode),
            bias: conv.bias.as_ref().map(|b| b.get(mode)),
            gamma: bn.weight.get(mode),
            beta: bn.bias.get(mode),
        }
    }

    /// The fused ops' parameters, with a pool and a channel gate as given.
    pub(crate) fn params<'s>(
        &'s self,
        pool: bool,
        gate: Option<ChannelGate<'s>>,
    ) -> BlockParams<'s> {
        BlockParams {
            weight: &self.weight,
            bias: self.bias.as_ref(),
            padding: self.conv.config.padding,
            stride: self.conv.config.stride,
            gamma: &self.gamma,
            beta: &self.beta,
            eps: self.bn.config.eps,
            pool,
            gate,
        }
    }

    /// The BatchNorm's running mean and variance (detached), for evaluation.
    pub(crate) fn running(&self) -> (Tensor, Tensor) {
        (
            self.bn.running_mean.as_tensor().detach(),
            self.bn.running_var.as_tensor().detach(),
        )
    }
}

/// `relu(bn(conv(x)))`: on the fast path one fused op (`crate::ops::block`, no pool, no gate),
/// else the layers' own ops; updates the BatchNorm's running statistics in training mode.
///
/// # Shapes
/// x: `[B, Cin, H, W]` -> `[B, Cout, H', W']` (the convolution's output size).
pub(crate) fn conv_bn_relu(
    conv: &Conv2d,
    bn: &BatchNorm2d,
    x: &Tensor,
    mode: Mode,
) -> Result<Tensor> {
    conv_bn(conv, bn, x, mode, true)
}

/// [`conv_bn_relu`] with the ReLU only if `relu`.
pub(crate) fn conv_bn(
    conv: &Conv2d,
    bn: &BatchNorm2d,
    x: &Tensor,
    mode: Mode,
    relu: bool,
) -> Result<Tensor> {
    let fast =
        conv.kernels.use_fast(x.device(), x.dtype()) && bn.kernels.use_fast(x.device(), x.dtype());
    if !fast {
        let y = conv.forward(x, mode)?;
        return if relu {
            bn.forward_relu(&y, mode)
        } else {
            bn.forward(&y, mode)
        };
    }
    let layers = ConvBn::new(conv, bn, mode);
    let p = layers.params(false, None);
    match mode {
        Mode::Eval => {
            let (rm, rv) = layers.running();
            let epilogue = Epilogue {
                gate: None,
                residual: None,
                relu,
            };
            conv_bn_eval(x, &p, &rm, &rv, epilogue, conv.kernels)
        }
        Mode::Train { .. } => {
            let (y, stats) =
                conv_bn_train(x, &p, relu).map_err(|e| e.context(bn.prefix().to_string()))?;
            bn.update_running_from(&stats)?;
            Ok(y)
        }
    }
}
