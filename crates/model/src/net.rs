//! The seed CNN with optional attention modules: `Net`.
//!
//! Three blocks `conv 3x3 (pad 1, bias) -> BatchNorm2d -> ReLU -> max-pool 2x2` with 32/64/128
//! channels, the attention module of the spec inserted at `placement` in the attended blocks;
//! then flatten (2048 values, NCHW order) -> `fc1` 2048-512 -> ReLU -> dropout -> `fc2`
//! 512-classes. Parameter and buffer names follow PyTorch's `state_dict` of the reference model
//! (`../shared/reference/torch_seed.py`); see `docs/models.md`.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use candle_core::{DType, Device, Result, Tensor, Var};

use crate::attention::Attention;
use crate::layers::{
    dropout, BatchNorm2d, BatchNorm2dConfig, Conv2d, Conv2dConfig, Linear, LinearConfig, Mode,
    Param,
};
use crate::ops::block::{
    conv_bn_relu_eval, conv_bn_relu_train, BlockParams, ChannelGate, EcaParams, SeParams,
};
use crate::ops::kernels::Kernels;
use crate::ops::max_pool2x2;
use crate::spec::{ModelSpec, Placement, BLOCK_CHANNELS, BLOCK_INPUT_SIDE};
use crate::weights::{self, WeightsError};

/// Input channels and side the network is built for (CIFAR: 3 x 32 x 32).
pub const INPUT_CHANNELS: usize = 3;
/// Input side (square).
pub const INPUT_SIDE: usize = 32;
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

/// The seed CNN and its attention variants.
#[derive(Clone, Debug)]
pub struct Net {
    spec: ModelSpec,
    num_classes: usize,
    device: Device,
    blocks: Vec<Block>,
    fc1: Linear,
    fc2: Linear,
    /// The implementation of the hot ops ([`Net::set_kernels`]).
    kernels: Kernels,
}

type Record<'a> = Option<&'a mut Vec<(String, Tensor)>>;

fn record(rec: &mut Record<'_>, name: impl FnOnce() -> String, t: &Tensor) {
    if let Some(r) = rec.as_mut() {
        r.push((name(), t.detach()));
    }
}

