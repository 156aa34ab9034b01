//! Checkpoints read back: exact floats through `state.json`, damaged files detected and named,
//! the previous good checkpoint used instead (or a fresh start), never damaged weights.

use std::collections::HashMap;

use ablate_model::train::{checkpoint, CheckpointState, EpochRecord, LrScheduler, TrainConfig};
use candle_core::{Device, Tensor};

mod common;
use common::sinks::StopSink;

/// `n` awkward f64 values: 17 significant digits, the kind a running loss sum has.
fn awkward(n: usize) -> Vec<f64> {
    let mut s: u64 = 0x5eed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64 * 1000.0
        })
        .collect()
}

fn state(epoch: u32, step: u32, x: f64) -> CheckpointState {
    let cfg = TrainConfig::default();
    let mut scheduler = LrScheduler::from_config(&cfg);
    scheduler.lr = x / 1e6;
    scheduler.best = Some(x / 7.0);
    CheckpointState {
        format: checkpoint::CHECKPOINT_FORMAT,
        seed: 3,
        config: cfg,
        epoch,
        step,
        iteration: u64::from(epoch) * 10 + u64::from(step),
        epoch_loss_sum: x,
        epoch_correct: 5,
        epoch_seen: 16,
        epoch_seconds: x / 3.0,
        train_seconds: x / 11.0,
        train_images: 160,
        scheduler,
        history: vec![EpochRecord {
            epoch: 1,
            train_loss: x / 13.0,
            train_acc: 0.25,
            test_loss: x / 17.0,
            test_acc: 0.5,
            lr: 1e-3,
            seconds: x / 19.0,
            images_per_sec: x * 3.0,
        }],
        weights_file: String::new(),
        optimizer_file: String::new(),
        torch_draws: None,
    }
}

fn tensors(v: f32) -> HashMap<String, Tensor> {
    let t = Tensor::full(v, (2, 3), &Device::Cpu).unwrap();
    HashMap::from([("w".to_string(), t)])
}

/// The soak test's last-bit `train_loss` difference after a mid-epoch resume came from
/// `epoch_loss_sum` read back from `state.json` one unit in the last place off (serde_json's
/// default float parser is not correctly rounded; the workspace turns on `float_roundtrip`).
#[test]
fn checkpoint_state_round_trips_every_f64_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let mut mismatches = Vec::new();
    for (i, x) in awkward(300).into_iter().enumerate() {
        let s = state(2, 1, x);
        checkpoint::write(dir.path(), s.clone(), &tensors(1.0), &tensors(2.0)).unwrap();
        let back = checkpoint::read_state(dir.path()).unwrap();
        let pairs = [
            (s.epoch_loss_sum, back.epoch_loss_sum),
            (s.epoch_seconds, back.epoch_seconds),
            (s.train_seconds, back.train_seconds),
            (s.scheduler.lr, back.scheduler.lr),
            (s.scheduler.best.unwrap(), back.scheduler.best.unwrap()),
            (s.history[0].train_loss, back.history[0].train_loss),
            (s.history[0].images_per_sec, back.history[0].images_per_sec),
        ];
        for (a, b) in pairs {
            if a.to_bits() != b.to_bits() {
                mismatches.push((i, a, b));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} values changed through state.json, e.g. {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(3)]
    );
}

// ---- damaged checkpoints, through the trainer ----

use std::path::Path;
use std::sync::{Arc, Mutex};

use ablate_data::{AugmentKind, DataConfig, Dataset};
use ablate_model::train::{fit, MemorySink, MetricsSink, TrainOutcome};
use ablate_model::{ModelSpec, Net};

fn data() -> (Dataset, DataConfig) {
    let ds = ablate_data::synthetic::generate(24, 10, 7);
    let cfg = DataConfig {
        augment: vec![AugmentKind::Crop, AugmentKind::Flip],
        ..DataConfig::synthetic(24, 10)
    };
    (ds, cfg)
}

