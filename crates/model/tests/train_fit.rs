//! The training loop end to end on tiny synthetic data: determinism, exact
//! resume from checkpoints (after an epoch and mid-epoch), divergence,
//! interruption, checkpoint compatibility checks, and learning.

use std::collections::HashMap;
use std::path::Path;

use ablate_data::{AugmentKind, DataConfig, Dataset, ImageSet};
use ablate_model::train::{
    checkpoint, fit, MemorySink, MetricsSink, OptimizerKind, SchedulerKind, TrainConfig,
    TrainError, TrainOutcome,
};
use ablate_model::{ModelSpec, Net};

mod common;
use candle_core::Device;
use common::sinks::StopSink;

fn data(train: usize, test: usize) -> (Dataset, DataConfig) {
    let ds = ablate_data::synthetic::generate(train, test, 7);
    // Crop + flip as in the seed protocol.
    let cfg = DataConfig {
        augment: vec![AugmentKind::Crop, AugmentKind::Flip],
        ..DataConfig::synthetic(train, test)
    };
    (ds, cfg)
}

fn net(spec: &ModelSpec, seed: u64) -> Net {
    Net::new(spec, 10, &Device::Cpu, seed).unwrap()
}

fn small_cfg(epochs: u32, steps: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 8,
        eval_batch_size: 16,
        max_steps_per_epoch: Some(steps),
        ..TrainConfig::default()
    }
}

fn weights(net: &Net) -> HashMap<String, Vec<f32>> {
    net.state_dict()
        .unwrap()
        .into_iter()
        .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect()
}

fn run(
    spec: &ModelSpec,
    cfg: &TrainConfig,
    ds: &Dataset,
    dcfg: &DataConfig,
    dir: Option<&Path>,
    sink: &mut dyn MetricsSink,
) -> (Net, TrainOutcome) {
    let mut n = net(spec, 3);
    let out = fit(&mut n, ds, dcfg, cfg, 11, dir, sink).unwrap();
    (n, out)
}

#[test]
fn train_same_seed_gives_identical_losses_and_weights() {
    let (ds, dcfg) = data(48, 20);
    let cfg = small_cfg(2, 3);
    let spec = ModelSpec::default();
    let mut a = MemorySink::default();
    let mut b = MemorySink::default();
    let (na, oa) = run(&spec, &cfg, &ds, &dcfg, None, &mut a);
    let (nb, ob) = run(&spec, &cfg, &ds, &dcfg, None, &mut b);
    assert_eq!(oa, TrainOutcome::Completed { epochs: 2 });
    assert_eq!(oa, ob);
    assert_eq!(a.iterations.len(), 6);
    assert_eq!(a.iterations, b.iterations);
    let steps: Vec<(u32, u32, u64)> = a
        .iterations
        .iter()
        .map(|r| (r.epoch, r.step, r.iteration))
        .collect();
    assert_eq!(
        steps,
        vec![
            (1, 0, 0),
            (1, 1, 1),
            (1, 2, 2),
            (2, 0, 3),
            (2, 1, 4),
            (2, 2, 5)
        ]
    );
    assert_eq!(weights(&na), weights(&nb));
    // Epoch records: everything but timing identical.
    assert_eq!(a.epochs.len(), 2);
    for (x, y) in a.epochs.iter().zip(&b.epochs) {
        assert_eq!(
            (x.train_loss, x.train_acc, x.test_loss, x.test_acc, x.lr),
            (y.train_loss, y.train_acc, y.test_loss, y.test_acc, y.lr)
        );
        assert!(x.seconds > 0.0 && x.images_per_sec > 0.0);
        assert_eq!(x.lr, 1e-3);
    }
    // train_loss is the image-weighted mean of the epoch's step losses (all batches of 8).
    let mean: f64 = a.iterations[..3]
        .iter()
        .map(|r| f64::from(r.loss))
        .sum::<f64>()
        / 3.0;
    assert!((a.epochs[0].train_loss - mean).abs() < 1e-9);
    let fin = a.finished.expect("finished record");
    assert_eq!(fin.epochs, 2);
    assert_eq!(fin.iterations, 6);
    assert_eq!(fin.eval.accuracy, a.epochs[1].test_acc);
    assert_eq!(fin.eval.predictions.len(), 20);
    let total: u64 = fin.eval.confusion.iter().flatten().sum();
    assert_eq!(total, 20);
    assert_eq!(
        fin.best_test_acc,
        a.epochs.iter().map(|e| e.test_acc).fold(0.0, f64::max)
    );
    // A different seed trains differently.
    let mut c = MemorySink::default();
    let mut nc = net(&spec, 3);
    fit(&mut nc, &ds, &dcfg, &cfg, 12, None, &mut c).unwrap();
    assert_ne!(c.iterations, a.iterations);
}

