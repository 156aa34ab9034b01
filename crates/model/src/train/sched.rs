//! Learning-rate schedules, stepped once per epoch, with the semantics of
//! PyTorch's `torch.optim.lr_scheduler`:
//!
//! - `ReduceLROnPlateau(mode="min", threshold_mode="rel", cooldown=0)`: the
//!   metric (our test loss) improves when `metric < best * (1 - threshold)`;
//!   after more than `patience` epochs without improvement the rate is multiplied
//!   by `factor` (not below `min_lr`, and only when it changes by more than
//!   `eps = 1e-8`), and the bad-epoch count restarts.
//! - `CosineAnnealingLR(T_max=epochs, eta_min=min_lr)` in its closed form:
//!   `lr_e = min_lr + (lr0 - min_lr) * (1 + cos(pi * e / epochs)) / 2` for the
//!   `e`-th epoch (0-based).
//! - `StepLR(step_size, gamma)`: `lr_e = lr0 * gamma^floor(e / step_size)`.
//!
//! The whole state is a small serde struct, saved in checkpoints.

use serde::{Deserialize, Serialize};

use super::config::{SchedulerKind, TrainConfig};

/// PyTorch's `ReduceLROnPlateau.eps`: smaller changes of the rate are ignored.
const PLATEAU_EPS: f64 = 1e-8;

/// A learning-rate schedule and its state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrScheduler {
    /// Which schedule.
    pub kind: SchedulerKind,
    /// The initial rate.
    pub base_lr: f64,
    /// The rate for the coming epoch.
    pub lr: f64,
    /// Epochs completed (the number of `step` calls).
    pub epochs_done: u32,
    /// Plateau: best metric so far (`None`: PyTorch's initial `+inf`).
    pub best: Option<f64>,
    /// Plateau: epochs since the last improvement.
    pub num_bad_epochs: u32,
    /// Plateau: patience.
    pub patience: u32,
    /// Plateau: factor.
    pub factor: f64,
    /// Plateau: relative threshold.
    pub threshold: f64,
    /// Lower bound (plateau) or final value (cosine).
    pub min_lr: f64,
    /// Cosine: the period `T_max` in epochs.
    pub t_max: u32,
    /// Step: epochs between cuts.
    pub step_size: u32,
    /// Step: multiplier.
    pub gamma: f64,
}

impl LrScheduler {
    /// The schedule a `[train]` table asks for, before the first epoch.
    pub fn from_config(cfg: &TrainConfig) -> Self {
        Self {
            kind: cfg.scheduler,
            base_lr: cfg.lr,
            lr: cfg.lr,
            epochs_done: 0,
            best: None,
            num_bad_epochs: 0,
            patience: cfg.plateau_patience,
            factor: cfg.plateau_factor,
            threshold: cfg.plateau_threshold,
            min_lr: cfg.min_lr,
            t_max: cfg.epochs.max(1),
            step_size: cfg.step_size.max(1),
            gamma: cfg.step_gamma,
        }
    }

