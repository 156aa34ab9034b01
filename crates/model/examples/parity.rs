//! The accuracy-parity protocol of docs/parity.md, our side.
//!
//! ```text
//! # 1. the data both sides train on: a stratified 10,000-image train subset of
//! #    the JPEG archive and the full test set, in the CIFAR-10 binary layout
//! cargo run --release -p ablate-model --example parity -- export \
//!     --data ../shared/data/cifar10-jpeg.tar.gz --train-limit 10000 --out /tmp/parity-data
//! # 2. one run: per-epoch JSON lines like torch_seed.py's, then a summary line
//! cargo run --release -p ablate-model --example parity -- train \
//!     --data /tmp/parity-data --reduction 16 --seed 0 --epochs 3
//! ```
//!
//! `--reduction 0` is the seed CNN, anything else SE with that ratio after ReLU
//! in all blocks. Training: crop (padding 4) + flip, CIFAR mean/std
//! normalization, batch 64, Adam 1e-3, ReduceLROnPlateau on the test loss:
//! the protocol of `torch_seed.py train`.

use std::path::PathBuf;
use std::time::Instant;

use ablate_data::{AugmentKind, DataConfig, DatasetKind};
use ablate_model::train::{
    fit, EpochRecord, FinalRecord, IterationRecord, MetricsSink, SinkError, TrainConfig,
};
use ablate_model::{AttentionKind, ModelSpec, Net};
use candle_core::Device;

struct Args {
    cmd: String,
    data: PathBuf,
    out: Option<PathBuf>,
    train_limit: Option<usize>,
    reduction: u32,
    seed: u64,
    epochs: u32,
    batch: usize,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let cmd = it
        .next()
        .ok_or("usage: parity (export|train) --data PATH [options]")?;
    let mut a = Args {
        cmd,
        data: PathBuf::new(),
        out: None,
        train_limit: None,
        reduction: 0,
        seed: 0,
        epochs: 3,
        batch: 64,
    };
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{k} {v}: {e}"));
        match k.as_str() {
            "--data" => a.data = PathBuf::from(v),
            "--out" => a.out = Some(PathBuf::from(v)),
            "--train-limit" => a.train_limit = Some(num(&v)? as usize),
            "--reduction" => a.reduction = num(&v)? as u32,
            "--seed" => a.seed = num(&v)?,
            "--epochs" => a.epochs = num(&v)? as u32,
            "--batch" => a.batch = num(&v)? as usize,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if a.data.as_os_str().is_empty() {
        return Err("--data is required".into());
    }
    Ok(a)
}

/// Prints each epoch as one JSON line.
struct Print {
    spec: String,
    seed: u64,
    finished: Option<FinalRecord>,
}

impl MetricsSink for Print {
    fn iteration(&mut self, _: &IterationRecord) -> Result<(), SinkError> {
        Ok(())
    }
    fn epoch(&mut self, r: &EpochRecord) -> Result<(), SinkError> {
        println!(
            "{}",
            serde_json::json!({
                "model": self.spec, "seed": self.seed, "epoch": r.epoch,
                "train_loss": r.train_loss, "train_acc": r.train_acc,
                "test_loss": r.test_loss, "test_acc": r.test_acc,
                "epoch_s": r.seconds, "images_per_sec": r.images_per_sec, "lr": r.lr,
            })
        );
        Ok(())
    }
    fn finished(&mut self, r: &FinalRecord) -> Result<(), SinkError> {
        self.finished = Some(r.clone());
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = parse()?;
    match a.cmd.as_str() {
        "export" => {
            let out = a.out.clone().ok_or("export needs --out")?;
            let cfg = DataConfig {
                dataset: DatasetKind::ImageFolder,
                path: Some(a.data.clone()),
                train_limit: a.train_limit,
                ..DataConfig::default()
            };
            let t = Instant::now();
            let ds = ablate_data::load(&cfg, 0)?;
            ablate_data::export_cifar_bin(&ds, &out)?;
            eprintln!(
                "wrote {} train and {} test images to {} in {:.1} s; per-class train counts {:?}",
                ds.train.len,
                ds.test.len,
                out.display(),
                t.elapsed().as_secs_f64(),
                ds.train.class_counts(ds.num_classes())
            );
        }
        "train" => {
            let dcfg = DataConfig {
                dataset: DatasetKind::Cifar10,
                path: Some(a.data.clone()),
                download: false,
                augment: vec![AugmentKind::Crop, AugmentKind::Flip],
                ..DataConfig::default()
            };
            let ds = ablate_data::load(&dcfg, 0)?;
            let spec = if a.reduction == 0 {
                ModelSpec::default()
            } else {
                ModelSpec {
                    attention: AttentionKind::Se,
                    reduction: a.reduction,
                    ..ModelSpec::default()
                }
            };
            let tcfg = TrainConfig {
                epochs: a.epochs,
                batch_size: a.batch,
                ..TrainConfig::default()
            };
            let mut net = Net::new(&spec, ds.num_classes(), &Device::Cpu, a.seed)?;
            let name = if a.reduction == 0 {
                "baseline".to_string()
            } else {
                format!("se_r{}", a.reduction)
            };
            let mut sink = Print {
                spec: name.clone(),
                seed: a.seed,
                finished: None,
            };
            let out = fit(&mut net, &ds, &dcfg, &tcfg, a.seed, None, &mut sink)?;
            let fin = sink.finished.ok_or(format!("run ended as {out:?}"))?;
            println!(
                "{}",
                serde_json::json!({
                    "summary": true, "model": name, "seed": a.seed, "train_images": ds.train.len,
                    "test_images": ds.test.len, "final_test_acc": fin.eval.accuracy,
                    "final_test_loss": fin.eval.loss, "train_seconds": fin.train_seconds,
                    "images_per_sec": fin.images_per_sec,
                })
            );
        }
        other => return Err(format!("unknown command {other}: export or train").into()),
    }
    Ok(())
}
