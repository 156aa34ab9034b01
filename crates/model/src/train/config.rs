//! The `[train]` table of an experiment: optimizer, learning-rate schedule, loss
//! and loop settings, with PyTorch's defaults where PyTorch has one.
//!
//! Every key is optional; [`TrainConfig::default`] is the seed experiment's
//! protocol (Adam 1e-3, batch 64, ReduceLROnPlateau on the test loss with
//! patience 3 and factor 0.5). `docs/training.md` documents each key.

use ablate_data::{RandomStreams, SeedVaries};
use serde::{Deserialize, Serialize};

/// Which optimizer updates the weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// `torch.optim.Adam`: L2 weight decay added to the gradient, bias-corrected
    /// moments, `eps` added after the square root.
    #[default]
    Adam,
    /// `torch.optim.SGD` with momentum (dampening 0), optional Nesterov and L2
    /// weight decay.
    Sgd,
}

/// How the learning rate changes from epoch to epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SchedulerKind {
    /// `ReduceLROnPlateau(mode="min", threshold_mode="rel", cooldown=0)` stepped
    /// on the test loss at the end of every epoch.
    #[default]
    Plateau,
    /// `CosineAnnealingLR(T_max=epochs, eta_min=min_lr)`, stepped per epoch; with
    /// `warmup_epochs`, after `LinearLR(warmup_start_factor)` (`SequentialLR`).
    Cosine,
    /// `StepLR(step_size, gamma)`, stepped per epoch.
    Step,
    /// `MultiStepLR(milestones, gamma)`, stepped per epoch (He et al.'s ResNet protocol).
    Multistep,
    /// A constant learning rate.
    None,
}

/// The `[train]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Number of passes over the training split (at least 1).
    pub epochs: u32,
    /// Images per training step.
    pub batch_size: usize,
    /// Images per forward pass when evaluating (does not change the result).
    pub eval_batch_size: usize,
    /// `adam` or `sgd`.
    pub optimizer: OptimizerKind,
    /// Initial learning rate.
    pub lr: f64,
    /// L2 penalty added to the gradient (PyTorch's `weight_decay`, not AdamW's
    /// decoupled decay).
    pub weight_decay: f64,
    /// Adam's `(beta1, beta2)`.
    pub betas: [f64; 2],
    /// Adam's `eps`, added to the square root of the second moment.
    pub eps: f64,
    /// SGD momentum (0 disables it).
    pub momentum: f64,
    /// SGD Nesterov momentum (needs `momentum > 0`).
    pub nesterov: bool,
    /// `plateau`, `cosine`, `step` or `none`.
    pub scheduler: SchedulerKind,
    /// Plateau: epochs without improvement tolerated before the rate is cut.
    pub plateau_patience: u32,
    /// Plateau: factor the rate is multiplied by when cut (in (0, 1)).
    pub plateau_factor: f64,
    /// Plateau: relative improvement needed to count as better
    /// (`loss < best * (1 - threshold)`).
    pub plateau_threshold: f64,
    /// Lower bound of the learning rate (plateau), or its final value (cosine).
    pub min_lr: f64,
    /// Step: the rate is multiplied by `step_gamma` every `step_size` epochs.
    pub step_size: u32,
    /// Step and multistep: the multiplier.
    pub step_gamma: f64,
    /// Multistep: the epochs (0-based, increasing) from which the rate is multiplied by
    /// `step_gamma` once more.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub milestones: Vec<u32>,
    /// Cosine: epochs of linear warm-up before the cosine decay (0: none).
    #[serde(skip_serializing_if = "is_zero")]
    pub warmup_epochs: u32,
    /// Cosine with warm-up: the first epoch's rate as a fraction of `lr` (`LinearLR`'s
    /// `start_factor`), rising linearly to `lr` at epoch `warmup_epochs`.
    #[serde(skip_serializing_if = "is_default_warmup_start")]
    pub warmup_start_factor: f64,
    /// Cross-entropy label smoothing in [0, 1] (PyTorch's formula).
    pub label_smoothing: f64,
    /// Stop each epoch after this many steps (smoke tests); absent: full epochs.
    pub max_steps_per_epoch: Option<usize>,
    /// Whose random numbers draw the initial weights, batches, augmentation and dropout:
    /// `ablate` (ours, the default) or `pytorch` (the reference script's, draw for draw; see
    /// `ablate_data::RandomStreams`). Left out of the serialized table when `ablate`.
    #[serde(skip_serializing_if = "RandomStreams::is_ablate")]
    pub random_streams: RandomStreams,
    /// Which sources of randomness the trial seed drives: `all` (the default), or only one of
    /// `init` (initial weights), `order` (data order, augmentation, dropout), `sample`
    /// (`data.resample`); the others come from `fixed_seed` (`ablate_data::seeds`). The
    /// runner resolves the seeds; the trainer takes them as given. Left out when `all`.
    #[serde(skip_serializing_if = "SeedVaries::is_all")]
    pub seed_varies: SeedVaries,
    /// The seed of the sources `seed_varies` holds fixed. Left out when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub fixed_seed: u64,
}

fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// `LinearLR`'s default `start_factor`.
pub const DEFAULT_WARMUP_START_FACTOR: f64 = 1.0 / 3.0;

fn is_default_warmup_start(v: &f64) -> bool {
    *v == DEFAULT_WARMUP_START_FACTOR
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 50,
            batch_size: 64,
            eval_batch_size: 500,
            optimizer: OptimizerKind::Adam,
            lr: 1e-3,
            weight_decay: 0.0,
            betas: [0.9, 0.999],
            eps: 1e-8,
            momentum: 0.9,
            nesterov: false,
            scheduler: SchedulerKind::Plateau,
            plateau_patience: 3,
            plateau_factor: 0.5,
            plateau_threshold: 1e-4,
            min_lr: 0.0,
            step_size: 10,
            step_gamma: 0.1,
            milestones: Vec::new(),
            warmup_epochs: 0,
            warmup_start_factor: DEFAULT_WARMUP_START_FACTOR,
            label_smoothing: 0.0,
            max_steps_per_epoch: None,
            random_streams: RandomStreams::Ablate,
            seed_varies: SeedVaries::All,
            fixed_seed: 0,
        }
    }
}

/// A `[train]` value out of its range; the message names the key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("train.{key} {reason}")]
pub struct TrainConfigError {
    /// The key at fault, without the `train.` prefix.
    pub key: &'static str,
    /// What is wrong with its value, e.g. "must be at least 1".
    pub reason: String,
}

fn bad(key: &'static str, reason: impl Into<String>) -> TrainConfigError {
    TrainConfigError {
        key,
        reason: reason.into(),
    }
}

fn finite_at_least(key: &'static str, v: f64, min: f64) -> Result<(), TrainConfigError> {
    if !v.is_finite() || v < min {
        return Err(bad(
            key,
            format!("must be a finite number >= {min}, got {v}"),
        ));
    }
    Ok(())
}

