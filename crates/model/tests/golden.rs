//! Golden tests against PyTorch: `../shared/golden/golden_*.safetensors`, made by
//! `../shared/reference/torch_seed.py golden` (format in `../shared/README.md`).
//!
//! For each file: load `param.*` into our `Net` by name, then compare to PyTorch's
//! eval-mode logits, train-mode logits and cross-entropy loss (dropout disabled), the gradient
//! of that loss for every parameter, and the BatchNorm running statistics after that one
//! train-mode forward. The metric is `max|ours - ref| / max|ref|` per tensor, printed for every
//! tensor, with a tolerance of 1e-4.
//!
//! [`check_golden_file`] works for any file of that format; the model spec is given by the
//! caller. When `../shared/golden` is missing, the tests print why and pass.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ablate_model::layers::DropoutMasks;
use ablate_model::{Mode, ModelSpec, Net};
use candle_core::{DType, Device, Tensor};

const TOLERANCE: f64 = 1e-4;

fn golden_dir() -> PathBuf {
    // crates/model -> project root -> ../shared/golden
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/golden")
}

/// `max|a - b| / max|b|` over all elements (`max|a - b|` when the reference is all zero).
fn rel_err(ours: &Tensor, reference: &Tensor) -> f64 {
    let a = ours
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let b = reference
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    assert_eq!(a.len(), b.len(), "element count differs");
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.abs()).fold(0.0, f64::max);
    if a.iter().any(|x| !x.is_finite()) {
        return f64::INFINITY;
    }
    if scale > 0.0 {
        diff / scale
    } else {
        diff
    }
}

fn max_abs(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// Compares one golden file against `Net` built from `spec`; returns the list of
/// (tensor, relative error) and panics with all failures listed.
pub fn check_golden_file(path: &Path, spec: &ModelSpec) -> Vec<(String, f64)> {
    let dev = Device::Cpu;
    let file: HashMap<String, Tensor> = candle_core::safetensors::load(path, &dev)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let get = |k: &str| -> &Tensor {
        file.get(k)
            .unwrap_or_else(|| panic!("{} has no tensor `{k}`", path.display()))
    };
    let params: HashMap<String, Tensor> = file
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("param.").map(|n| (n.to_string(), v.clone())))
        .collect();
    let num_classes = get("eval.logits").dim(1).unwrap();
    let mut net = Net::new(spec, num_classes, &dev, 0).unwrap();
    net.load_state_dict(&params)
        .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
    let input = get("input").to_dtype(DType::F32).unwrap();
    let target = get("target").to_dtype(DType::U32).unwrap();

    let mut results: Vec<(String, f64)> = Vec::new();

    let eval = net.forward(&input, Mode::Eval).unwrap();
    results.push(("eval.logits".into(), rel_err(&eval, get("eval.logits"))));

    let logits = net
        .forward(
            &input,
            Mode::Train {
                dropout: DropoutMasks::Off,
            },
        )
        .unwrap();
    results.push(("train.logits".into(), rel_err(&logits, get("train.logits"))));
    let loss = candle_nn::loss::cross_entropy(&logits, &target).unwrap();
    results.push((
        "train.loss".into(),
        rel_err(&loss.reshape(1).unwrap(), get("train.loss")),
    ));

    let grads = loss.backward().unwrap();
    let trainable = net.trainable();
    let mut ref_grads: Vec<&String> = file.keys().filter(|k| k.starts_with("grad.")).collect();
    ref_grads.sort();
    assert_eq!(
        ref_grads.len(),
        trainable.len(),
        "the file has {} gradients, the model {} parameters",
        ref_grads.len(),
        trainable.len()
    );
    for (name, var) in &trainable {
        let g = grads
            .get(var)
            .unwrap_or_else(|| panic!("no gradient for `{name}`"));
        let key = format!("grad.{name}");
        // A conv bias followed by train-mode BatchNorm has an exactly zero
        // gradient (BN subtracts the batch mean); PyTorch's values are ~1e-8
        // rounding noise, so a relative error against them means nothing.
        // Measure those against the scale of the same layer's weight gradient.
        let err = match name.strip_suffix(".bias").filter(|l| l.starts_with("conv")) {
            Some(layer) => {
                let scale = max_abs(get(&format!("grad.{layer}.weight")));
                max_abs(&(g - get(&key)).unwrap()) / scale
            }
            None => rel_err(g, get(&key)),
        };
        results.push((key.clone(), err));
    }

    for (name, t) in net.buffers() {
        let key = format!("after_train_step.{name}");
        results.push((key.clone(), rel_err(&t, get(&key))));
    }

    let file_name = path.file_name().unwrap().to_string_lossy();
    let mut failures = Vec::new();
    for (name, err) in &results {
        let ok = *err <= TOLERANCE;
        println!(
            "{file_name} {name:<40} rel err {err:.3e} {}",
            if ok { "ok" } else { "FAIL" }
        );
        if !ok {
            failures.push(format!("{name}: {err:.3e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{file_name}: {} tensors above {TOLERANCE:e}: {}",
        failures.len(),
        failures.join(", ")
    );
    results
}

fn run(file: &str, spec: &str) {
    let path = golden_dir().join(file);
    if !path.exists() {
        println!(
            "skipped: {} is missing (the shared golden files are not on this machine)",
            path.display()
        );
        return;
    }
    let spec: ModelSpec = spec.parse().unwrap();
    let results = check_golden_file(&path, &spec);
    // eval + train logits + loss + running stats + at least the baseline's 14 gradients
    assert!(results.len() >= 3 + 6 + 14, "{} comparisons", results.len());
}

#[test]
fn golden_baseline() {
    run("golden_baseline.safetensors", "attention=none");
}

#[test]
fn golden_se_r16() {
    run("golden_se_r16.safetensors", "attention=se,reduction=16");
}

#[test]
fn golden_se_r4() {
    run("golden_se_r4.safetensors", "attention=se,reduction=4");
}

#[test]
fn golden_rejects_the_wrong_spec() {
    // the SE file's extra `ca*` tensors must not load into the baseline model
    let path = golden_dir().join("golden_se_r16.safetensors");
    if !path.exists() {
        println!("skipped: {} is missing", path.display());
        return;
    }
    let file = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    let params: HashMap<String, Tensor> = file
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("param.").map(|n| (n.to_string(), v.clone())))
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