impl Net {
    /// Builds the network of `spec` for `num_classes` outputs and 3x32x32 inputs, with PyTorch's
    /// default initialization drawn from `seed` (see `crate::init`).
    pub fn new(spec: &ModelSpec, num_classes: usize, device: &Device, seed: u64) -> Result<Net> {
        spec.validate().map_err(candle_core::Error::wrap)?;
        if num_classes == 0 {
            candle_core::bail!("the model needs at least one class, got 0");
        }
        let mut blocks = Vec::with_capacity(3);
        let mut in_channels = INPUT_CHANNELS;
        for (k, &channels) in BLOCK_CHANNELS.iter().enumerate() {
            let i = k + 1;
            let conv = Conv2d::new(
                Conv2dConfig {
                    in_channels,
                    out_channels: channels,
                    kernel: 3,
                    padding: 1,
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
        let flat = BLOCK_CHANNELS[2] * (INPUT_SIDE / 8) * (INPUT_SIDE / 8);
        let fc1 = Linear::new(
            LinearConfig {
                in_features: flat,
                out_features: HIDDEN_FEATURES,
                bias: true,
            },
            "fc1",
            seed,
            device,
        )?;
        let fc2 = Linear::new(
            LinearConfig {
                in_features: HIDDEN_FEATURES,
                out_features: num_classes,
                bias: true,
            },
            "fc2",
            seed,
            device,
        )?;
        let mut net = Net {
            spec: spec.clone(),
            num_classes,
            device: device.clone(),
            blocks,
            fc1,
            fc2,
            kernels: Kernels::default(),
        };
        net.set_kernels(Kernels::from_env().map_err(candle_core::Error::wrap)?);
        Ok(net)
    }

    /// Selects the implementation of every layer's ops: our fast CPU kernels, the device-generic
    /// path or plain candle ops (`crate::ops::kernels`). [`Net::new`] takes it from the
    /// `ABLATE_KERNELS` environment variable (`fast`, the default, `generic` or `reference`).
    /// Off the CPU the generic path runs whatever the choice.
    pub fn set_kernels(&mut self, kernels: Kernels) {
        self.kernels = kernels;
        for b in &mut self.blocks {
            b.conv.kernels = kernels;
            b.bn.kernels = kernels;
            if let Some(att) = &mut b.attention {
                att.set_kernels(kernels);
            }
        }
        self.fc1.kernels = kernels;
        self.fc2.kernels = kernels;
    }

    /// Logits.
    ///
    /// # Shapes
    /// x: `[B, 3, 32, 32]` f32 -> logits `[B, num_classes]`. In `Train` mode BatchNorm uses
    /// batch statistics and updates its running statistics (momentum 0.1, unbiased variance).
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.forward_impl(x, mode, None)
    }

    /// Logits and named intermediates (detached): `block{i}.conv` (conv output before BN,
    /// `[B, C, H, W]`), `block{i}.gate` (`[B, C]` channel gate, SE/ECA/CBAM),
    /// `block{i}.spatial_gate` (`[B, 1, H, W]`, spatial/CBAM), in forward order.
    ///
    /// # Shapes
    /// As [`Net::forward`].
    pub fn forward_inspect(
        &self,
        x: &Tensor,
        mode: Mode,
    ) -> Result<(Tensor, Vec<(String, Tensor)>)> {
        let mut rec = Vec::new();
        let logits = self.forward_impl(x, mode, Some(&mut rec))?;
        Ok((logits, rec))
    }

    fn forward_impl(&self, x: &Tensor, mode: Mode, mut rec: Record<'_>) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        if (c, h, w) != (INPUT_CHANNELS, INPUT_SIDE, INPUT_SIDE) {
            candle_core::bail!(
                "the model expects input [B, {INPUT_CHANNELS}, {INPUT_SIDE}, {INPUT_SIDE}], got [{b}, {c}, {h}, {w}]"
            );
        }
        if x.dtype() != DType::F32 {
            candle_core::bail!("the model expects f32 input, got {:?}", x.dtype());
        }
        let mut y = x.clone();
        for block in &self.blocks {
            y = self.block_forward(block, &y, mode, &mut rec)?;
        }
        let y = y.flatten_from(1)?;
        let y = self.kernels.relu(&self.fc1.forward(&y, mode)?)?;
        let y = match mode {
            Mode::Train { dropout: masks } => dropout(&y, self.spec.dropout, masks)?,
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
        let attend = |y: Tensor, at: Placement, rec: &mut Record<'_>| -> Result<Tensor> {
            match &block.attention {
                Some(att) if self.spec.placement == at => {
                    let (y, gates) = att.forward(&y, mode)?;
                    if let Some(g) = &gates.channel {
                        record(rec, || format!("block{i}.gate"), g);
                    }
                    if let Some(g) = &gates.spatial {
                        record(rec, || format!("block{i}.spatial_gate"), g);
                    }
                    Ok(y)
                }
                _ => Ok(y),
            }
        };
        // conv -> BN -> ReLU (-> pool) as one op when nothing sits in between and no
        // intermediate is recorded (`crate::ops::block`).
        let fusable = rec.is_none()
            && block.conv.kernels.use_fast(x.device(), x.dtype())
            && block.bn.kernels.use_fast(x.device(), x.dtype());
        let placement = block.attention.as_ref().map(|_| self.spec.placement);
        match placement {
            None | Some(Placement::PostPool) if fusable => {
                let y = Self::fused_block(block, x, mode, Fused::Pooled)?;
                return attend(y, Placement::PostPool, rec);
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
                let y = attend(y, Placement::PostRelu, &mut *rec)?;
                return max_pool2x2(&y, self.kernels);
            }
            _ => {}
        }
        let y = block.conv.forward(x, mode)?;
        record(rec, || format!("block{i}.conv"), &y);
        let y = attend(y, Placement::PostConv, &mut *rec)?;
        // BN and ReLU fused into one op, unless an attention module sits between them.
        let y = if block.attention.is_some() && self.spec.placement == Placement::PostBn {
            let y = block.bn.forward(&y, mode)?;
            self.kernels
                .relu(&attend(y, Placement::PostBn, &mut *rec)?)?
        } else {
            block.bn.forward_relu(&y, mode)?
        };
        let y = attend(y, Placement::PostRelu, &mut *rec)?;
        let y = max_pool2x2(&y, self.kernels)?;
        attend(y, Placement::PostPool, rec)
    }

    /// `conv -> BN -> ReLU` (then as `what` says) as one fused op; updates BatchNorm's running
    /// statistics in training mode.
    fn fused_block(block: &Block, x: &Tensor, mode: Mode, what: Fused) -> Result<Tensor> {
        let pool = what != Fused::Unpooled;
        let (conv, bn) = (&block.conv, &block.bn);
        let weight = conv.weight.get(mode);
        let bias = conv.bias.as_ref().map(|b| b.get(mode));
        let (gamma, beta) = (bn.weight.get(mode), bn.bias.get(mode));
        // The fused channel gate's tensors, owned here (`ChannelGate` borrows them).
        let gated = what == Fused::GatePooled;
        let gate_tensors: Vec<Option<Tensor>> = match &block.attention {
            Some(Attention::Se(se)) if gated => vec![
                Some(se.fc0.weight.get(mode)),
                se.fc0.bias.as_ref().map(|b| b.get(mode)),
                Some(se.fc2.weight.get(mode)),
                se.fc2.bias.as_ref().map(|b| b.get(mode)),
            ],
            Some(Attention::Eca(eca)) if gated => vec![
                Some(eca.weight.get(mode)),
                eca.bias.as_ref().map(|b| b.get(mode)),
            ],
            _ => Vec::new(),
        };
        let gate = match (&block.attention, gate_tensors.as_slice()) {
            (Some(Attention::Se(se)), [Some(w1), b1, Some(w2), b2]) => {
                Some(ChannelGate::Se(SeParams {
                    w1,
                    b1: b1.as_ref(),
                    w2,
                    b2: b2.as_ref(),
                    squeeze: se.config.squeeze,
                    gate: se.config.gate,
                }))
            }
            (Some(Attention::Eca(eca)), [Some(w), b]) => Some(ChannelGate::Eca(EcaParams {
                weight: w,
                bias: b.as_ref(),
                squeeze: eca.config.squeeze,
                gate: eca.config.gate,
            })),
            _ => None,
        };
        let p = BlockParams {
            weight: &weight,
            bias: bias.as_ref(),
            padding: conv.config.padding,
            gamma: &gamma,
            beta: &beta,
            eps: bn.config.eps,
            pool,
            gate,
        };
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

    /// Re-draws every parameter as `torch.manual_seed(seed)` followed by the construction of
    /// the equivalent PyTorch module would: PyTorch's default initialization
    /// ([`crate::init::torch_init`]) from its CPU generator, parameter by parameter in
    /// `state_dict` order (BatchNorm's constants draw nothing). Returns the generator's draws,
    /// where the training loop's dropout masks continue. BatchNorm buffers are untouched.
    pub fn init_like_torch(&mut self, seed: u64) -> Result<u64> {
        let mut g = ablate_data::TorchGenerator::new(seed);
        for (param, init) in self.torch_inits() {
            if let crate::init::TorchInit::Uniform { bound } = init {
                let (from, to) = (-bound as f32, bound as f32);
                let values: Vec<f32> = (0..param.elem_count())
                    .map(|_| g.uniform_f32(from, to))
                    .collect();
                param
                    .var
                    .set(&Tensor::from_vec(values, param.var.dims(), &self.device)?)?;
            }
        }
        Ok(g.draws())
    }

    /// The generator draws [`Net::init_like_torch`] makes (without making them).
    pub fn torch_init_draws(&self) -> u64 {
        self.torch_inits()
            .iter()
            .filter(|(_, init)| matches!(init, crate::init::TorchInit::Uniform { .. }))
            .map(|(p, _)| p.elem_count() as u64)
            .sum()
    }

    /// The generator draws PyTorch's dropout takes in one training step of `batch` images.
    pub fn torch_dropout_draws(&self, batch: usize) -> u64 {
        crate::layers::dropout::torch_draws(batch * HIDDEN_FEATURES, self.spec.dropout)
    }

    /// Each parameter, in `state_dict` order, with PyTorch's default initialization of it.
    fn torch_inits(&self) -> Vec<(&Param, crate::init::TorchInit)> {
        let params = self.params();
        let shapes: HashMap<&str, &[usize]> = params
            .iter()
            .map(|p| (p.name.as_str(), p.var.dims()))
            .collect();
        params
            .iter()
            .map(|&p| {
                let module = p.name.rsplit_once('.').map_or("", |(m, _)| m);
                let weight = shapes.get(format!("{module}.weight").as_str()).copied();
                (p, crate::init::torch_init(&p.name, p.var.dims(), weight))
            })
            .collect()
    }

    /// All trainable parameters (`Var`s shared with the model: updating them updates the model),
    /// with PyTorch `state_dict` names, in `state_dict` order.
    pub fn trainable(&self) -> Vec<(String, Var)> {
        self.params()
            .into_iter()
            .map(|p| (p.name.clone(), p.var.clone()))
            .collect()
    }

    fn params(&self) -> Vec<&Param> {
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

    /// The BatchNorm running statistics (`bn{i}.running_mean`, `bn{i}.running_var`), as copies
    /// (later training does not change them).
    pub fn buffers(&self) -> Vec<(String, Tensor)> {
        self.blocks
            .iter()
            .flat_map(|b| b.bn.buffers())
            .map(|(k, v)| (k, v.as_tensor().detach()))
            .map(|(k, v)| {
                let copy = v.copy().unwrap_or(v);
                (k, copy)
            })
            .collect()
    }

    fn named_storage(&self) -> Vec<(String, &Var)> {
        // state_dict order: per module, parameters then buffers
        let mut v = Vec::new();
        for b in &self.blocks {
            for p in b.conv.params() {
                v.push((p.name.clone(), &p.var));
            }
            for p in b.bn.params() {
                v.push((p.name.clone(), &p.var));
            }
            v.extend(b.bn.buffers());
            if let Some(a) = &b.attention {
                for p in a.params() {
                    v.push((p.name.clone(), &p.var));
                }
            }
        }
        for p in self.fc1.params().into_iter().chain(self.fc2.params()) {
            v.push((p.name.clone(), &p.var));
        }
        v
    }

    /// Parameters and buffers with PyTorch names, in `state_dict` order, as copies.
    pub fn state_dict(&self) -> Result<Vec<(String, Tensor)>> {
        self.named_storage()
            .into_iter()
            .map(|(k, v)| Ok((k, v.as_tensor().detach().copy()?)))
            .collect()
    }

    /// Loads parameters and buffers by name. Every tensor of the model must be present with
    /// its shape; other keys are an error too, except `*.num_batches_tracked`. Values are
    /// converted to f32 and moved to the model's device. Nothing is changed on error.
    pub fn load_state_dict(
        &mut self,
        tensors: &HashMap<String, Tensor>,
    ) -> std::result::Result<(), WeightsError> {
        let model = self.spec.to_string();
        let targets = self.named_storage();
        let known: HashSet<&str> = targets.iter().map(|(k, _)| k.as_str()).collect();
        let mut unexpected: Vec<&String> = tensors
            .keys()
            .filter(|k| !known.contains(k.as_str()) && !weights::is_ignored_key(k))
            .collect();
        unexpected.sort();
        if let Some(k) = unexpected.first() {
            return Err(WeightsError::Unexpected {
                key: (*k).clone(),
                model,
            });
        }
        let mut staged = Vec::with_capacity(targets.len());
        for (key, var) in &targets {
            let t = tensors.get(key).ok_or_else(|| WeightsError::Missing {
                key: key.clone(),
                model: model.clone(),
            })?;
            if t.dims() != var.dims() {
                return Err(WeightsError::Shape {
                    key: key.clone(),
                    expected: var.dims().to_vec(),
                    got: t.dims().to_vec(),
                });
            }
            let t = weights::to_model(t, &self.device).map_err(|source| WeightsError::Tensor {
                key: key.clone(),
                source,
            })?;
            staged.push((key, *var, t));
        }
        for (key, var, t) in staged {
            var.set(&t).map_err(|source| WeightsError::Tensor {
                key: key.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Writes [`Net::state_dict`] to a safetensors file (atomically).
    pub fn save_safetensors(&self, path: &Path) -> std::result::Result<(), WeightsError> {
        let sd = self
            .state_dict()
            .map_err(|source| WeightsError::Serialize {
                path: path.to_path_buf(),
                source,
            })?;
        weights::write_safetensors(&sd, path)
    }

    /// Reads a safetensors file (ours or a PyTorch `state_dict`) and loads it by name. Imported
    /// weights are checked first ([`weights::check_imported`]): a tensor that is not floating
    /// point or holds NaN or infinite values is refused, naming it; so are missing, extra and
    /// misshapen tensors.
    pub fn load_safetensors(&mut self, path: &Path) -> std::result::Result<(), WeightsError> {
        let data = std::fs::read(path).map_err(|e| WeightsError::Read {
            path: path.to_path_buf(),
            source: candle_core::Error::Io(e),
        })?;
        self.load_safetensors_bytes(&data, path)
    }

    /// [`Net::load_safetensors`] of a file's bytes (`path` names it in errors).
    pub fn load_safetensors_bytes(
        &mut self,
        data: &[u8],
        path: &Path,
    ) -> std::result::Result<(), WeightsError> {
        let tensors = weights::read_safetensors_bytes(data, &Device::Cpu).map_err(|source| {
            WeightsError::Read {
                path: path.to_path_buf(),
                source,
            }
        })?;
        weights::check_imported(&tensors)?;
        self.load_state_dict(&tensors)
    }

    /// Number of trainable scalars (PyTorch's `sum(p.numel() for p in model.parameters())`).
    pub fn param_count(&self) -> u64 {
        self.params().iter().map(|p| p.elem_count() as u64).sum()
    }

    /// Multiply-accumulates of one image's forward pass: convolutions (`C_out * H_out * W_out *
    /// C_in * k^2`), linear layers (`in * out`) and the attention modules' FCs/convolutions.
    /// Not counted: biases, BatchNorm, ReLU, pooling, squeeze means, gates and re-weighting.
    pub fn macs(&self) -> u64 {
        let mut total = 0u64;
        for b in &self.blocks {
            let side = BLOCK_INPUT_SIDE[b.index - 1];
            total += b.conv.config.macs(side, side);
            if let Some(a) = &b.attention {
                let s = match self.spec.placement {
                    Placement::PostPool => side / 2,
                    _ => side,
                };
                total += a.macs(s, s);
            }
        }
        total + self.fc1.config.macs() + self.fc2.config.macs()
    }

    /// The implementation of the hot ops ([`Net::set_kernels`]).
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// The specification the network was built from.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The device holding the parameters.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Number of output classes.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }
}
