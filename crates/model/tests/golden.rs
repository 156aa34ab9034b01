//! Golden tests against PyTorch, for every model variant and every kernel choice.
//!
//! Reference: `tests/fixtures/golden_<name>.safetensors`, written by PyTorch 2.15.0 (CPU, one
//! thread) with
//!
//! ```sh
//! /work/venv-torch/bin/python scripts/golden.py write
//! ```
//!
//! (`scripts/golden.py` holds the PyTorch models and the list of variants: the seed CNN, SE at
//! every placement, squeeze, gate and bias option, ECA, spatial attention and CBAM;
//! docs/parity.md says how the fixtures are made and kept small.) For each fixture and each of
//! `Kernels::ALL` (fast, generic, reference): rebuild the model, input and targets PyTorch drew
//! (`ablate_model::golden::Fixture::build`, checked against fingerprints), then compare eval-mode
//! logits, train-mode logits and cross-entropy loss (dropout off), the gradient of that loss
//! for every parameter, and the BatchNorm running statistics after that train-mode forward.
//! The metric is `max|ours - ref| / max|ref|` per tensor, printed for every tensor, with a
//! tolerance of 1e-4. The three-step Adam trajectories in the same files are checked by
//! `train_golden.rs`; `golden_shared.rs` checks `../shared/golden` (ignored without it).

#[macro_use]
mod common;

use std::collections::HashMap;

use ablate_model::{ModelSpec, Net};
use candle_core::{Device, Tensor};
use common::golden::{build, check_step, for_every_kernel, load};

/// One fixture under every kernel choice.
fn check(name: &str) {
    let fx = load(name);
    for_every_kernel(&format!("golden_{name}"), |kernels| {
        let case = build(&fx, kernels);
        check_step(&fx.reference, &case, kernels)
    });
}

test_every_fixture!(check);

#[test]
fn weights_of_another_variant_are_rejected_by_name() {
    // SE r=16's `ca*` tensors must not load into the baseline, nor into SE r=4 (other shapes).
    let se16: ModelSpec = "attention=se,reduction=16".parse().unwrap();
    let params: HashMap<String, Tensor> = Net::new(&se16, 10, &Device::Cpu, 0)
        .unwrap()
        .state_dict()
        .unwrap()
        .into_iter()
        .collect();
    let mut base = Net::new(&ModelSpec::default(), 10, &Device::Cpu, 0).unwrap();
    let e = base.load_state_dict(&params).unwrap_err().to_string();
    assert!(e.starts_with("unexpected tensor `ca1.fc.0.weight`"), "{e}");
    let spec: ModelSpec = "attention=se,reduction=4".parse().unwrap();
    let mut r4 = Net::new(&spec, 10, &Device::Cpu, 0).unwrap();
    let e = r4.load_state_dict(&params).unwrap_err().to_string();
    assert!(
        e.contains("ca1.fc.0.weight") && e.contains("[2, 32]"),
        "{e}"
    );
}
