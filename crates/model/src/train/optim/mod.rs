//! Adam (Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015)
//! and SGD with momentum / Nesterov (Sutskever et al., "On the importance of
//! initialization and momentum in deep learning", ICML 2013), with the exact
//! update rules of PyTorch's `torch.optim.Adam` and `torch.optim.SGD`
//! (single-tensor CPU implementation, `maximize=False`, `amsgrad=False`,
//! `dampening=0`).
//!
//! Not candle-nn's `AdamW`: its decay is decoupled and defaults to 0.01, while
//! PyTorch's `Adam` adds `weight_decay * param` to the gradient and defaults to 0.
//!
//! On the CPU, with f32 parameters, each parameter is updated in place by one
//! fused pass (a candle in-place custom op) that reads the gradient, updates the
//! moments held in plain vectors and writes the parameter: no temporary tensors.
//! Elsewhere (CUDA) the same formulas run as tensor ops.
//!
//! The state (moments, momentum buffers, per-parameter step counts) is exported
//! and restored as named tensors so checkpoints continue bit-exactly.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{bail, DType, Device, Result, Tensor, Var};

use super::config::{OptimizerKind, TrainConfig};

mod adam;
mod sgd;

use adam::{adam_host, adam_tensor};
use sgd::{sgd_host, sgd_tensor};

/// Hyper-parameters of [`Optimizer`], taken from a [`TrainConfig`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptimizerParams {
    /// Adam or SGD.
    pub kind: OptimizerKind,
    /// Initial learning rate.
    pub lr: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Adam `(beta1, beta2)`.
    pub betas: [f64; 2],
    /// Adam epsilon.
    pub eps: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// SGD Nesterov.
    pub nesterov: bool,
}

impl OptimizerParams {
    /// The optimizer settings of a `[train]` table.
    pub fn from_config(cfg: &TrainConfig) -> Self {
        Self {
            kind: cfg.optimizer,
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            betas: cfg.betas,
            eps: cfg.eps,
            momentum: cfg.momentum,
            nesterov: cfg.nesterov,
        }
    }
}

/// Per-parameter buffers: Adam's two moments or SGD's momentum buffer.
#[derive(Debug)]
pub(super) enum Buffers {
    /// Not yet stepped (PyTorch creates the state at a parameter's first step).
    Empty,
    /// Host vectors, updated by the fused CPU kernel.
    Host { a: Vec<f32>, b: Vec<f32> },
    /// Device tensors, updated with tensor ops (`b` unused for SGD).
    Device { a: Tensor, b: Option<Tensor> },
}

#[derive(Debug)]
pub(super) struct ParamSlot {
    pub(super) name: String,
    pub(super) var: Var,
    /// Steps taken by this parameter (PyTorch's per-parameter `step`).
    pub(super) step: u64,
    pub(super) buffers: Buffers,
}

/// Adam or SGD over a fixed list of named [`Var`]s.
#[derive(Debug)]
pub struct Optimizer {
    params: OptimizerParams,
    lr: f64,
    slots: Vec<ParamSlot>,
    fused: bool,
}

impl Optimizer {
    /// An optimizer over `vars` (names must be unique; they key the saved state).
    pub fn new(vars: Vec<(String, Var)>, params: OptimizerParams) -> Result<Self> {
        let mut seen = std::collections::HashSet::new();
        for (n, _) in &vars {
            if !seen.insert(n.as_str()) {
                bail!("optimizer: parameter name {n} appears twice");
            }
        }
        let slots = vars
            .into_iter()
            .map(|(name, var)| ParamSlot {
                name,
                var,
                step: 0,
                buffers: Buffers::Empty,
            })
            .collect();
        Ok(Self {
            lr: params.lr,
            params,
            slots,
            fused: true,
        })
    }