fn cfg() -> TrainConfig {
    TrainConfig {
        epochs: 3,
        batch_size: 8,
        eval_batch_size: 10,
        max_steps_per_epoch: Some(3),
        ..TrainConfig::default()
    }
}

fn weights_of(net: &Net) -> Vec<(String, Vec<u32>)> {
    let mut v: Vec<(String, Vec<u32>)> = net
        .state_dict()
        .unwrap()
        .into_iter()
        .map(|(k, t)| {
            let bits = t
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .into_iter()
                .map(f32::to_bits)
                .collect();
            (k, bits)
        })
        .collect();
    v.sort();
    v
}

fn train(dir: Option<&Path>, sink: &mut dyn MetricsSink) -> (Net, TrainOutcome) {
    let (ds, dcfg) = data();
    let mut net = Net::new(&ModelSpec::default(), 10, &candle_core::Device::Cpu, 3).unwrap();
    let out = fit(&mut net, &ds, &dcfg, &cfg(), 11, dir, sink).unwrap();
    (net, out)
}

/// The warnings (tracing) emitted while `f` runs on this thread.
fn warnings<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf(Arc::new(Mutex::new(Vec::new())));
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || writer.clone())
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    (out, text)
}

/// Interrupted at epoch 3 step 1: `state.json` is there (epoch 3, step 1) and `state.prev.json`
/// (the end of epoch 2).
fn interrupted_run(dir: &Path) -> MemorySink {
    let mut first = StopSink::after_steps(7);
    let (_, out) = train(Some(dir), &mut first);
    assert_eq!(out, TrainOutcome::Interrupted { epoch: 3 });
    let s = checkpoint::read_state(dir).unwrap();
    assert_eq!((s.epoch, s.step), (3, 1));
    first.mem
}

fn file_of(dir: &Path, state_file: &str, prefix: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(dir.join(state_file)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let key = if prefix == "model" {
        "weights_file"
    } else {
        "optimizer_file"
    };
    dir.join(v[key].as_str().unwrap())
}

fn flip_byte(path: &Path, at_fraction: f64) {
    let mut b = std::fs::read(path).unwrap();
    let i = ((b.len() - 1) as f64 * at_fraction) as usize;
    b[i] ^= 0x10;
    std::fs::write(path, b).unwrap();
}

/// Resumes after damage and checks the run ends exactly as the uninterrupted one, with every
/// step from `first_step` on delivered again.
fn resume_and_compare(dir: &Path, first_step: u64) -> String {
    let mut straight = MemorySink::default();
    let (want, _) = train(None, &mut straight);
    let mut second = MemorySink::default();
    let ((net, out), log) = warnings(|| train(Some(dir), &mut second));
    assert_eq!(out, TrainOutcome::Completed { epochs: 3 });
    assert_eq!(second.iterations[0].iteration, first_step, "{log}");
    assert_eq!(
        second.iterations,
        straight.iterations[first_step as usize..].to_vec()
    );
    assert_eq!(weights_of(&net), weights_of(&want));
    let (a, b) = (
        second.epochs.last().unwrap(),
        straight.epochs.last().unwrap(),
    );
    assert_eq!(a.train_loss.to_bits(), b.train_loss.to_bits());
    assert_eq!(a.test_acc, b.test_acc);
    log
}

#[test]
fn damaged_weights_fall_back_to_the_previous_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    interrupted_run(dir.path());
    let bad = file_of(dir.path(), "state.json", "model");
    flip_byte(&bad, 0.7);
    let log = resume_and_compare(dir.path(), 6);
    let name = bad.file_name().unwrap().to_string_lossy().into_owned();
    assert!(log.contains(&name), "{log}");
    assert!(log.contains("checksum mismatch"), "{log}");
    assert!(log.contains("state.prev.json"), "{log}");
    assert!(dir.path().join("damaged").join(&name).is_file());
    assert!(dir.path().join("damaged").join("state.json").is_file());
}

