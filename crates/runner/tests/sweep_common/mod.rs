//! Helpers of the end-to-end sweep tests: tiny synthetic experiments run with the built binary
//! in a temporary folder.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use polars::prelude::*;

pub mod fingerprint;

/// The `ablate` binary under test.
pub fn ablate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ablate"));
    // Hooks must come only from the test itself.
    for (k, _) in std::env::vars() {
        if k.starts_with("ABLATE_TEST_") {
            c.env_remove(k);
        }
    }
    c.env("RAYON_NUM_THREADS", "1");
    c
}

/// A temporary folder holding an experiment file `exp.toml`.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub name: String,
}

impl Sandbox {
    /// An experiment `name` on synthetic data: `variants` grids (the baseline, then SE), the given
    /// seeds, `epochs` epochs of `steps` steps of batch 8.
    pub fn new(name: &str, seeds: &[u64], se_variant: bool, epochs: u32, steps: usize) -> Self {
        let grid = if se_variant {
            "[[grid]]\n\n[[grid]]\n\"model.attention\" = [\"se\"]\n\"model.reduction\" = [8]\n"
        } else {
            "[[grid]]\n"
        };
        Self::with_grid(name, seeds, grid, epochs, steps)
    }

    /// Like [`Sandbox::new`], with the `[[grid]]` entries given as TOML text.
    pub fn with_grid(name: &str, seeds: &[u64], grid: &str, epochs: u32, steps: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let seeds = seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!(
            "name = \"{name}\"\n\
             description = \"runner test\"\n\
             seeds = [{seeds}]\n\n\
             [data]\n\
             dataset = \"synthetic\"\n\
             synthetic_train = {train}\n\
             synthetic_test = 20\n\
             augment = []\n\n\
             [train]\n\
             epochs = {epochs}\n\
             batch_size = 8\n\
             eval_batch_size = 20\n\n\
             [model]\n\
             attention = \"none\"\n\n\
             {grid}",
            train = steps * 8,
        );
        std::fs::write(dir.path().join("exp.toml"), text).expect("write experiment");
        Self {
            dir,
            name: name.to_string(),
        }
    }

    /// Evaluates on `n` synthetic test images instead of 20 (so that seeds differ in their
    /// accuracy).
    pub fn set_test_images(&self, n: usize) {
        let path = self.dir.path().join("exp.toml");
        let text = std::fs::read_to_string(&path)
            .expect("read experiment")
            .replace("synthetic_test = 20", &format!("synthetic_test = {n}"))
            .replace("eval_batch_size = 20", &format!("eval_batch_size = {n}"));
        std::fs::write(&path, text).expect("write experiment");
    }

    /// `ablate sweep exp.toml --out results --no-report [extra...]` with `env`, run in the sandbox.
    pub fn sweep(&self, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.sweep_command(extra, env);
        c.output().expect("run ablate sweep")
    }

    /// The sweep command, not started.
    pub fn sweep_command(&self, extra: &[&str], env: &[(&str, &str)]) -> Command {
        let mut c = ablate();
        c.current_dir(self.dir.path())
            .args(["sweep", "exp.toml", "--out", "results", "--no-report"])
            .args(extra);
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    /// `results/<name>`.
    pub fn results(&self) -> PathBuf {
        self.dir.path().join("results").join(&self.name)
    }

    /// Trial folders by seed and variant label.
    pub fn trials(&self) -> Vec<TrialDir> {
        Self::trial_dirs(&self.results())
    }

    /// The trial folders of the sweep folder `results`, by seed and variant label.
    pub fn trial_dirs(results: &Path) -> Vec<TrialDir> {
        let mut out = Vec::new();
        let trials = results.join("trials");
        for e in std::fs::read_dir(&trials).expect("trials folder") {
            let dir = e.expect("entry").path();
            let text = std::fs::read_to_string(dir.join("config.toml")).expect("config.toml");
            let v: toml::Table = toml::from_str(&text).expect("config toml");
            out.push(TrialDir {
                seed: v["seed"].as_integer().expect("seed") as u64,
                variant: v["variant"].as_str().expect("variant").to_string(),
                dir,
            });
        }
        out.sort_by(|a, b| (a.seed, &a.variant).cmp(&(b.seed, &b.variant)));
        out
    }
}

/// One trial folder.
#[derive(Debug, Clone)]
pub struct TrialDir {
    pub dir: PathBuf,
    pub seed: u64,
    pub variant: String,
}

impl TrialDir {
    pub fn status(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.dir.join("status.json")).expect("status.json");
        serde_json::from_str(&text).expect("status json")
    }

    pub fn jsonl(&self, file: &str) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.join(file)).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }

    /// Checks `epochs.jsonl` holds epochs 1..=epochs once each and `iterations.jsonl` every step
    /// once, in order.
    pub fn assert_complete_records(&self, epochs: u64, steps: u64) {
        let e: Vec<u64> = self
            .jsonl("epochs.jsonl")
            .iter()
            .map(|v| v["epoch"].as_u64().unwrap())
            .collect();
        assert_eq!(
            e,
            (1..=epochs).collect::<Vec<_>>(),
            "epochs of {:?}",
            self.dir
        );
        let its = self.jsonl("iterations.jsonl");
        let idx: Vec<u64> = its
            .iter()
            .map(|v| v["iteration"].as_u64().unwrap())
            .collect();
        assert_eq!(
            idx,
            (0..epochs * steps).collect::<Vec<_>>(),
            "iterations of {:?}",
            self.dir
        );
        for (i, v) in its.iter().enumerate() {
            let i = i as u64;
            assert_eq!(v["epoch"].as_u64().unwrap(), i / steps + 1);
            assert_eq!(v["step"].as_u64().unwrap(), i % steps);
        }
    }
}

/// Reads a Parquet file.
pub fn read_parquet(path: &Path) -> DataFrame {
    let f = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    ParquetReader::new(f)
        .finish()
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Column name -> dtype.
pub fn schema_of(df: &DataFrame) -> BTreeMap<String, DataType> {
    df.columns()
        .iter()
        .map(|c| (c.name().to_string(), c.dtype().clone()))
        .collect()
}

/// Prints a failed command's output.
pub fn explain(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
