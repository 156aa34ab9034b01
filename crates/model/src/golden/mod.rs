//! Golden checks against PyTorch: a model's logits, loss, every gradient, its BatchNorm running
//! statistics and a short Adam trajectory, compared with reference values PyTorch wrote, on any
//! device and with any kernels. The golden tests (`tests/golden.rs`, `tests/train_golden.rs`)
//! and `ablate golden` (a user can check a build, a device or a GPU with it) share this code.
//!
//! Two file formats, one set of keys (`eval.logits`, `train.logits`, `train.loss`,
//! `grad.<param>`, `after_train_step.bn{i}.running_{mean,var}`):
//! - the repo's fixtures (`crates/model/tests/fixtures/golden_<name>.safetensors`, written by
//!   `scripts/golden.py write`, format `ablate-golden/1`): no weights and no input; the model,
//!   BatchNorm state, input and targets are redrawn as PyTorch drew them and checked against
//!   the file's fingerprints ([`Fixture::build`]); they also hold three Adam steps (`adam.*`);
//! - `torch_seed.py golden`'s files (`../shared/golden`): the weights (`param.*`) and the input.
//!
//! The metric is `max|ours - ref| / max|ref|` per tensor ([`rel_err`]); [`TOLERANCE`] is 1e-4.
//! `ref` is PyTorch's float32 value, or its float64 value where the fixture holds one
//! (`exact.grad.<param>`: where PyTorch's own float32 gradient is more than 1e-5 off).
//!
//! - `reference.rs`: [`Reference`], a file's tensors and metadata;
//! - `fixture.rs`: [`Fixture`], the repo's format, and [`Case`], a model with its batch;
//! - `step.rs`: [`compare_step`], one forward and backward against the reference;
//! - `adam.rs`: [`compare_adam`], three Adam steps against the reference.

mod adam;
mod fixture;
mod reference;
mod step;

pub use adam::compare_adam;
pub use fixture::{Case, Fixture, FORMAT};
pub use reference::Reference;
pub use step::{compare_step, conv_bias_is_noise, rel_err};

use std::path::PathBuf;

/// Largest relative error a golden comparison accepts.
pub const TOLERANCE: f64 = 1e-4;

/// One comparison with the reference.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// What was compared (`grad.conv1.weight`, `adam step 2 loss`, ...).
    pub key: String,
    /// The error measure (relative unless `detail` says otherwise).
    pub error: f64,
    /// The largest `error` accepted.
    pub tolerance: f64,
    /// Whether it is within its tolerance.
    pub ok: bool,
    /// Ours and the reference's values, when the comparison is of a few numbers.
    pub detail: Option<String>,
}

impl Comparison {
    /// A relative error judged against [`TOLERANCE`].
    pub fn relative(key: impl Into<String>, error: f64) -> Comparison {
        Comparison::within(key, error, TOLERANCE, None)
    }

    /// `error` judged against `tolerance`.
    pub fn within(
        key: impl Into<String>,
        error: f64,
        tolerance: f64,
        detail: Option<String>,
    ) -> Comparison {
        Comparison {
            key: key.into(),
            error,
            tolerance,
            ok: error <= tolerance,
            detail,
        }
    }

    /// `error / tolerance`: how close to failing (above 1: out of tolerance).
    pub fn margin(&self) -> f64 {
        if self.tolerance > 0.0 {
            self.error / self.tolerance
        } else {
            f64::INFINITY
        }
    }
}

/// A golden file that cannot be read or used, or a model that cannot run it.
#[derive(Debug, thiserror::Error)]
pub enum GoldenError {
    /// The file cannot be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not safetensors, or a tensor has an unusable type or shape.
    #[error("{file}: {what}")]
    Format {
        /// The file's name.
        file: String,
        /// What is wrong.
        what: String,
    },
    /// A regenerated tensor differs from what PyTorch drew.
    #[error("{file}: the regenerated `{tensor}` is not PyTorch's ({detail}): Net::init_like_torch or TorchGenerator no longer reproduces torch.manual_seed({seed}) and the module's construction")]
    Fingerprint {
        /// The file's name.
        file: String,
        /// The tensor.
        tensor: String,
        /// The seed.
        seed: u64,
        /// Ours against the fingerprint.
        detail: String,
    },
    /// The model could not be built, loaded or run.
    #[error("{file}: the model failed")]
    Model {
        /// The file's name.
        file: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