#[test]
fn a_truncated_optimizer_file_falls_back_to_the_previous_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    interrupted_run(dir.path());
    let bad = file_of(dir.path(), "state.json", "optimizer");
    let len = std::fs::metadata(&bad).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&bad)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let log = resume_and_compare(dir.path(), 6);
    assert!(log.contains("bytes,"), "{log}");
}

#[test]
fn a_damaged_state_file_falls_back_to_the_previous_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    interrupted_run(dir.path());
    // A digit of the running loss sum, then a cut file: both detected.
    let path = dir.path().join("state.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let at = text.find("\"epoch_loss_sum\": ").unwrap() + 19;
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'1' { b'2' } else { b'1' };
    std::fs::write(&path, &bytes).unwrap();
    let log = resume_and_compare(dir.path(), 6);
    assert!(log.contains("state.json"), "{log}");

    let dir = tempfile::tempdir().unwrap();
    interrupted_run(dir.path());
    let path = dir.path().join("state.json");
    let text = std::fs::read(&path).unwrap();
    std::fs::write(&path, &text[..text.len() / 3]).unwrap();
    resume_and_compare(dir.path(), 6);
}

#[test]
fn with_every_checkpoint_damaged_the_run_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    interrupted_run(dir.path());
    for state in ["state.json", "state.prev.json"] {
        flip_byte(&file_of(dir.path(), state, "model"), 0.5);
    }
    let log = resume_and_compare(dir.path(), 0);
    assert!(log.contains("starts over"), "{log}");
    // Starting over again finds nothing damaged: no warning the second time.
    let dir2 = tempfile::tempdir().unwrap();
    interrupted_run(dir2.path());
    std::fs::write(dir2.path().join("state.json"), "").unwrap();
    std::fs::write(dir2.path().join("state.prev.json"), "{ not json").unwrap();
    resume_and_compare(dir2.path(), 0);
    let (_, log) = warnings(|| checkpoint::recover(dir2.path()).unwrap());
    assert!(log.is_empty(), "{log}");
}

#[test]
fn reading_damaged_tensors_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    interrupted_run(dir.path());
    let path = file_of(dir.path(), "state.json", "model");
    checkpoint::read_tensors(&path, &candle_core::Device::Cpu).unwrap();
    flip_byte(&path, 0.9);
    let e = checkpoint::read_tensors(&path, &candle_core::Device::Cpu).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&*path.to_string_lossy()), "{msg}");
    assert!(msg.contains("damaged"), "{msg}");
}

#[test]
fn a_state_file_from_before_checksums_is_read() {
    let dir = tempfile::tempdir().unwrap();
    interrupted_run(dir.path());
    // Rewrite state.json as the previous version did: plain JSON, no files, no sha256.
    let path = dir.path().join("state.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let m = v.as_object_mut().unwrap();
    m.remove("files");
    m.remove("sha256");
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let s = checkpoint::read_state(dir.path()).unwrap();
    assert_eq!((s.epoch, s.step), (3, 1));
    resume_and_compare(dir.path(), 7);
}

#[test]
fn only_the_two_newest_checkpoints_and_their_files_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (_, out) = train(Some(dir.path()), &mut MemorySink::default());
    assert_eq!(out, TrainOutcome::Completed { epochs: 3 });
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 6, "{names:?}");
    assert!(names[0].starts_with("model-e0003-s000000-"), "{names:?}");
    assert!(names[1].starts_with("model-e0004-s000000-"), "{names:?}");
    assert!(
        names[2].starts_with("optimizer-e0003-s000000-"),
        "{names:?}"
    );
    assert!(
        names[3].starts_with("optimizer-e0004-s000000-"),
        "{names:?}"
    );
    assert_eq!(&names[4..], ["state.json", "state.prev.json"]);
}