/// 2 epochs straight vs. interrupted (after epoch 1, and mid-epoch 2) and
/// resumed from the checkpoint: bit-identical weights and losses.
#[test]
fn train_resume_from_checkpoint_is_bit_exact() {
    let (ds, dcfg) = data(48, 20);
    let cfg = small_cfg(2, 3);
    let spec = ModelSpec {
        attention: ablate_model::AttentionKind::Se,
        ..ModelSpec::default()
    };
    let mut straight = MemorySink::default();
    let (ns, _) = run(&spec, &cfg, &ds, &dcfg, None, &mut straight);

    for stop_after in [3usize, 4] {
        let dir = tempfile::tempdir().unwrap();
        let mut first = StopSink::after_steps(stop_after);
        let (_, out) = run(&spec, &cfg, &ds, &dcfg, Some(dir.path()), &mut first);
        assert_eq!(out, TrainOutcome::Interrupted { epoch: 2 });
        assert!(checkpoint::exists(dir.path()));
        let state = checkpoint::read_state(dir.path()).unwrap();
        assert_eq!(state.iteration, stop_after as u64);
        assert_eq!(state.step, (stop_after - 3) as u32);

        // A fresh network (other init seed: the checkpoint's weights replace it).
        let mut second = MemorySink::default();
        let mut n2 = net(&spec, 999);
        let out = fit(&mut n2, &ds, &dcfg, &cfg, 11, Some(dir.path()), &mut second).unwrap();
        assert_eq!(out, TrainOutcome::Completed { epochs: 2 });
        assert_eq!(weights(&n2), weights(&ns), "stop after {stop_after}");
        let mut all = first.mem.iterations.clone();
        all.extend(second.iterations.clone());
        assert_eq!(all, straight.iterations);
        let last = second.epochs.last().unwrap();
        let want = straight.epochs.last().unwrap();
        assert_eq!(
            (
                last.train_loss,
                last.train_acc,
                last.test_loss,
                last.test_acc
            ),
            (
                want.train_loss,
                want.train_acc,
                want.test_loss,
                want.test_acc
            )
        );
        // Only the files of the newest checkpoint and of the one before it remain.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 6, "{names:?}");
        assert!(names[1].starts_with("model-e0003-s000000-"), "{names:?}");
        assert!(
            names[3].starts_with("optimizer-e0003-s000000-"),
            "{names:?}"
        );
        assert_eq!(&names[4..], ["state.json", "state.prev.json"]);
        // Calling fit again on a finished checkpoint trains nothing and finishes.
        let mut third = MemorySink::default();
        let out = fit(&mut n2, &ds, &dcfg, &cfg, 11, Some(dir.path()), &mut third).unwrap();
        assert_eq!(out, TrainOutcome::Completed { epochs: 2 });
        assert!(third.iterations.is_empty());
        assert_eq!(third.finished.unwrap().eval.accuracy, want.test_acc);
    }
}