impl TrainConfig {
    /// Checks every value's range; the error names the first key at fault.
    pub fn validate(&self) -> Result<(), TrainConfigError> {
        if self.epochs < 1 {
            return Err(bad("epochs", "must be at least 1"));
        }
        if self.batch_size < 1 {
            return Err(bad("batch_size", "must be at least 1"));
        }
        if self.eval_batch_size < 1 {
            return Err(bad("eval_batch_size", "must be at least 1"));
        }
        if !self.lr.is_finite() || self.lr <= 0.0 {
            return Err(bad(
                "lr",
                format!("must be a finite number > 0, got {}", self.lr),
            ));
        }
        finite_at_least("weight_decay", self.weight_decay, 0.0)?;
        for (i, b) in self.betas.iter().enumerate() {
            if !b.is_finite() || !(0.0..1.0).contains(b) {
                return Err(bad(
                    "betas",
                    format!("must lie in [0, 1), got {b} at index {i}"),
                ));
            }
        }
        finite_at_least("eps", self.eps, 0.0)?;
        finite_at_least("momentum", self.momentum, 0.0)?;
        if self.nesterov && self.momentum <= 0.0 {
            return Err(bad("nesterov", "needs train.momentum > 0"));
        }
        if !self.plateau_factor.is_finite()
            || self.plateau_factor <= 0.0
            || self.plateau_factor >= 1.0
        {
            return Err(bad(
                "plateau_factor",
                format!("must lie in (0, 1), got {}", self.plateau_factor),
            ));
        }
        finite_at_least("plateau_threshold", self.plateau_threshold, 0.0)?;
        finite_at_least("min_lr", self.min_lr, 0.0)?;
        if self.step_size < 1 {
            return Err(bad("step_size", "must be at least 1"));
        }
        if !self.step_gamma.is_finite() || self.step_gamma <= 0.0 {
            return Err(bad(
                "step_gamma",
                format!("must be a finite number > 0, got {}", self.step_gamma),
            ));
        }
        self.validate_schedule()?;
        if !self.label_smoothing.is_finite() || !(0.0..=1.0).contains(&self.label_smoothing) {
            return Err(bad(
                "label_smoothing",
                format!("must lie in [0, 1], got {}", self.label_smoothing),
            ));
        }
        if self.max_steps_per_epoch == Some(0) {
            return Err(bad("max_steps_per_epoch", "must be at least 1 when given"));
        }
        if self.random_streams == RandomStreams::Pytorch && self.max_steps_per_epoch.is_some() {
            return Err(bad(
                "max_steps_per_epoch",
                "cannot be used with train.random_streams = \"pytorch\" (the reference script \
                 draws every batch of an epoch)",
            ));
        }
        if self.random_streams == RandomStreams::Pytorch && !self.seed_varies.is_all() {
            return Err(bad(
                "seed_varies",
                "must be \"all\" with train.random_streams = \"pytorch\" (PyTorch's generator \
                 draws the weights and the dropout masks from one stream)",
            ));
        }
        Ok(())
    }
}