    /// Enables (default) or disables the fused in-place CPU kernel; disabled, CPU
    /// parameters take the tensor-op path (used to cross-check the two). The
    /// state is carried over, so switching keeps the trajectory.
    pub fn set_fused(&mut self, fused: bool) -> Result<()> {
        if fused != self.fused {
            let state = self.state_tensors()?;
            self.fused = fused;
            self.load_state_tensors(&state)?;
        }
        Ok(())
    }

    /// The learning rate the next step uses.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// Sets the learning rate (schedulers call this between epochs).
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// The hyper-parameters.
    pub fn params(&self) -> &OptimizerParams {
        &self.params
    }

    /// The largest per-parameter step count (the number of updates made).
    pub fn steps(&self) -> u64 {
        self.slots.iter().map(|s| s.step).max().unwrap_or(0)
    }

    /// Applies one update from `grads`; parameters without a gradient are left
    /// alone and their state does not advance (as in PyTorch).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        let p = self.params;
        let lr = self.lr;
        let fused = self.fused;
        for slot in &mut self.slots {
            let Some(grad) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            slot.step += 1;
            let use_host = fused
                && matches!(slot.var.device(), Device::Cpu)
                && slot.var.dtype() == DType::F32
                && !matches!(slot.buffers, Buffers::Device { .. });
            match p.kind {
                OptimizerKind::Adam => {
                    if use_host {
                        adam_host(slot, grad, &p, lr)?
                    } else {
                        adam_tensor(slot, grad, &p, lr)?
                    }
                }
                OptimizerKind::Sgd => {
                    if use_host {
                        sgd_host(slot, grad, &p, lr)?
                    } else {
                        sgd_tensor(slot, grad, &p, lr)?
                    }
                }
            }
        }
        Ok(())
    }

    /// The state as named tensors (on the CPU): `<param>.step` (I64, shape `[1]`),
    /// and `<param>.exp_avg`, `<param>.exp_avg_sq` (Adam) or
    /// `<param>.momentum_buffer` (SGD) once the parameter has been stepped.
    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let (na, nb) = self.buffer_names();
        let mut out = HashMap::new();
        for slot in &self.slots {
            out.insert(
                format!("{}.step", slot.name),
                Tensor::from_vec(vec![slot.step as i64], 1, &Device::Cpu)?,
            );
            let shape = slot.var.shape().clone();
            match &slot.buffers {
                Buffers::Empty => {}
                Buffers::Host { a, b } => {
                    if let Some(na) = na {
                        out.insert(
                            format!("{}.{na}", slot.name),
                            Tensor::from_slice(a, shape.clone(), &Device::Cpu)?,
                        );
                    }
                    if let Some(nb) = nb {
                        out.insert(
                            format!("{}.{nb}", slot.name),
                            Tensor::from_slice(b, shape, &Device::Cpu)?,
                        );
                    }
                }
                Buffers::Device { a, b } => {
                    if let Some(na) = na {
                        out.insert(format!("{}.{na}", slot.name), a.to_device(&Device::Cpu)?);
                    }
                    if let (Some(nb), Some(b)) = (nb, b) {
                        out.insert(format!("{}.{nb}", slot.name), b.to_device(&Device::Cpu)?);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Restores a state written by [`Optimizer::state_tensors`]; every parameter
    /// must have its `.step` entry, and its buffers when the step is non-zero.
    pub fn load_state_tensors(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let (na, nb) = self.buffer_names();
        let fused = self.fused;
        for slot in &mut self.slots {
            let key = format!("{}.step", slot.name);
            let Some(step) = state.get(&key) else {
                bail!("optimizer state has no entry {key}");
            };
            let step = step.flatten_all()?.to_vec1::<i64>()?;
            let [step] = step[..] else {
                bail!("optimizer state entry {key} must hold one value");
            };
            if step < 0 {
                bail!("optimizer state entry {key} is negative ({step})");
            }
            slot.step = step as u64;
            if slot.step == 0 {
                slot.buffers = Buffers::Empty;
                continue;
            }
            let shape = slot.var.shape().clone();
            let fetch = |n: &str| -> Result<Tensor> {
                let key = format!("{}.{n}", slot.name);
                let Some(t) = state.get(&key) else {
                    bail!("optimizer state has no entry {key}");
                };
                if t.shape() != &shape {
                    bail!(
                        "optimizer state entry {key} has shape {:?}, the parameter {:?}",
                        t.dims(),
                        shape.dims()
                    );
                }
                t.to_dtype(slot.var.dtype())
            };
            let Some(na) = na else {
                // SGD without momentum keeps no buffer.
                slot.buffers = Buffers::Empty;
                continue;
            };
            let a = fetch(na)?;
            let b = nb.map(fetch).transpose()?;
            let dev = slot.var.device().clone();
            slot.buffers = if fused && matches!(dev, Device::Cpu) && slot.var.dtype() == DType::F32
            {
                Buffers::Host {
                    a: a.flatten_all()?.to_vec1()?,
                    b: match b {
                        Some(b) => b.flatten_all()?.to_vec1()?,
                        None => Vec::new(),
                    },
                }
            } else {
                Buffers::Device {
                    a: a.to_device(&dev)?,
                    b: b.map(|b| b.to_device(&dev)).transpose()?,
                }
            };
        }
        Ok(())
    }

    /// Names of the two buffers a stepped parameter holds (none for SGD
    /// without momentum).
    fn buffer_names(&self) -> (Option<&'static str>, Option<&'static str>) {
        match self.params.kind {
            OptimizerKind::Adam => (Some("exp_avg"), Some("exp_avg_sq")),
            OptimizerKind::Sgd if self.params.momentum != 0.0 => (Some("momentum_buffer"), None),
            OptimizerKind::Sgd => (None, None),
        }
    }
}

/// Size of the chunks the fused kernels hand to rayon.
pub(super) const CHUNK: usize = 1 << 14;

/// The parameter and gradient slices a fused CPU update kernel (`name`) works on: both f32,
/// contiguous, of one length.
pub(super) fn param_and_grad<'a>(
    name: &str,
    param: &'a mut candle_core::CpuStorage,
    param_layout: &candle_core::Layout,
    grad: &'a candle_core::CpuStorage,
    grad_layout: &candle_core::Layout,
) -> Result<(&'a mut [f32], &'a [f32])> {
    use candle_core::CpuStorage;
    let (CpuStorage::F32(param), CpuStorage::F32(grad)) = (param, grad) else {
        bail!("{name}: parameter and gradient must be f32");
    };
    let (Some((p0, p1)), Some((g0, g1))) = (
        param_layout.contiguous_offsets(),
        grad_layout.contiguous_offsets(),
    ) else {
        bail!("{name}: parameter and gradient must be contiguous");
    };
    if p1 - p0 != g1 - g0 {
        bail!("{name}: size mismatch");
    }
    Ok((&mut param[p0..p1], &grad[g0..g1]))
}

pub(super) fn contiguous_grad(grad: &Tensor) -> Result<Tensor> {
    let g = if grad.is_contiguous() {
        grad.clone()
    } else {
        grad.contiguous()?
    };
    if g.dtype() != DType::F32 {
        return g.to_dtype(DType::F32);
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P0: [f32; 3] = [0.5, -1.0, 2.0];
    const CS: [[f32; 3]; 3] = [[0.1, -0.2, 0.3], [-0.05, 0.4, 0.0], [0.2, 0.2, -0.1]];

    fn params(
        kind: OptimizerKind,
        lr: f64,
        wd: f64,
        momentum: f64,
        nesterov: bool,
    ) -> OptimizerParams {
        OptimizerParams {
            kind,
            lr,
            weight_decay: wd,
            betas: [0.9, 0.999],
            eps: 1e-8,
            momentum,
            nesterov,
        }
    }

    /// Runs the steps `from..to` of the test problem: loss_t = sum(c_t * p) + 0.25 * sum(p^2),
    /// so the gradient is c_t + 0.5 p (it depends on the parameter).
    fn run(opt: &mut Optimizer, var: &Var, from: usize, to: usize) -> Vec<Vec<f32>> {
        let mut out = Vec::new();
        for c in &CS[from..to] {
            let c = Tensor::new(c, &Device::Cpu).unwrap();
            let p = var.as_tensor();
            let loss = ((p * &c).unwrap().sum_all().unwrap()
                + p.sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .affine(0.25, 0.0)
                    .unwrap())
            .unwrap();
            let grads = loss.backward().unwrap();
            opt.step(&grads).unwrap();
            out.push(var.as_tensor().to_vec1::<f32>().unwrap());
        }
        out
    }

    fn check(p: OptimizerParams, want: [[f64; 3]; 3]) {
        for fused in [true, false] {
            let var = Var::new(&P0, &Device::Cpu).unwrap();
            let mut opt = Optimizer::new(vec![("w".into(), var.clone())], p).unwrap();
            opt.set_fused(fused).unwrap();
            let got = run(&mut opt, &var, 0, 3);
            for (t, (g, w)) in got.iter().zip(want).enumerate() {
                for (a, b) in g.iter().zip(w) {
                    assert!(
                        (f64::from(*a) - b).abs() <= 1e-6 * b.abs().max(1.0),
                        "{:?} fused={fused} step {}: {g:?} vs {w:?}",
                        p.kind,
                        t + 1
                    );
                }
            }
            assert_eq!(opt.steps(), 3);
        }
    }

    // Expected parameters after each of 3 steps, computed in f64 by a direct
    // transcription of PyTorch 2.x `torch/optim/adam.py::_single_tensor_adam` and
    // `sgd.py::_single_tensor_sgd` (lerp for exp_avg, addcmul for exp_avg_sq,
    // denom = sqrt(v)/sqrt(1-b2^t) + eps, step size lr/(1-b1^t); SGD buffer =
    // clone(grad) at the first step, then momentum*buf + grad), starting from
    // p = [0.5, -1, 2] with the gradients of the problem in `run`. Confirmed
    // with PyTorch 2.15.0 itself (float64 tensors, `torch.optim.Adam(lr=0.01[,
    // weight_decay=0.1])`, `torch.optim.SGD(lr=0.1, momentum=0.9[, weight_decay=0.01,
    // nesterov=True])`): identical to the last printed digit.

    #[test]
    fn adam_matches_pytorch() {
        check(
            params(OptimizerKind::Adam, 0.01, 0.0, 0.0, false),
            [
                [
                    0.490_000_000_285_714_3,
                    -0.990_000_000_142_857_2,
                    1.990_000_000_076_923_1,
                ],
                [
                    0.480_524_167_453_739_4,
                    -0.982_359_127_390_771_4,
                    1.980_155_849_576_061,
                ],
                [
                    0.470_870_015_279_201_25,
                    -0.974_462_698_593_976_7,
                    1.970_418_472_759_887_5,
                ],
            ],
        );
    }

    #[test]
    fn adam_with_l2_weight_decay_matches_pytorch() {
        check(
            params(OptimizerKind::Adam, 0.01, 0.1, 0.0, false),
            [
                [
                    0.490_000_000_25,
                    -0.990_000_000_125,
                    1.990_000_000_066_666_7,
                ],
                [
                    0.480_403_891_415_053_4,
                    -0.981_733_799_663_029_2,
                    1.980_122_737_093_004,
                ],
                [
                    0.470_659_061_161_276_2,
                    -0.973_225_968_005_706,
                    1.970_328_759_885_730_4,
                ],
            ],
        );
    }

    #[test]
    fn sgd_momentum_matches_pytorch() {
        check(
            params(OptimizerKind::Sgd, 0.1, 0.0, 0.9, false),
            [
                [0.465, -0.93, 1.87],
                [0.415_25, -0.8605, 1.6595],
                [0.329_712_5, -0.774_925, 1.397_075],
            ],
        );
    }

    #[test]
    fn sgd_nesterov_with_weight_decay_matches_pytorch() {
        check(
            params(OptimizerKind::Sgd, 0.1, 0.01, 0.9, true),
            [
                [0.43255, -0.8651, 1.7492],
                [0.371_380_905, -0.799_761_81, 1.472_782_52],
                [0.257_695_954_805_5, -0.705_168_609_611, 1.180_582_441_812],
            ],
        );
    }

    #[test]
    fn sgd_without_momentum_matches_pytorch() {
        check(
            params(OptimizerKind::Sgd, 0.1, 0.0, 0.0, false),
            [
                [0.465, -0.93, 1.87],
                [0.44675, -0.9235, 1.7765],
                [0.404_412_5, -0.897_325, 1.697_675],
            ],
        );
    }

    /// 1 step, save the state, restore into a fresh optimizer, 2 more steps:
    /// bit-identical to 3 straight steps.
    #[test]
    fn state_round_trip_continues_bit_exactly() {
        for p in [
            params(OptimizerKind::Adam, 0.01, 0.1, 0.0, false),
            params(OptimizerKind::Sgd, 0.1, 0.01, 0.9, true),
            params(OptimizerKind::Sgd, 0.1, 0.0, 0.0, false),
        ] {
            let var = Var::new(&P0, &Device::Cpu).unwrap();
            let mut opt = Optimizer::new(vec![("w".into(), var.clone())], p).unwrap();
            let straight = run(&mut opt, &var, 0, 3);

            let var = Var::new(&P0, &Device::Cpu).unwrap();
            let mut opt = Optimizer::new(vec![("w".into(), var.clone())], p).unwrap();
            run(&mut opt, &var, 0, 1);
            let state = opt.state_tensors().unwrap();
            let var2 =
                Var::new(&var.as_tensor().to_vec1::<f32>().unwrap()[..], &Device::Cpu).unwrap();
            let mut opt2 = Optimizer::new(vec![("w".into(), var2.clone())], p).unwrap();
            opt2.load_state_tensors(&state).unwrap();
            let resumed = run(&mut opt2, &var2, 1, 3);
            assert_eq!(resumed[1], straight[2], "{:?}", p.kind);
        }
    }

    #[test]
    fn load_rejects_missing_or_misshapen_state() {
        let p = params(OptimizerKind::Adam, 0.01, 0.0, 0.0, false);
        let var = Var::new(&P0, &Device::Cpu).unwrap();
        let mut opt = Optimizer::new(vec![("w".into(), var.clone())], p).unwrap();
        run(&mut opt, &var, 0, 1);
        let mut state = opt.state_tensors().unwrap();
        state.insert(
            "w.exp_avg".into(),
            Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap(),
        );
        let err = opt.load_state_tensors(&state).unwrap_err().to_string();
        assert!(err.contains("w.exp_avg"), "{err}");
        state.remove("w.step");
        let err = opt.load_state_tensors(&state).unwrap_err().to_string();
        assert!(err.contains("w.step"), "{err}");
    }

    #[test]
    fn parameters_without_gradient_do_not_advance() {
        let p = params(OptimizerKind::Adam, 0.01, 0.0, 0.0, false);
        let a = Var::new(&P0, &Device::Cpu).unwrap();
        let b = Var::new(&[1f32, 2.0], &Device::Cpu).unwrap();
        let mut opt =
            Optimizer::new(vec![("a".into(), a.clone()), ("b".into(), b.clone())], p).unwrap();
        run(&mut opt, &a, 0, 2);
        assert_eq!(b.as_tensor().to_vec1::<f32>().unwrap(), vec![1.0, 2.0]);
        let st = opt.state_tensors().unwrap();
        assert_eq!(st["b.step"].to_vec1::<i64>().unwrap(), vec![0]);
        assert_eq!(st["a.step"].to_vec1::<i64>().unwrap(), vec![2]);
        assert!(!st.contains_key("b.exp_avg"));
    }
}