#[test]
fn train_sgd_cosine_resume_is_bit_exact() {
    let (ds, dcfg) = data(32, 10);
    let cfg = TrainConfig {
        optimizer: OptimizerKind::Sgd,
        lr: 0.01,
        nesterov: true,
        weight_decay: 5e-4,
        scheduler: SchedulerKind::Cosine,
        label_smoothing: 0.1,
        ..small_cfg(2, 2)
    };
    let spec = ModelSpec::default();
    let mut straight = MemorySink::default();
    let (ns, _) = run(&spec, &cfg, &ds, &dcfg, None, &mut straight);
    assert!(straight.epochs[1].lr < straight.epochs[0].lr);
    let dir = tempfile::tempdir().unwrap();
    let mut first = StopSink::after_steps(3);
    run(&spec, &cfg, &ds, &dcfg, Some(dir.path()), &mut first);
    let (n2, out) = run(
        &spec,
        &cfg,
        &ds,
        &dcfg,
        Some(dir.path()),
        &mut MemorySink::default(),
    );
    assert_eq!(out, TrainOutcome::Completed { epochs: 2 });
    assert_eq!(weights(&n2), weights(&ns));
}

#[test]
fn train_checkpoint_of_another_run_is_refused_naming_the_key() {
    let (ds, dcfg) = data(16, 8);
    let cfg = small_cfg(1, 1);
    let dir = tempfile::tempdir().unwrap();
    run(
        &ModelSpec::default(),
        &cfg,
        &ds,
        &dcfg,
        Some(dir.path()),
        &mut MemorySink::default(),
    );
    let other = TrainConfig {
        lr: 0.01,
        ..cfg.clone()
    };
    let mut n = net(&ModelSpec::default(), 3);
    let err = fit(
        &mut n,
        &ds,
        &dcfg,
        &other,
        11,
        Some(dir.path()),
        &mut MemorySink::default(),
    )
    .unwrap_err();
    assert!(matches!(err, TrainError::Checkpoint(_)));
    assert!(err.to_string().contains("train.lr"), "{err}");
    let err = fit(
        &mut n,
        &ds,
        &dcfg,
        &cfg,
        12,
        Some(dir.path()),
        &mut MemorySink::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("seed"), "{err}");
    // More epochs is allowed: the run is extended by one epoch.
    let longer = TrainConfig {
        epochs: 2,
        ..cfg.clone()
    };
    let mut sink = MemorySink::default();
    let out = fit(&mut n, &ds, &dcfg, &longer, 11, Some(dir.path()), &mut sink).unwrap();
    assert_eq!(out, TrainOutcome::Completed { epochs: 2 });
    assert_eq!(sink.epochs.len(), 1);
    assert_eq!(sink.epochs[0].epoch, 2);
    // (A damaged state file is not an error: tests/checkpoint_integrity.rs.)
}

#[test]
fn train_non_finite_loss_stops_as_diverged_without_training_on_it() {
    let (ds, dcfg) = data(64, 8);
    // SGD with an absurd rate: the weights explode after the first update and the
    // logits overflow at a later step.
    let cfg = TrainConfig {
        optimizer: OptimizerKind::Sgd,
        lr: 1e30,
        momentum: 0.0,
        ..small_cfg(1, 8)
    };
    let mut sink = MemorySink::default();
    let (n, out) = run(&ModelSpec::default(), &cfg, &ds, &dcfg, None, &mut sink);
    let TrainOutcome::Diverged { epoch, step } = out else {
        panic!("expected divergence, got {out:?}");
    };
    assert_eq!(epoch, 1);
    let last = sink.iterations.last().unwrap();
    assert_eq!(last.step, step);
    assert!(!last.loss.is_finite());
    assert!(sink.iterations[..sink.iterations.len() - 1]
        .iter()
        .all(|r| r.loss.is_finite()));
    assert!(sink.finished.is_none());
    assert!(sink.epochs.is_empty());
    // No update was made from the non-finite loss: no NaN reached the weights.
    for (k, v) in weights(&n) {
        assert!(v.iter().all(|x| !x.is_nan()), "{k} has NaN");
    }
}

