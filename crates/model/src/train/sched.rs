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
//!   `e`-th epoch (0-based). With `w = warmup_epochs > 0`, PyTorch's
//!   `SequentialLR([LinearLR(start_factor=f, total_iters=w), CosineAnnealingLR(T_max=epochs - w,
//!   eta_min=min_lr)], milestones=[w])`: `lr_e = lr0 * (f + (1 - f) * e / w)` for `e < w`, then
//!   the cosine over the remaining `epochs - w` epochs from `lr0`.
//! - `StepLR(step_size, gamma)`: `lr_e = lr0 * gamma^floor(e / step_size)`.
//! - `MultiStepLR(milestones, gamma)`: `lr_e = lr0 * gamma^(number of milestones <= e)`.
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
    /// Step and multistep: multiplier.
    pub gamma: f64,
    /// Multistep: the epochs from which the rate is multiplied by `gamma` once more.
    #[serde(default)]
    pub milestones: Vec<u32>,
    /// Cosine: epochs of linear warm-up.
    #[serde(default)]
    pub warmup_epochs: u32,
    /// Cosine with warm-up: the first epoch's fraction of `base_lr`.
    #[serde(default = "default_warmup_start")]
    pub warmup_start_factor: f64,
}

fn default_warmup_start() -> f64 {
    super::config::DEFAULT_WARMUP_START_FACTOR
}

impl LrScheduler {
    /// The schedule a `[train]` table asks for, before the first epoch.
    pub fn from_config(cfg: &TrainConfig) -> Self {
        let mut s = Self {
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
            milestones: cfg.milestones.clone(),
            warmup_epochs: cfg.warmup_epochs,
            warmup_start_factor: cfg.warmup_start_factor,
        };
        if let Some(lr) = s.closed_form(0) {
            s.lr = lr;
        }
        s
    }

    /// The rate of epoch `e` (0-based) of the schedules that are a function of the epoch
    /// alone; `None` for plateau and none.
    fn closed_form(&self, e: u32) -> Option<f64> {
        Some(match self.kind {
            SchedulerKind::None | SchedulerKind::Plateau => return None,
            SchedulerKind::Cosine if e < self.warmup_epochs => {
                let f = self.warmup_start_factor;
                self.base_lr * (f + (1.0 - f) * f64::from(e) / f64::from(self.warmup_epochs))
            }
            SchedulerKind::Cosine => {
                let period = self.t_max.saturating_sub(self.warmup_epochs).max(1);
                let t = f64::from((e - self.warmup_epochs).min(period)) / f64::from(period);
                self.min_lr
                    + (self.base_lr - self.min_lr) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
            }
            SchedulerKind::Step => self.base_lr * self.gamma.powi((e / self.step_size) as i32),
            SchedulerKind::Multistep => {
                let passed = self.milestones.iter().filter(|&&m| m <= e).count();
                self.base_lr * self.gamma.powi(passed as i32)
            }
        })
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
            SchedulerKind::Cosine | SchedulerKind::Step | SchedulerKind::Multistep => {
                if let Some(lr) = self.closed_form(e) {
                    self.lr = lr;
                }
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

    /// Reference values: PyTorch 2.15.0's schedulers, printed by
    ///
    /// ```python
    /// import torch; M = torch.optim.lr_scheduler
    /// def run(make, epochs, lr):
    ///     p = torch.nn.Parameter(torch.zeros(1)); opt = torch.optim.SGD([p], lr=lr)
    ///     s = make(opt); out = []
    ///     for _ in range(epochs):
    ///         out.append(opt.param_groups[0]["lr"]); opt.step(); s.step()
    ///     return out
    /// run(lambda o: M.MultiStepLR(o, milestones=[3, 5], gamma=0.1), 8, 0.1)
    /// run(lambda o: M.SequentialLR(o, [M.LinearLR(o, start_factor=0.1, total_iters=3),
    ///     M.CosineAnnealingLR(o, T_max=7, eta_min=0.001)], milestones=[3]), 10, 0.1)
    /// run(lambda o: M.SequentialLR(o, [M.LinearLR(o, total_iters=2),
    ///     M.CosineAnnealingLR(o, T_max=4)], milestones=[2]), 6, 0.05)
    /// ```
    ///
    /// (the rate each epoch runs with, i.e. ours before each `step`).
    fn rates(cfg: TrainConfig) -> Vec<f64> {
        let epochs = cfg.epochs;
        let mut s = LrScheduler::from_config(&cfg);
        (0..epochs)
            .map(|_| {
                let lr = s.lr();
                s.step(0.0);
                lr
            })
            .collect()
    }

    fn assert_close(got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (e, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-12 * w.abs(),
                "epoch {e}: {g} vs PyTorch {w}"
            );
        }
    }

    #[test]
    fn multistep_matches_pytorch() {
        let got = rates(TrainConfig {
            lr: 0.1,
            epochs: 8,
            scheduler: SchedulerKind::Multistep,
            milestones: vec![3, 5],
            step_gamma: 0.1,
            ..TrainConfig::default()
        });
        let want = [
            0.1,
            0.1,
            0.1,
            0.010000000000000002,
            0.010000000000000002,
            0.0010000000000000002,
            0.0010000000000000002,
            0.0010000000000000002,
        ];
        assert_close(&got, &want);
    }

    #[test]
    fn cosine_with_linear_warmup_matches_pytorch() {
        let got = rates(TrainConfig {
            lr: 0.1,
            epochs: 10,
            scheduler: SchedulerKind::Cosine,
            min_lr: 0.001,
            warmup_epochs: 3,
            warmup_start_factor: 0.1,
            ..TrainConfig::default()
        });
        let want = [
            0.010000000000000002,
            0.04,
            0.07,
            0.1,
            0.09509795896116975,
            0.08136274519200731,
            0.061514786230837566,
            0.03948521376916245,
            0.019637254807992697,
            0.005902041038830259,
        ];
        assert_close(&got, &want);
        let got = rates(TrainConfig {
            lr: 0.05,
            epochs: 6,
            scheduler: SchedulerKind::Cosine,
            warmup_epochs: 2,
            ..TrainConfig::default()
        });
        let want = [
            0.016666666666666666,
            0.03333333333333333,
            0.05,
            0.04267766952966369,
            0.025,
            0.0073223304703363135,
        ];
        assert_close(&got, &want);
    }

    #[test]
    fn checkpoints_without_the_new_fields_still_load() {
        // a scheduler state saved before multistep and warm-up existed
        let old = r#"{"kind":"cosine","base_lr":0.1,"lr":0.1,"epochs_done":0,"best":null,
            "num_bad_epochs":0,"patience":3,"factor":0.5,"threshold":0.0001,"min_lr":0.0,
            "t_max":4,"step_size":10,"gamma":0.1}"#;
        let mut s: LrScheduler = serde_json::from_str(old).unwrap();
        assert!(s.milestones.is_empty());
        assert_eq!(s.warmup_epochs, 0);
        assert!(
            (s.step(0.0) - 0.1 * (1.0 + (std::f64::consts::PI / 4.0).cos()) / 2.0).abs() < 1e-15
        );
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
