//! The shared golden files against our model and against the in-repo fixtures. Needs
//! `../shared/golden` next to the workspace, so every test here is `#[ignore]`d; CI (which has
//! it) runs them with `cargo test -p ablate-model --test golden_shared -- --ignored`.
//!
//! Reference: `../shared/golden/golden_{baseline,se_r16,se_r4}.safetensors`, written by
//! `../shared/reference/torch_seed.py golden` (format in `../shared/README.md`: weights as
//! `param.*`, the input, eval and train logits, loss, every gradient, running statistics).
//! `scripts/golden.py check-shared` checks the other direction with PyTorch: its models
//! reproduce these files to 2e-6, and its recipe draws the same baseline weights.
//!
//! The two sources agree when (1) our model matches each shared file under every kernel choice,
//! as it matches each in-repo fixture (`golden.rs`), and (2) the in-repo baseline fixture's
//! regenerated weights and BatchNorm state (`torch.manual_seed(1234)`, construction,
//! BatchNorm draws) are bit for bit the shared baseline's.

mod common;

use ablate_model::ModelSpec;
use ablate_model::Net;
use candle_core::Device;
use common::golden::{
    build, check_step, error_chain, f64s, for_every_kernel, load, shared_golden_dir, Case,
    Reference,
};

fn shared(file: &str) -> Reference {
    let path = shared_golden_dir().join(file);
    assert!(
        path.is_file(),
        "{} is missing: these tests need ../shared/golden next to the workspace",
        path.display()
    );
    Reference::read(&path).unwrap_or_else(|e| panic!("{}", error_chain(&e)))
}

fn check_shared(file: &str, spec: &str) {
    let reference = shared(file);
    let spec: ModelSpec = spec.parse().unwrap();
    for_every_kernel(file, |kernels| {
        let mut net = Net::new(&spec, 10, &Device::Cpu, 0).unwrap();
        net.load_state_dict(&reference.with_prefix("param."))
            .unwrap_or_else(|e| panic!("loading {file}: {e}"));
        net.set_kernels(kernels);
        let case = Case {
            net,
            input: reference.get("input").unwrap().clone(),
            target: reference
                .get("target")
                .unwrap()
                .to_dtype(candle_core::DType::U32)
                .unwrap(),
        };
        check_step(&reference, &case, kernels)
    });
}

#[test]
#[ignore = "needs ../shared/golden"]
fn shared_golden_baseline() {
    check_shared("golden_baseline.safetensors", "attention=none");
}

#[test]
#[ignore = "needs ../shared/golden"]
fn shared_golden_se_r16() {
    check_shared("golden_se_r16.safetensors", "attention=se,reduction=16");
}

#[test]
#[ignore = "needs ../shared/golden"]
fn shared_golden_se_r4() {
    check_shared("golden_se_r4.safetensors", "attention=se,reduction=4");
}

#[test]
#[ignore = "needs ../shared/golden"]
fn in_repo_baseline_fixture_draws_the_shared_baseline_weights() {
    let reference = shared("golden_baseline.safetensors");
    let params = reference.with_prefix("param.");
    let fx = load("baseline");
    assert_eq!(fx.seed, 1234, "torch_seed.py golden seeds 1234");
    let case = build(&fx, ablate_model::ops::kernels::Kernels::Fast);
    let state = case.net.state_dict().unwrap();
    for (name, ours) in &state {
        let theirs = params
            .get(name)
            .unwrap_or_else(|| panic!("the shared baseline has no `param.{name}`"));
        assert!(
            f64s(ours) == f64s(theirs),
            "`{name}`: the in-repo baseline fixture's value is not the shared file's"
        );
    }
    println!(
        "{} tensors of the in-repo baseline equal the shared baseline's bit for bit",
        state.len()
    );
}
