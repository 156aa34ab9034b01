//! `Net`: the network of a [`ModelSpec`], the seed CNN or a CIFAR ResNet (`crate::models`),
//! with its optional attention modules, behind one API: forward passes (with named
//! intermediates), PyTorch `state_dict` names in and out, PyTorch's initialization, parameter
//! and MAC counts. The trainer, evaluation, inspection and the runner use only this API; see
//! `docs/models.md`.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use candle_core::{DType, Device, Result, Tensor, Var};

use crate::layers::{Mode, Param};
use crate::models::cnn::SeedCnn;
use crate::models::resnet::ResNet;
use crate::ops::kernels::Kernels;
use crate::spec::{Arch, ModelSpec};
use crate::weights::{self, WeightsError};

pub use crate::models::cnn::HIDDEN_FEATURES;

pub use crate::models::{INPUT_CHANNELS, INPUT_SIDE};

/// The layers of one architecture.
#[derive(Clone, Debug)]
enum Body {
    /// The seed CNN (`crate::models::cnn`).
    Cnn(SeedCnn),
    /// A CIFAR ResNet (`crate::models::resnet`).
    Resnet(ResNet),
}

/// The network of a [`ModelSpec`] with its attention modules.
#[derive(Clone, Debug)]
pub struct Net {
    spec: ModelSpec,
    num_classes: usize,
    device: Device,
    body: Body,
    /// The implementation of the hot ops ([`Net::set_kernels`]).
    kernels: Kernels,
}

impl Net {
    /// Builds the network of `spec` for `num_classes` outputs and 3x32x32 inputs, with PyTorch's
    /// default initialization drawn from `seed` (see `crate::init`).
    pub fn new(spec: &ModelSpec, num_classes: usize, device: &Device, seed: u64) -> Result<Net> {
        spec.validate().map_err(candle_core::Error::wrap)?;
        if num_classes == 0 {
            candle_core::bail!("the model needs at least one class, got 0");
        }
        let body = match spec.arch {
            Arch::SeedCnn => Body::Cnn(SeedCnn::new(spec, num_classes, INPUT_SIDE, seed, device)?),
            Arch::Resnet => Body::Resnet(ResNet::new(spec, num_classes, seed, device)?),
        };
        let mut net = Net {
            spec: spec.clone(),
            num_classes,
            device: device.clone(),
            body,
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
        match &mut self.body {
            Body::Cnn(m) => m.set_kernels(kernels),
            Body::Resnet(m) => m.set_kernels(kernels),
        }
    }

    /// Logits.
    ///
    /// # Shapes
    /// x: `[B, 3, 32, 32]` f32 -> logits `[B, num_classes]`. In `Train` mode BatchNorm uses
    /// batch statistics and updates its running statistics (momentum 0.1, unbiased variance).
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.forward_impl(x, mode, None)
    }

    /// Logits and named intermediates (detached), in forward order: `block{i}.conv` (a
    /// convolution's output before BatchNorm, `[B, C, H, W]`: the CNN's block `i`, a ResNet's
    /// residual unit `i`'s second convolution, units numbered from 1 over the network),
    /// `block{i}.gate` (`[B, C]` channel gate, SE/ECA/CBAM), `block{i}.spatial_gate`
    /// (`[B, 1, H, W]`, spatial/CBAM).
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

    fn forward_impl(
        &self,
        x: &Tensor,
        mode: Mode,
        rec: crate::models::Record<'_>,
    ) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        if (c, h, w) != (INPUT_CHANNELS, INPUT_SIDE, INPUT_SIDE) {
            candle_core::bail!(
                "the model expects input [B, {INPUT_CHANNELS}, {INPUT_SIDE}, {INPUT_SIDE}], got [{b}, {c}, {h}, {w}]"
            );
        }
        if x.dtype() != DType::F32 {
            candle_core::bail!("the model expects f32 input, got {:?}", x.dtype());
        }
        match &self.body {
            Body::Cnn(m) => m.forward(x, mode, rec),
            Body::Resnet(m) => m.forward(x, mode, rec),
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

    /// The generator draws PyTorch's dropout takes in one training step of `batch` images
    /// (none for a ResNet, which has no dropout).
    pub fn torch_dropout_draws(&self, batch: usize) -> u64 {
        match &self.body {
            Body::Cnn(m) => m.torch_dropout_draws(batch),
            Body::Resnet(_) => 0,
        }
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
        match &self.body {
            Body::Cnn(m) => m.params(),
            Body::Resnet(m) => m.params(),
        }
    }

    /// The BatchNorm running statistics (`<bn>.running_mean`, `<bn>.running_var` for every
    /// BatchNorm in `state_dict` order: `bn1`, ... for the CNN, `bn1`, `layer1.0.bn1`, ... for
    /// a ResNet), as copies (later training does not change them).
    pub fn buffers(&self) -> Vec<(String, Tensor)> {
        let bns = match &self.body {
            Body::Cnn(m) => m.batch_norms(),
            Body::Resnet(m) => m.batch_norms(),
        };
        bns.into_iter()
            .flat_map(|bn| bn.buffers())
            .map(|(k, v)| (k, v.as_tensor().detach()))
            .map(|(k, v)| {
                let copy = v.copy().unwrap_or(v);
                (k, copy)
            })
            .collect()
    }

    /// The names of the BatchNorm layers in `state_dict` order (`bn1`, `layer1.0.bn1`, ...).
    pub fn batch_norm_names(&self) -> Vec<String> {
        let bns = match &self.body {
            Body::Cnn(m) => m.batch_norms(),
            Body::Resnet(m) => m.batch_norms(),
        };
        bns.into_iter().map(|bn| bn.prefix().to_string()).collect()
    }

    fn named_storage(&self) -> Vec<(String, &Var)> {
        match &self.body {
            Body::Cnn(m) => m.named_storage(),
            Body::Resnet(m) => m.named_storage(),
        }
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
    /// Not counted: biases, BatchNorm, ReLU, pooling, squeeze means, gates, re-weighting and a
    /// ResNet's additions.
    pub fn macs(&self) -> u64 {
        match &self.body {
            Body::Cnn(m) => m.macs(),
            Body::Resnet(m) => m.macs(INPUT_SIDE),
        }
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
