//! The repo's golden fixtures (format [`FORMAT`], written by `scripts/golden.py write`) and
//! [`Case`], a model with its input batch and targets.
//!
//! A fixture stores no weights and no input: they are redrawn as PyTorch drew them after
//! `torch.manual_seed(seed)` ([`Fixture::build`]) and checked against the fingerprints PyTorch
//! wrote, so a drift of our generator reports itself as such rather than as a numeric error.

use std::collections::HashMap;
use std::path::Path;

use ablate_data::TorchGenerator;
use candle_core::{Device, Tensor};

use super::reference::{f64s, Reference};
use super::GoldenError;
use crate::ops::kernels::Kernels;
use crate::{ModelSpec, Net};

/// The format the fixtures' metadata names (`scripts/golden.py`'s `FORMAT`).
pub const FORMAT: &str = "ablate-golden/1";

/// A model, its input batch and targets, ready to compare with a reference.
pub struct Case {
    /// The model, with the reference's initial state and the chosen kernels.
    pub net: Net,
    /// `[B, 3, 32, 32]` f32.
    pub input: Tensor,
    /// `[B]` u32.
    pub target: Tensor,
}

/// One fixture in the repo's format.
pub struct Fixture {
    /// The model (dropout off, as the fixture's forwards).
    pub spec: ModelSpec,
    /// `torch.manual_seed` of the weights, BatchNorm state, input and targets.
    pub seed: u64,
    /// Batch size.
    pub batch: usize,
    /// Learning rate of the three Adam steps (`adam.*`).
    pub adam_lr: f64,
    /// The file's tensors.
    pub reference: Reference,
}

impl Fixture {
    /// Reads the fixture at `path`.
    pub fn load(path: &Path) -> Result<Fixture, GoldenError> {
        let reference = Reference::read(path)?;
        let bad = |what: String| GoldenError::Format {
            file: reference.label.clone(),
            what,
        };
        let format = reference.meta("format")?;
        if format != FORMAT {
            return Err(bad(format!("format `{format}`, expected `{FORMAT}`")));
        }
        let spec: ModelSpec = reference
            .meta("spec")?
            .parse()
            .map_err(|e| bad(format!("metadata `spec`: {e}")))?;
        let number = |key: &str| -> Result<f64, GoldenError> {
            reference
                .meta(key)?
                .parse()
                .map_err(|e| bad(format!("metadata `{key}`: {e}")))
        };
        Ok(Fixture {
            spec: ModelSpec {
                dropout: 0.0,
                ..spec
            },
            seed: number("seed")? as u64,
            batch: number("batch")? as usize,
            adam_lr: number("adam_lr")?,
            reference,
        })
    }

    /// The model, input and targets PyTorch drew after `torch.manual_seed(seed)`, on `device`
    /// with `kernels`: the weights by `Net::init_like_torch`, then from the same generator, per
    /// BatchNorm in `state_dict` order, its running mean `U(-0.5, 0.5)`, running variance,
    /// weight `U(0.5, 1.5)` and bias `U(-0.2, 0.2)`, the input `U(-2, 2)` and the targets
    /// `randint(0, 10)`. An error when any of them differs from the fingerprint PyTorch wrote.
    pub fn build(&self, kernels: Kernels, device: &Device) -> Result<Case, GoldenError> {
        let model = |e: candle_core::Error| self.model_error(e);
        let mut net = Net::new(&self.spec, 10, device, self.seed).map_err(model)?;
        let draws = net.init_like_torch(self.seed).map_err(model)?;
        let mut g = TorchGenerator::at(self.seed, draws);
        let mut state: HashMap<String, Tensor> =
            net.state_dict().map_err(model)?.into_iter().collect();
        for bn in net.batch_norm_names() {
            for (what, from, to) in [
                ("running_mean", -0.5, 0.5),
                ("running_var", 0.5, 1.5),
                ("weight", 0.5, 1.5),
                ("bias", -0.2, 0.2),
            ] {
                let key = format!("{bn}.{what}");
                let n = state.get(&key).map_or(0, Tensor::elem_count);
                let v: Vec<f32> = (0..n).map(|_| g.uniform_f32(from, to)).collect();
                state.insert(key, Tensor::from_vec(v, n, device).map_err(model)?);
            }
        }
        net.load_state_dict(&state)
            .map_err(|e| self.model_error(e))?;
        let n = self.batch * 3 * 32 * 32;
        let x: Vec<f32> = (0..n).map(|_| g.uniform_f32(-2.0, 2.0)).collect();
        let input = Tensor::from_vec(x, (self.batch, 3, 32, 32), device).map_err(model)?;
        let y: Vec<u32> = (0..self.batch).map(|_| g.randint(10)).collect();
        let target = Tensor::from_vec(y, self.batch, device).map_err(model)?;

        for (name, t) in net.state_dict().map_err(model)? {
            self.check_fingerprint(&name, &t)?;
        }
        self.check_fingerprint("input", &input)?;
        let want = self.reference.f64s("target")?;
        if f64s(&target).map_err(model)? != want {
            return Err(GoldenError::Fingerprint {
                file: self.reference.label.clone(),
                tensor: "target".into(),
                seed: self.seed,
                detail: format!("PyTorch drew {want:?}"),
            });
        }
        net.set_kernels(kernels);
        Ok(Case { net, input, target })
    }

    fn model_error(&self, e: impl std::error::Error + Send + Sync + 'static) -> GoldenError {
        GoldenError::Model {
            file: self.reference.label.clone(),
            source: Box::new(e),
        }
    }

    /// `fingerprint.<name>` is `[exact sum, first 4 values, last 4 values]` (all values when at
    /// most 8); the values must be equal, the sums equal up to summation order.
    fn check_fingerprint(&self, name: &str, t: &Tensor) -> Result<(), GoldenError> {
        let want = self.reference.f64s(&format!("fingerprint.{name}"))?;
        let v = f64s(t).map_err(|e| self.model_error(e))?;
        let picked: Vec<f64> = if v.len() <= 8 {
            v.clone()
        } else {
            v[..4].iter().chain(&v[v.len() - 4..]).copied().collect()
        };
        let sum: f64 = v.iter().sum();
        let abs_sum: f64 = v.iter().map(|x| x.abs()).sum();
        if want.is_empty() || picked != want[1..] || (sum - want[0]).abs() > 1e-9 * abs_sum {
            return Err(GoldenError::Fingerprint {
                file: self.reference.label.clone(),
                tensor: name.to_string(),
                seed: self.seed,
                detail: format!(
                    "sum {sum} vs {}, values {picked:?} vs {:?}",
                    want.first().copied().unwrap_or(f64::NAN),
                    want.get(1..).unwrap_or(&[])
                ),
            });
        }
        Ok(())
    }
}
