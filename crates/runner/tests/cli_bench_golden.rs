//! `ablate golden` and `ablate bench` run end to end with the built binary: a repo fixture
//! checked on the CPU under each kernel choice, a `torch_seed.py`-format file with wrong
//! reference values reported out of tolerance (exit 3), missing or unusable input refused in
//! one line, and the benchmark's table and JSON.

mod sweep_common;

use std::path::{Path, PathBuf};
use std::process::Output;

use ablate_model::{ModelSpec, Net};
use candle_core::{DType, Device, Tensor};
use sweep_common::{ablate, explain};

fn run(args: &[&str]) -> Output {
    ablate().args(args).output().expect("run ablate")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures")
        .join(format!("golden_{name}.safetensors"))
}

#[test]
fn golden_checks_a_fixture_under_every_kernel_choice() {
    let file = fixture("se_r16");
    let file = file.to_str().unwrap();
    for kernels in ["fast", "generic", "reference"] {
        let out = run(&["golden", file, "--kernels", kernels]);
        assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!(
                "62 comparisons on cpu with {kernels} kernels, all within tolerance"
            )),
            "{text}"
        );
    }
    let out = run(&["golden", file, "--json", "--top", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["worst"].as_array().unwrap().len(), 2);
    assert!(v["max_margin"].as_f64().unwrap() < 1.0);
}

/// A file in `torch_seed.py golden`'s format (weights and input inside) whose reference logits
/// and loss are wrong: the check runs and reports them.
#[test]
fn golden_reports_values_out_of_tolerance_and_refuses_unusable_input() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::Cpu;
    let spec: ModelSpec = "attention=se,reduction=16,dropout=0".parse().unwrap();
    let net = Net::new(&spec, 10, &dev, 5).unwrap();
    let mut tensors: Vec<(String, Tensor)> = net
        .state_dict()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (format!("param.{k}"), v))
        .collect();
    let input = Tensor::randn(0f32, 1f32, (2, 3, 32, 32), &dev).unwrap();
    tensors.push(("input".into(), input));
    tensors.push(("target".into(), Tensor::new(&[1i64, 7], &dev).unwrap()));
    for key in ["eval.logits", "train.logits"] {
        tensors.push((
            key.into(),
            Tensor::zeros((2, 10), DType::F32, &dev).unwrap(),
        ));
    }
    tensors.push(("train.loss".into(), Tensor::new(&[0.5f32], &dev).unwrap()));
    let path = dir.path().join("wrong.safetensors");
    let map: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
    candle_core::safetensors::save(&map, &path).unwrap();
    let file = path.to_str().unwrap();

    // Without --model: it cannot know the model.
    let out = run(&["golden", file]);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("give it with --model"));
    // The wrong model: the weights do not fit.
    let out = run(&["golden", file, "--model", "attention=none"]);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("do not fit `attention=none`"));
    // The right model, wrong reference values (and no gradients in the file): named.
    let out = run(&["golden", file, "--model", "attention=se,reduction=16"]);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no tensor `grad.conv1.weight`"),
        "{}",
        explain(&out)
    );
    let out = run(&["golden", "/nonexistent/golden.safetensors"]);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("cannot read /nonexistent/golden.safetensors"));
}

#[test]
fn golden_exits_3_when_a_value_is_out_of_tolerance() {
    // A torch_seed.py-format file whose logits, loss and statistics are the model's own but
    // whose gradients are all zero: every gradient comparison fails, the others pass.
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::Cpu;
    let spec: ModelSpec = "attention=none,dropout=0".parse().unwrap();
    let net = Net::new(&spec, 10, &dev, 5).unwrap();
    let input = Tensor::randn(0f32, 1f32, (2, 3, 32, 32), &dev).unwrap();
    let target = Tensor::new(&[1u32, 7], &dev).unwrap();
    let mut map: std::collections::HashMap<String, Tensor> = std::collections::HashMap::new();
    for (k, v) in net.state_dict().unwrap() {
        map.insert(format!("param.{k}"), v);
    }
    for (k, var) in net.trainable() {
        map.insert(format!("grad.{k}"), var.as_tensor().zeros_like().unwrap());
    }
    let eval = net.forward(&input, ablate_model::Mode::Eval).unwrap();
    map.insert("eval.logits".into(), eval);
    for (k, v) in net.buffers() {
        map.insert(format!("after_train_step.{k}"), v);
    }
    let train = net
        .forward(
            &input,
            ablate_model::Mode::Train {
                dropout: ablate_model::DropoutMasks::Off,
            },
        )
        .unwrap();
    let loss = ablate_model::train::cross_entropy(&train, &target, 0.0).unwrap();
    map.insert("train.logits".into(), train.detach());
    map.insert("train.loss".into(), loss.reshape(1).unwrap().detach());
    map.insert("input".into(), input);
    map.insert("target".into(), target.to_dtype(DType::I64).unwrap());
    let path = dir.path().join("zero_grads.safetensors");
    candle_core::safetensors::save(&map, &path).unwrap();
    let out = run(&[
        "golden",
        path.to_str().unwrap(),
        "--model",
        "attention=none",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("OUT OF TOLERANCE") && text.contains("grad.conv1.weight"),
        "{text}"
    );
}

#[test]
fn bench_prints_a_table_and_json_and_refuses_bad_options() {
    let out = run(&["bench", "--batch", "4", "--steps", "1", "--warmup", "0"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("| baseline | 4 | 1147914 |"), "{text}");
    assert!(text.contains("| se_r16 | 4 |"), "{text}");
    let out = run(&[
        "bench",
        "--batch",
        "2,4",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--json",
        "--kernels",
        "generic",
        "--model",
        "attention=eca",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["batch"], 4);
    assert_eq!(lines[0]["kernels"], "generic");
    assert!(lines[0]["train_img_s"].as_f64().unwrap() > 0.0);
    // One phase alone: the other is not measured, `-` in the table, null in JSON.
    let one = [
        "bench", "--batch", "2", "--steps", "1", "--warmup", "0", "--phase",
    ];
    let out = run(&[&one[..], &["infer"]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("| baseline | 2 | 1147914 | - | "), "{text}");
    let out = run(&[&one[..], &["train", "--json"]].concat());
    let line: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert!(line["train_img_s"].as_f64().unwrap() > 0.0 && line["infer_img_s"].is_null());
    let out = run(&["bench", "--phase", "eval"]);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid value 'eval' for '--phase"), "{err}");
    for (args, want) in [
        (
            vec!["bench", "--kernels", "slow"],
            "invalid --kernels `slow`",
        ),
        (
            vec!["bench", "--model", "attention=mlp"],
            "invalid --model `attention=mlp`",
        ),
        (vec!["bench", "--device", "tpu:0"], "unknown device `tpu:0`"),
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(want),
            "{}",
            explain(&out)
        );
    }
}
