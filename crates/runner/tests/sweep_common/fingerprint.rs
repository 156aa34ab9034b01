//! What must not change when a sweep is interrupted: per trial, the epoch metrics, the step
//! losses, the final metrics and the final weights, as bits; and one Parquet row per (trial,
//! epoch) and (trial, step). Shared by the soak tests.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use super::read_parquet;

/// Epochs and steps per epoch of every trial.
pub struct Shape {
    pub epochs: u64,
    pub steps: u64,
}

/// Per trial id: its epoch records (metrics only, no timings), its step losses, its final
/// metrics and its final weights, all as bits.
pub type Fingerprint =
    BTreeMap<String, (Vec<[u64; 5]>, Vec<u32>, [u64; 3], Vec<(String, Vec<u32>)>)>;

pub fn fingerprint(results: &Path, s: &Shape) -> Fingerprint {
    let mut out = Fingerprint::new();
    for e in std::fs::read_dir(results.join("trials")).expect("trials") {
        let dir: PathBuf = e.expect("entry").path();
        let id = dir.file_name().unwrap().to_string_lossy().into_owned();
        let td = super::TrialDir {
            dir: dir.clone(),
            seed: 0,
            variant: String::new(),
        };
        assert_eq!(td.status()["status"], "completed", "{}", dir.display());
        // Exactly one record per epoch and per step, in order, in the trial folder.
        td.assert_complete_records(s.epochs, s.steps);
        let bits = |v: &serde_json::Value| v.as_f64().expect("number").to_bits();
        let epochs = td
            .jsonl("epochs.jsonl")
            .iter()
            .map(|r| {
                [
                    bits(&r["train_loss"]),
                    bits(&r["train_acc"]),
                    bits(&r["test_loss"]),
                    bits(&r["test_acc"]),
                    bits(&r["lr"]),
                ]
            })
            .collect();
        let steps = td
            .jsonl("iterations.jsonl")
            .iter()
            .map(|r| (r["loss"].as_f64().expect("loss") as f32).to_bits())
            .collect();
        let fin: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("final.json")).unwrap())
                .unwrap();
        let fin = [
            bits(&fin["final_test_acc"]),
            bits(&fin["final_test_loss"]),
            bits(&fin["best_test_acc"]),
        ];
        let tensors = candle_core::safetensors::load(
            dir.join("model.safetensors"),
            &candle_core::Device::Cpu,
        )
        .expect("model.safetensors");
        let mut weights: Vec<(String, Vec<u32>)> = tensors
            .into_iter()
            .map(|(k, t)| {
                let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                (k, v.into_iter().map(f32::to_bits).collect())
            })
            .collect();
        weights.sort();
        out.insert(id, (epochs, steps, fin, weights));
    }
    out
}

/// One row per (trial, epoch) and per (trial, step) in the Parquet files.
pub fn assert_parquet_rows(results: &Path, trials: usize, s: &Shape) {
    let e = read_parquet(&results.join("epochs.parquet"));
    assert_eq!(e.height(), trials * s.epochs as usize);
    let ids = e.column("trial_id").unwrap().str().unwrap();
    let ep = e.column("epoch").unwrap().u32().unwrap();
    let keys: HashSet<(String, u32)> = ids
        .iter()
        .zip(ep.iter())
        .map(|(i, e)| (i.unwrap().to_string(), e.unwrap()))
        .collect();
    assert_eq!(keys.len(), e.height(), "duplicated (trial, epoch) rows");
    let it = read_parquet(&results.join("iterations.parquet"));
    assert_eq!(it.height(), trials * (s.epochs * s.steps) as usize);
    let ids = it.column("trial_id").unwrap().str().unwrap();
    let n = it.column("iteration").unwrap().u64().unwrap();
    let keys: HashSet<(String, u64)> = ids
        .iter()
        .zip(n.iter())
        .map(|(i, n)| (i.unwrap().to_string(), n.unwrap()))
        .collect();
    assert_eq!(keys.len(), it.height(), "duplicated (trial, step) rows");
    let t = read_parquet(&results.join("trials.parquet"));
    assert_eq!(t.height(), trials);
    let st = t.column("status").unwrap().str().unwrap();
    assert!(st.iter().all(|s| s == Some("completed")));
}

/// Every trial of `want` has the same fingerprint in `got`.
pub fn assert_same(want: &Fingerprint, got: &Fingerprint, context: &str) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{context}"
    );
    for (id, w) in want {
        let g = &got[id];
        assert_eq!(g.0, w.0, "trial {id}: epoch metrics differ ({context})");
        assert_eq!(g.1, w.1, "trial {id}: step losses differ ({context})");
        assert_eq!(g.2, w.2, "trial {id}: final metrics differ ({context})");
        assert!(g.3 == w.3, "trial {id}: final weights differ ({context})");
    }
}
