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
//! to 2%, the running statistics to 1e-4 of their scale (`ablate_model::golden::compare_adam`,
//! also behind `ablate golden`).

#[macro_use]
mod common;

use ablate_model::golden::compare_adam;
use candle_core::Device;
use common::golden::{error_chain, for_every_kernel, load, report};

/// One fixture under every kernel choice.
fn check(name: &str) {
    let fx = load(name);
    for_every_kernel(&format!("three Adam steps, golden_{name}"), |kernels| {
        let results = compare_adam(&fx, kernels, &Device::Cpu)
            .unwrap_or_else(|e| panic!("{}", error_chain(&e)));
        report(
            &format!("{} [{}]", fx.reference.label, kernels.name()),
            &results,
        )
    });
}

test_every_fixture!(check);