#[test]
fn train_stop_request_checkpoints_and_interrupts() {
    let (ds, dcfg) = data(16, 8);
    let cfg = small_cfg(2, 2);
    let dir = tempfile::tempdir().unwrap();
    let mut sink = StopSink::after_steps(0);
    let (_, out) = run(
        &ModelSpec::default(),
        &cfg,
        &ds,
        &dcfg,
        Some(dir.path()),
        &mut sink,
    );
    assert_eq!(out, TrainOutcome::Interrupted { epoch: 1 });
    assert!(sink.mem.iterations.is_empty());
    let st = checkpoint::read_state(dir.path()).unwrap();
    assert_eq!((st.epoch, st.step, st.iteration), (1, 0, 0));
    // Without a folder it still stops.
    let (_, out) = run(&ModelSpec::default(), &cfg, &ds, &dcfg, None, &mut sink);
    assert_eq!(out, TrainOutcome::Interrupted { epoch: 1 });
}

#[test]
fn train_rejects_bad_config_and_empty_data() {
    let (ds, dcfg) = data(16, 8);
    let mut n = net(&ModelSpec::default(), 3);
    let bad = TrainConfig {
        epochs: 0,
        ..TrainConfig::default()
    };
    let err = fit(
        &mut n,
        &ds,
        &dcfg,
        &bad,
        1,
        None,
        &mut MemorySink::default(),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "train.epochs must be at least 1");
    let empty = Dataset {
        test: ImageSet::empty(32, 32),
        ..ds.clone()
    };
    let err = fit(
        &mut n,
        &empty,
        &dcfg,
        &small_cfg(1, 1),
        1,
        None,
        &mut MemorySink::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("no test image"), "{err}");
}

/// An easy 4-class set: each class brightens one quadrant of a noisy grey image.
fn quadrants(n: usize, seed: u64) -> ImageSet {
    let mut s = seed;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) as u32
    };
    let mut images = Vec::with_capacity(n * 3 * 32 * 32);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = (i % 4) as u8;
        for _c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    let q = (y / 16) * 2 + x / 16;
                    let base = if q == class as usize { 170 } else { 80 };
                    images.push((base + (next() % 50) as i32 - 25) as u8);
                }
            }
        }
        labels.push(class);
    }
    ImageSet {
        images,
        labels,
        len: n,
        channels: 3,
        height: 32,
        width: 32,
    }
}

#[test]
fn train_learns_an_easy_task_well_above_chance() {
    let ds = Dataset {
        name: "quadrants".into(),
        classes: vec!["a".into(), "b".into(), "c".into(), "d".into()],
        train: quadrants(256, 1),
        test: quadrants(64, 2),
    };
    let dcfg = DataConfig {
        augment: vec![],
        ..DataConfig::synthetic(256, 64)
    };
    let cfg = TrainConfig {
        epochs: 4,
        batch_size: 16,
        ..TrainConfig::default()
    };
    let mut n = Net::new(&ModelSpec::default(), 4, &Device::Cpu, 5).unwrap();
    let mut sink = MemorySink::default();
    let out = fit(&mut n, &ds, &dcfg, &cfg, 5, None, &mut sink).unwrap();
    assert_eq!(out, TrainOutcome::Completed { epochs: 4 });
    assert_eq!(sink.iterations.len(), 64);
    let acc = sink.finished.as_ref().unwrap().eval.accuracy;
    // Chance is 0.25.
    assert!(
        acc >= 0.9,
        "test accuracy {acc} after {} steps",
        sink.iterations.len()
    );
    let first = sink.epochs[0].train_loss;
    let last = sink.epochs.last().unwrap().train_loss;
    assert!(last < first * 0.5, "train loss {first} -> {last}");
}

#[test]
fn train_losses_do_not_depend_on_the_thread_count() {
    let (ds, dcfg) = data(32, 8);
    let cfg = small_cfg(1, 2);
    let spec = ModelSpec::default();
    let mut many = MemorySink::default();
    let (nm, _) = run(&spec, &cfg, &ds, &dcfg, None, &mut many);
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut single = MemorySink::default();
    let (ns, _) = one.install(|| run(&spec, &cfg, &ds, &dcfg, None, &mut single));
    assert_eq!(many.iterations, single.iterations);
    assert_eq!(weights(&nm), weights(&ns));
}
