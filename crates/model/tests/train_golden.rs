//! Three Adam steps of `Trainer::step` on the golden batch against PyTorch, for every model
//! variant and every kernel choice.
//!
//! Reference: the `adam.*` tensors of `tests/fixtures/golden_<name>.safetensors`, written by
//! PyTorch 2.15.0 (CPU, one thread) with
//!
//! ```sh
//! /work/venv-torch/bin/python scripts/golden.py write
//! ```
//!
//! which does, from the fixture's initial state (weights, BatchNorm state, batch; see
//! `golden.rs` and docs/parity.md):
//!
//! ```python
//! model.train()  # dropout off
//! opt = torch.optim.Adam(model.parameters(), lr=1e-4)  # the fixture's `adam_lr`
//! for _ in range(3):
//!     opt.zero_grad(); loss = F.cross_entropy(model(x), y); loss.backward(); opt.step()
//! # recorded: each step's loss; per parameter ||p3 - p0|| and sum(p3 - p0) in float64;
//! # the BatchNorm running statistics after the three forwards
//! ```
//!
//! (lr 1e-4 rather than the default 1e-3: on two images the loss would fall to about 0.01 by
//! the third step, where float32 PyTorch itself is up to 4e-5 from float64.) Checked for each
//! of `Kernels::ALL`: each step's loss to 1e-5 (relative), each parameter's update norm and sum
//! to 2%, the running statistics to 1e-4 of their scale.

#[macro_use]
mod common;

use ablate_model::ops::kernels::Kernels;
use ablate_model::train::{TrainConfig, Trainer};
use ablate_model::Net;
use common::golden::{conv_bias_is_noise, f64s, for_every_kernel, rel_err, Fixture};

const LOSS_TOLERANCE: f64 = 1e-5;
const UPDATE_TOLERANCE: f64 = 0.02;
const RUNNING_TOLERANCE: f64 = 1e-4;

/// The comparisons of one run: each printed as it is made, the failures kept.
struct Verdicts {
    label: String,
    failures: Vec<String>,
}

impl Verdicts {
    fn record(&mut self, what: String, ok: bool) {
        println!("{} {what} {}", self.label, if ok { "ok" } else { "FAIL" });
        if !ok {
            self.failures.push(what);
        }
    }
}

fn values(net: &Net) -> Vec<Vec<f32>> {
    net.trainable()
        .iter()
        .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
        .collect()
}

/// Whether parameter `name` is a conv bias whose reference gradient is rounding noise.
fn noise_bias(fx: &Fixture, name: &str) -> bool {
    name.strip_suffix(".bias")
        .filter(|layer| layer.starts_with("conv"))
        .is_some_and(|layer| conv_bias_is_noise(&fx.reference, layer))
}

/// The three steps under `kernels`: the failures, each printed with every comparison.
fn adam_steps(fx: &Fixture, kernels: Kernels) -> Vec<String> {
    let mut v = Verdicts {
        label: format!("{} [{}]", fx.reference.label, kernels.name()),
        failures: Vec::new(),
    };
    let case = fx.build(kernels);
    let net = &case.net;
    let p0 = values(net);
    let lr = fx.adam_lr;
    let cfg = TrainConfig {
        lr,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(net, &cfg, 0).unwrap();
    let want_losses = fx.reference.f64s("adam.loss");
    for (i, want) in want_losses.iter().enumerate() {
        let out = trainer.step(net, &case.input, &case.target).unwrap();
        let rel = (f64::from(out.loss) - want).abs() / want.abs();
        let what = format!(
            "step {}: loss {} (PyTorch {want}, rel {rel:.1e})",
            i + 1,
            out.loss
        );
        v.record(what, rel <= LOSS_TOLERANCE);
    }
    let steps = want_losses.len() as f64;
    check_updates(fx, net, &p0, steps * lr, &mut v);
    check_running(fx, net, steps * lr, &mut v);
    v.failures
}

/// Each parameter's total update against PyTorch's norm and sum. `bound` is the largest total
/// update of one element (`steps x lr`).
fn check_updates(fx: &Fixture, net: &Net, p0: &[Vec<f32>], bound: f64, v: &mut Verdicts) {
    for ((name, before), after) in net
        .trainable()
        .iter()
        .map(|(n, _)| n)
        .zip(p0)
        .zip(values(net))
    {
        let d: Vec<f64> = after
            .iter()
            .zip(before)
            .map(|(a, b)| f64::from(a - b))
            .collect();
        let norm = d.iter().map(|x| x * x).sum::<f64>().sqrt();
        let sum: f64 = d.iter().sum();
        let want = fx.reference.f64s(&format!("adam.delta.{name}"));
        let (wn, ws) = (want[0], want[1]);
        // A gradient of pure rounding noise (a conv bias before a train-mode BatchNorm) is
        // turned by Adam into updates of about +-lr per step in arbitrary directions, in
        // PyTorch as in ours: only the size of the update means something.
        if noise_bias(fx, name) {
            let most = bound * (d.len() as f64).sqrt() * 1.01;
            let what = format!("{name}: update norm {norm:.3e} <= {most:.3e} (noise gradient)");
            v.record(what, norm <= most);
            continue;
        }
        let what = format!(
            "{name}: update norm {norm:.6e} (PyTorch {wn:.6e}), sum {sum:.6e} (PyTorch {ws:.6e})"
        );
        let ok = (norm - wn).abs() <= UPDATE_TOLERANCE * wn
            && (sum - ws).abs() <= UPDATE_TOLERANCE * (ws.abs() + wn);
        v.record(what, ok);
    }
}

/// The running statistics after the steps. `bound` is the largest total update of one
/// parameter element (`steps x lr`).
fn check_running(fx: &Fixture, net: &Net, bound: f64, v: &mut Verdicts) {
    for (name, t) in net.buffers() {
        let want = fx.reference.f64s(&format!("adam.{name}"));
        // Running means include the conv biases, whose updates are noise where their gradient
        // is (above): momentum 0.1 times at most 2 x `bound` of bias difference per channel.
        let conv = name.replace("bn", "conv");
        let bias = conv.replace("running_mean", "bias");
        let slack = if name.ends_with("running_mean") && noise_bias(fx, &bias) {
            0.1 * 2.0 * bound
        } else {
            0.0
        };
        let scale = want.iter().map(|x| x.abs()).fold(0.0, f64::max);
        let err = rel_err(&f64s(&t), &want, 0.0);
        let what = format!("adam.{name}: rel err {err:.3e} (slack {slack:.0e})");
        v.record(what, err * scale <= RUNNING_TOLERANCE * scale + slack);
    }
}

/// One fixture under every kernel choice.
fn check(name: &str) {
    let fx = Fixture::load(name);
    for_every_kernel(&format!("three Adam steps, golden_{name}"), |kernels| {
        adam_steps(&fx, kernels)
    });
}

test_every_fixture!(check);