    /// The rate to use for the next epoch.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// Ends an epoch: `metric` is the epoch's test loss (only the plateau
    /// schedule reads it). Returns the rate for the next epoch.
    pub fn step(&mut self, metric: f64) -> f64 {
        self.epochs_done += 1;
        let e = self.epochs_done;
        match self.kind {
            SchedulerKind::None => {}
            SchedulerKind::Plateau => {
                // `nan < x` is false: a NaN metric counts as a bad epoch, as in PyTorch.
                let best = self.best.unwrap_or(f64::INFINITY);
                if metric < best * (1.0 - self.threshold) {
                    self.best = Some(metric);
                    self.num_bad_epochs = 0;
                } else {
                    self.num_bad_epochs += 1;
                }
                if self.num_bad_epochs > self.patience {
                    let new_lr = (self.lr * self.factor).max(self.min_lr);
                    if self.lr - new_lr > PLATEAU_EPS {
                        self.lr = new_lr;
                    }
                    self.num_bad_epochs = 0;
                }
            }
            SchedulerKind::Cosine => {
                let t = f64::from(e.min(self.t_max)) / f64::from(self.t_max);
                self.lr = self.min_lr
                    + (self.base_lr - self.min_lr) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0;
            }
            SchedulerKind::Step => {
                self.lr = self.base_lr * self.gamma.powi((e / self.step_size) as i32);
            }
        }
        self.lr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plateau(patience: u32, factor: f64, min_lr: f64) -> LrScheduler {
        LrScheduler::from_config(&TrainConfig {
            lr: 1.0,
            plateau_patience: patience,
            plateau_factor: factor,
            min_lr,
            ..TrainConfig::default()
        })
    }

    /// The expected rates were worked by hand from PyTorch's
    /// `ReduceLROnPlateau.step` (torch/optim/lr_scheduler.py, 2.x): `is_better`
    /// is `a < best * (1 - 1e-4)`; a cut happens when `num_bad_epochs > patience`
    /// and resets the count; the new rate is `max(lr * factor, min_lr)`, applied
    /// only if it differs by more than 1e-8. The rate after each step is the one
    /// `optimizer.param_groups[0]["lr"]` shows after `sched.step(loss)`. Every
    /// sequence in these tests was confirmed with PyTorch 2.15.0's schedulers.
    #[test]
    fn plateau_matches_pytorch_sequence() {
        let mut s = plateau(3, 0.5, 0.0);
        // losses: improve, improve, 4 bad epochs (cut after the 4th), 3 bad, improve,
        // then 4 more bad (cut again).
        let losses = [
            2.0, 1.5, 1.6, 1.5, 1.5, 1.7, 1.6, 1.6, 1.6, 1.4, 1.5, 1.5, 1.5, 1.5,
        ];
        let want = [
            1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25,
        ];
        for (i, (l, w)) in losses.iter().zip(want).enumerate() {
            assert_eq!(s.step(*l), w, "epoch {} (loss {l})", i + 1);
        }
        assert_eq!(s.best, Some(1.4));
    }

    #[test]
    fn plateau_threshold_is_relative() {
        // best 1.0: 0.99995 is not < 1.0 * (1 - 1e-4) = 0.9999, so it is a bad epoch.
        let mut s = plateau(0, 0.5, 0.0);
        assert_eq!(s.step(1.0), 1.0);
        assert_eq!(s.step(0.99995), 0.5);
        assert_eq!(s.best, Some(1.0));
        // 0.99985 < 0.9999: an improvement, no cut.
        assert_eq!(s.step(0.99985), 0.5);
        assert_eq!(s.best, Some(0.99985));
    }

    #[test]
    fn plateau_respects_min_lr_and_eps() {
        // patience 0: every non-improving epoch cuts. 1 -> 0.1 -> max(0.01, 0.05) = 0.05,
        // then 0.05 * 0.1 = 0.005 < 0.05: stays (difference 0, not > 1e-8).
        let mut s = plateau(0, 0.1, 0.05);
        assert_eq!(s.step(1.0), 1.0);
        assert!((s.step(2.0) - 0.1).abs() < 1e-15);
        assert_eq!(s.step(2.0), 0.05);
        assert_eq!(s.step(2.0), 0.05);
    }

    #[test]
    fn plateau_nan_metric_is_a_bad_epoch() {
        let mut s = plateau(1, 0.5, 0.0);
        s.step(1.0);
        assert_eq!(s.step(f64::NAN), 1.0);
        assert_eq!(s.step(f64::NAN), 0.5);
    }

    #[test]
    fn cosine_matches_closed_form() {
        // CosineAnnealingLR(T_max=4, eta_min=0.1) from lr 1.1: 1.1, then
        // 0.1 + 1.0 * (1 + cos(pi e/4)) / 2 = 0.953553.., 0.6, 0.246446.., 0.1
        let mut s = LrScheduler::from_config(&TrainConfig {
            lr: 1.1,
            epochs: 4,
            min_lr: 0.1,
            scheduler: SchedulerKind::Cosine,
            ..TrainConfig::default()
        });
        assert_eq!(s.lr(), 1.1);
        let want = [0.953_553_390_593_273_8, 0.6, 0.246_446_609_406_726_2, 0.1];
        for w in want {
            let got = s.step(0.0);
            assert!((got - w).abs() < 1e-12, "{got} vs {w}");
        }
    }

    #[test]
    fn step_lr_multiplies_every_step_size_epochs() {
        let mut s = LrScheduler::from_config(&TrainConfig {
            lr: 1.0,
            scheduler: SchedulerKind::Step,
            step_size: 2,
            step_gamma: 0.5,
            ..TrainConfig::default()
        });
        let got: Vec<f64> = (0..5).map(|_| s.step(0.0)).collect();
        assert_eq!(got, vec![1.0, 0.5, 0.5, 0.25, 0.25]);
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut s = plateau(3, 0.5, 0.0);
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<LrScheduler>(&j).unwrap(), s);
        s.step(0.123_456_789_012_345_6);
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<LrScheduler>(&j).unwrap(), s);
    }
}