impl TrainConfig {
    /// The multistep milestones and the warm-up.
    fn validate_schedule(&self) -> Result<(), TrainConfigError> {
        let multistep = self.scheduler == SchedulerKind::Multistep;
        if multistep && self.milestones.is_empty() {
            return Err(bad(
                "milestones",
                "must list at least one epoch with scheduler = \"multistep\" (e.g. [82, 123])",
            ));
        }
        if !multistep && !self.milestones.is_empty() {
            return Err(bad(
                "milestones",
                "applies to scheduler = \"multistep\" only",
            ));
        }
        if let Some(w) = self.milestones.windows(2).find(|w| w[0] >= w[1]) {
            return Err(bad(
                "milestones",
                format!("must increase, got {} then {}", w[0], w[1]),
            ));
        }
        if self.milestones.first() == Some(&0) {
            return Err(bad(
                "milestones",
                "must be at least 1 (epoch 0 starts at lr)",
            ));
        }
        if self.warmup_epochs > 0 && self.scheduler != SchedulerKind::Cosine {
            return Err(bad(
                "warmup_epochs",
                "applies to scheduler = \"cosine\" only",
            ));
        }
        if self.warmup_epochs >= self.epochs && self.warmup_epochs > 0 {
            return Err(bad(
                "warmup_epochs",
                format!(
                    "must be below train.epochs ({}), got {}",
                    self.epochs, self.warmup_epochs
                ),
            ));
        }
        if !self.warmup_start_factor.is_finite()
            || self.warmup_start_factor <= 0.0
            || self.warmup_start_factor > 1.0
        {
            return Err(bad(
                "warmup_start_factor",
                format!("must lie in (0, 1], got {}", self.warmup_start_factor),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seed_protocol_and_valid() {
        let c = TrainConfig::default();
        assert_eq!(c.batch_size, 64);
        assert_eq!(c.optimizer, OptimizerKind::Adam);
        assert_eq!(c.lr, 1e-3);
        assert_eq!(c.scheduler, SchedulerKind::Plateau);
        c.validate().unwrap();
    }

    #[test]
    fn toml_table_parses_with_defaults_and_rejects_unknown_keys() {
        let c: TrainConfig =
            toml::from_str("epochs = 3\noptimizer = \"sgd\"\nnesterov = true\nscheduler = \"cosine\"\nmax_steps_per_epoch = 5\n")
                .unwrap();
        assert_eq!(c.epochs, 3);
        assert_eq!(c.optimizer, OptimizerKind::Sgd);
        assert!(c.nesterov);
        assert_eq!(c.scheduler, SchedulerKind::Cosine);
        assert_eq!(c.max_steps_per_epoch, Some(5));
        assert_eq!(c.batch_size, 64);
        let err = toml::from_str::<TrainConfig>("epoch = 3\n").unwrap_err();
        assert!(err.to_string().contains("epoch"), "{err}");
        let err = toml::from_str::<TrainConfig>("optimizer = \"rmsprop\"\n").unwrap_err();
        assert!(err.to_string().contains("rmsprop"), "{err}");
        // round trip
        let s = toml::to_string(&c).unwrap();
        assert_eq!(toml::from_str::<TrainConfig>(&s).unwrap(), c);
        // the schedule keys are left out of the table at their defaults (trial ids unchanged)
        assert!(!s.contains("milestones") && !s.contains("warmup"), "{s}");
        let m: TrainConfig =
            toml::from_str("scheduler = \"multistep\"\nmilestones = [82, 123]\n").unwrap();
        assert_eq!(m.milestones, vec![82, 123]);
        m.validate().unwrap();
        let text = toml::to_string(&m).unwrap();
        assert_eq!(toml::from_str::<TrainConfig>(&text).unwrap(), m);
    }

    #[test]
    fn validate_names_the_key() {
        let cases: Vec<(TrainConfig, &str)> = vec![
            (
                TrainConfig {
                    epochs: 0,
                    ..Default::default()
                },
                "train.epochs must be at least 1",
            ),
            (
                TrainConfig {
                    batch_size: 0,
                    ..Default::default()
                },
                "train.batch_size",
            ),
            (
                TrainConfig {
                    lr: -1.0,
                    ..Default::default()
                },
                "train.lr",
            ),
            (
                TrainConfig {
                    lr: f64::NAN,
                    ..Default::default()
                },
                "train.lr",
            ),
            (
                TrainConfig {
                    betas: [0.9, 1.0],
                    ..Default::default()
                },
                "train.betas",
            ),
            (
                TrainConfig {
                    momentum: 0.0,
                    nesterov: true,
                    ..Default::default()
                },
                "train.nesterov",
            ),
            (
                TrainConfig {
                    plateau_factor: 1.0,
                    ..Default::default()
                },
                "train.plateau_factor",
            ),
            (
                TrainConfig {
                    step_size: 0,
                    ..Default::default()
                },
                "train.step_size",
            ),
            (
                TrainConfig {
                    label_smoothing: 1.5,
                    ..Default::default()
                },
                "train.label_smoothing",
            ),
            (
                TrainConfig {
                    max_steps_per_epoch: Some(0),
                    ..Default::default()
                },
                "train.max_steps_per_epoch",
            ),
            (
                TrainConfig {
                    weight_decay: -0.1,
                    ..Default::default()
                },
                "train.weight_decay",
            ),
            (
                TrainConfig {
                    scheduler: SchedulerKind::Multistep,
                    ..Default::default()
                },
                "train.milestones must list at least one epoch",
            ),
            (
                TrainConfig {
                    scheduler: SchedulerKind::Multistep,
                    milestones: vec![30, 20],
                    ..Default::default()
                },
                "train.milestones must increase, got 30 then 20",
            ),
            (
                TrainConfig {
                    milestones: vec![30],
                    ..Default::default()
                },
                "train.milestones applies to scheduler = \"multistep\" only",
            ),
            (
                TrainConfig {
                    warmup_epochs: 5,
                    ..Default::default()
                },
                "train.warmup_epochs applies to scheduler = \"cosine\" only",
            ),
            (
                TrainConfig {
                    scheduler: SchedulerKind::Cosine,
                    warmup_epochs: 50,
                    ..Default::default()
                },
                "train.warmup_epochs must be below train.epochs (50), got 50",
            ),
            (
                TrainConfig {
                    scheduler: SchedulerKind::Cosine,
                    warmup_epochs: 5,
                    warmup_start_factor: 0.0,
                    ..Default::default()
                },
                "train.warmup_start_factor",
            ),
        ];
        for (c, want) in cases {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.starts_with(want), "{e} does not start with {want}");
        }
    }
}
