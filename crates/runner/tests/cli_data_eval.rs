//! `ablate data info`, `ablate data export` and `ablate eval` run end to end with the built
//! binary: counts, the CIFAR-10 binary export read back, corrupt files named in the error, and
//! a trained trial's weights evaluated to the same accuracy the trial recorded.

mod sweep_common;

use std::path::Path;
use std::process::Output;

use sweep_common::{ablate, explain};

fn run(dir: &Path, args: &[&str]) -> Output {
    ablate()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run ablate")
}

fn stdout_json(out: &Output) -> serde_json::Value {
    assert_eq!(out.status.code(), Some(0), "{}", explain(out));
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

/// `ablate data export synthetic --format cifar-bin bin` in `d`, which must succeed.
fn export_synthetic(d: &Path) {
    let out = run(
        d,
        &[
            "data",
            "export",
            "synthetic",
            "--format",
            "cifar-bin",
            "bin",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn export_to_cifar_bin_reads_back_with_the_same_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let original = stdout_json(&run(d, &["data", "info", "synthetic", "--json"]));
    assert_eq!(original["classes"].as_array().unwrap().len(), 10);
    assert_eq!(
        (original["height"].as_u64(), original["width"].as_u64()),
        (Some(32), Some(32))
    );

    export_synthetic(d);
    for f in [
        "data_batch_1.bin",
        "data_batch_5.bin",
        "test_batch.bin",
        "batches.meta.txt",
    ] {
        assert!(d.join("bin").join(f).is_file(), "{f} written");
    }
    let exported = stdout_json(&run(d, &["data", "info", "bin", "--json"]));
    assert_eq!(exported["classes"], original["classes"]);
    for (a, b) in exported["splits"]
        .as_array()
        .unwrap()
        .iter()
        .zip(original["splits"].as_array().unwrap())
    {
        assert_eq!(a["split"], b["split"]);
        assert_eq!(a["count"], b["count"]);
        assert_eq!(a["per_class"], b["per_class"]);
        // The same pixels give the same statistics.
        assert_eq!(a["mean"], b["mean"]);
        assert_eq!(a["std"], b["std"]);
    }

    // Text output names the splits and classes.
    let text = run(d, &["data", "info", "bin"]);
    assert_eq!(text.status.code(), Some(0), "{}", explain(&text));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("train") && text.contains("test"), "{text}");
}

#[test]
fn corrupt_and_missing_sources_name_the_file_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    export_synthetic(d);
    // A truncated batch file: the record size no longer divides the length.
    let f = d.join("bin/data_batch_2.bin");
    let len = std::fs::metadata(&f).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let out = run(d, &["data", "info", "bin"]);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let e = stderr(&out);
    assert!(e.starts_with("error: "), "{e}");
    assert!(e.contains("data_batch_2.bin"), "names the file: {e}");
    assert!(!e.contains("panicked"), "{e}");

    let out = run(d, &["data", "info", "no/such/folder"]);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    assert!(
        stderr(&out).contains("`no/such/folder` does not exist"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn eval_of_a_trained_trial_agrees_with_its_recorded_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // One short trial on the default synthetic dataset, which `--data synthetic` also loads.
    std::fs::write(
        d.join("exp.toml"),
        "name = \"evaltest\"\nseeds = [3]\n\n[data]\ndataset = \"synthetic\"\naugment = []\n\n\
         [train]\nepochs = 1\nbatch_size = 16\nmax_steps_per_epoch = 6\nscheduler = \"none\"\n\n\
         [model]\nattention = \"se\"\nreduction = 8\n",
    )
    .unwrap();
    let out = run(d, &["sweep", "exp.toml", "--out", "results", "--no-report"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let trials: Vec<_> = std::fs::read_dir(d.join("results/evaltest/trials"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(trials.len(), 1);
    let final_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(trials[0].join("final.json")).unwrap()).unwrap();
    let weights = trials[0].join("model.safetensors");
    let weights = weights.to_str().unwrap();
    // `ablate eval --weights <the trial's weights> --model MODEL --data synthetic EXTRA...`
    let eval = |model: &str, extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--weights",
            weights,
            "--model",
            model,
            "--data",
            "synthetic",
        ];
        args.extend_from_slice(extra);
        run(d, &args)
    };

    let out = eval("attention=se,reduction=8", &["--json"]);
    let v = stdout_json(&out);
    assert_eq!(v["images"], 1000);
    assert_eq!(v["per_class"].as_array().unwrap().len(), 10);
    let recorded = final_json["final_test_acc"].as_f64().unwrap();
    assert!(
        (v["accuracy"].as_f64().unwrap() - recorded).abs() < 1e-9,
        "eval {} vs trial {recorded}",
        v["accuracy"]
    );
    assert!(
        (v["loss"].as_f64().unwrap() - final_json["final_test_loss"].as_f64().unwrap()).abs()
            < 1e-4
    );
    let per_class_correct: u64 = v["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["correct"].as_u64().unwrap())
        .sum();
    assert_eq!(per_class_correct, v["correct"].as_u64().unwrap());

    // Per-image predictions: one valid class index per test image.
    let out = eval("attention=se,reduction=8", &["--predictions", "pred.txt"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let pred = std::fs::read_to_string(d.join("pred.txt")).unwrap();
    let pred: Vec<u32> = pred.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(pred.len(), 1000);
    assert!(pred.iter().all(|&p| p < 10));

    // The text form has a line per class.
    let out = eval("attention=se,reduction=8", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("accuracy") && text.lines().count() >= 16,
        "{text}"
    );

    // Weights of another model: an error naming the file, not a panic.
    let out = eval("attention=none", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let e = stderr(&out);
    assert!(e.contains("model.safetensors"), "{e}");
    assert!(!e.contains("panicked"), "{e}");

    // A misspelled model key.
    let out = eval("atention=se", &[]);
    assert_ne!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(stderr(&out).contains("atention"), "{}", stderr(&out));
}
