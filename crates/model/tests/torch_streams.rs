//! `train.random_streams = "pytorch"` against PyTorch 2.15.0: initial weights, dropout masks
//! and whole training runs of the reference script. Fixture `tests/data/torch_init.json`,
//! written by `scripts/torch-streams.py` with PyTorch itself (the reference's `SeedCNN`,
//! `F.dropout` and `torch_seed.train`).

use ablate_data::{AugmentKind, DataConfig, Dataset, ImageSet, RandomStreams, TorchGenerator};
use ablate_model::train::{checkpoint, fit, MemorySink, TrainConfig, TrainError, TrainOutcome};
use ablate_model::{AttentionKind, DropoutMasks, ModelSpec, Net};
use candle_core::{DType, Device, Tensor};
use serde_json::Value;

mod common;
use common::sinks::StopSink;

fn fixture() -> Value {
    serde_json::from_str(include_str!("data/torch_init.json")).expect("fixture is JSON")
}

/// A float the fixture wrote as its shortest round-trip string (Rust parses those exactly).
fn exact(v: &Value) -> f64 {
    v.as_str().unwrap().parse().unwrap()
}

fn seq_sum(values: &[f32], weighted: bool) -> f64 {
    let mut s = 0.0f64;
    for (i, &v) in values.iter().enumerate() {
        let w = if weighted { (i + 1) as f64 } else { 1.0 };
        s += f64::from(v) * w;
    }
    s
}

fn spec(reduction: u64) -> ModelSpec {
    if reduction == 0 {
        ModelSpec::default()
    } else {
        ModelSpec {
            attention: AttentionKind::Se,
            reduction: reduction as u32,
            ..ModelSpec::default()
        }
    }
}

#[test]
fn initial_weights_and_dropout_masks_are_pytorchs_bit_for_bit() {
    let fx = fixture();
    for run in fx["runs"].as_array().unwrap() {
        let seed = run["seed"].as_u64().unwrap();
        let reduction = run["reduction"].as_u64().unwrap();
        // Built from another seed: every drawn parameter must be replaced.
        let mut net = Net::new(&spec(reduction), 10, &Device::Cpu, seed + 100).unwrap();
        let draws = net.init_like_torch(seed).unwrap();
        assert_eq!(draws, net.torch_init_draws());
        let params = run["params"].as_object().unwrap();
        let state = net.trainable();
        assert_eq!(state.len(), params.len(), "r={reduction}");
        for (name, var) in &state {
            let want = &params[name];
            let got = var.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let first: Vec<f32> = want["first"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            assert_eq!(&got[..first.len()], &first[..], "{name}");
            assert_eq!(seq_sum(&got, false), exact(&want["sum"]), "{name}");
            assert_eq!(seq_sum(&got, true), exact(&want["weighted_sum"]), "{name}");
        }

        // The dropout masks of the next steps continue the same generator.
        let mut g = TorchGenerator::at(seed, draws);
        for m in run["dropout_masks"].as_array().unwrap() {
            let rows = m["rows"].as_u64().unwrap() as usize;
            let ones = Tensor::ones((rows, 512), DType::F32, &Device::Cpu).unwrap();
            let y = ablate_model::layers::dropout(&ones, 0.5, DropoutMasks::Torch(g))
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
            let kept: Vec<u64> = (0..y.len() as u64)
                .filter(|&i| y[i as usize] > 0.0)
                .collect();
            assert_eq!(kept.len() as u64, m["kept"].as_u64().unwrap());
            assert_eq!(
                kept.iter().sum::<u64>(),
                m["kept_index_sum"].as_u64().unwrap()
            );
            let first: Vec<u64> = m["first_kept"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(&kept[..8], &first[..]);
            g.discard(net.torch_dropout_draws(rows));
        }
    }
}

/// The fixture's synthetic set (`scripts/torch-streams.py`): pixel `k` of the whole
/// `[n, 3, 32, 32]` array is `(7k + 13 * (k / 3072)) % 256`, label `i % 10`.
fn synthetic_set(n: usize) -> ImageSet {
    ImageSet {
        images: (0..n * 3072)
            .map(|k| ((7 * k + 13 * (k / 3072)) % 256) as u8)
            .collect(),
        labels: (0..n).map(|i| (i % 10) as u8).collect(),
        len: n,
        channels: 3,
        height: 32,
        width: 32,
    }
}

fn reference_data() -> (Dataset, DataConfig) {
    // Test images: the first 50 training images again.
    let ds = Dataset {
        name: "torch-streams fixture".into(),
        classes: (0..10).map(|i| format!("c{i}")).collect(),
        train: synthetic_set(100),
        test: synthetic_set(50),
    };
    let cfg = DataConfig {
        augment: vec![AugmentKind::Crop, AugmentKind::Flip],
        ..DataConfig::synthetic(100, 50)
    };
    (ds, cfg)
}

fn torch_cfg(epochs: u32) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 64,
        random_streams: RandomStreams::Pytorch,
        ..TrainConfig::default()
    }
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-12)
}

#[test]
fn training_follows_the_reference_script_run_with_the_same_seed() {
    let fx = fixture();
    let (ds, dcfg) = reference_data();
    for run in fx["training"].as_array().unwrap() {
        let seed = run["seed"].as_u64().unwrap();
        let reduction = run["reduction"].as_u64().unwrap();
        let want = run["epochs"].as_array().unwrap();
        let mut net = Net::new(&spec(reduction), 10, &Device::Cpu, 0).unwrap();
        let mut sink = MemorySink::default();
        let out = fit(
            &mut net,
            &ds,
            &dcfg,
            &torch_cfg(want.len() as u32),
            seed,
            None,
            &mut sink,
        )
        .unwrap();
        assert_eq!(out, TrainOutcome::Completed { epochs: 3 });
        for (got, want) in sink.epochs.iter().zip(want) {
            let what = format!("r={reduction} epoch {}", got.epoch);
            let f = |k: &str| want[k].as_f64().unwrap();
            // Same weights, batches and masks: only the order of float operations differs.
            // Training-mode losses agree to ~1e-7..1e-5. Test losses (evaluation mode) to
            // ~1e-4: the conv biases sit before BatchNorm, their true gradient is zero and both
            // frameworks' rounding noise is scaled by Adam to steps of about +-lr in arbitrary
            // directions, which the running means follow only by 10% (docs/parity.md).
            assert!(
                rel(got.train_loss, f("train_loss")) < 2e-5,
                "{what}: {got:?} vs {want}"
            );
            assert!(
                rel(got.test_loss, f("test_loss")) < 2e-4,
                "{what}: {got:?} vs {want}"
            );
            assert_eq!(got.train_acc, f("train_acc"), "{what}");
            assert_eq!(got.test_acc, f("test_acc"), "{what}");
            assert_eq!(got.lr, f("lr"), "{what}");
        }
    }
}

#[test]
fn pytorch_streams_resume_bit_exact_and_save_the_generator_position() {
    let (ds, dcfg) = reference_data();
    let cfg = TrainConfig {
        batch_size: 32,
        ..torch_cfg(2)
    };
    let spec = spec(16);
    let mut straight = MemorySink::default();
    let mut ns = Net::new(&spec, 10, &Device::Cpu, 0).unwrap();
    fit(&mut ns, &ds, &dcfg, &cfg, 9, None, &mut straight).unwrap();

    let dir = tempfile::tempdir().unwrap();
    // 100 images in batches of 32: 4 steps per epoch; stop mid-epoch 2.
    let mut first = StopSink::after_steps(6);
    let mut n1 = Net::new(&spec, 10, &Device::Cpu, 0).unwrap();
    let out = fit(&mut n1, &ds, &dcfg, &cfg, 9, Some(dir.path()), &mut first).unwrap();
    assert_eq!(out, TrainOutcome::Interrupted { epoch: 2 });
    let state = checkpoint::read_state(dir.path()).unwrap();
    let images_seen = 100 + 64; // epoch 1, then two steps of 32
    assert_eq!(
        state.torch_draws,
        Some(n1.torch_init_draws() + 2 * 512 * images_seen)
    );

    let mut second = MemorySink::default();
    let mut n2 = Net::new(&spec, 10, &Device::Cpu, 5).unwrap();
    let out = fit(&mut n2, &ds, &dcfg, &cfg, 9, Some(dir.path()), &mut second).unwrap();
    assert_eq!(out, TrainOutcome::Completed { epochs: 2 });
    let mut all = first.mem.iterations.clone();
    all.extend(second.iterations);
    assert_eq!(all, straight.iterations);
    let w = |n: &Net| -> Vec<Vec<f32>> {
        n.state_dict()
            .unwrap()
            .into_iter()
            .map(|(_, t)| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .collect()
    };
    assert_eq!(w(&n2), w(&ns));
}

#[test]
fn pytorch_streams_refuse_what_the_reference_cannot_draw() {
    let cfg = TrainConfig {
        max_steps_per_epoch: Some(2),
        ..torch_cfg(1)
    };
    let err = cfg.validate().unwrap_err();
    assert_eq!(err.key, "max_steps_per_epoch");

    // The seed's four augmentations: the reference draws only crop and flip.
    let (ds, _) = reference_data();
    let dcfg = DataConfig::synthetic(100, 50);
    let mut net = Net::new(&ModelSpec::default(), 10, &Device::Cpu, 0).unwrap();
    let err = fit(
        &mut net,
        &ds,
        &dcfg,
        &torch_cfg(1),
        0,
        None,
        &mut MemorySink::default(),
    )
    .unwrap_err();
    assert!(matches!(err, TrainError::Data(_)), "{err:?}");
    assert!(err.to_string().contains("data.augment"), "{err}");
}

#[test]
fn the_default_streams_stay_out_of_the_serialized_table() {
    // Trial ids hash the serialized [train] table: the key's default must not change them.
    let text = toml::to_string(&TrainConfig::default()).unwrap();
    assert!(!text.contains("random_streams"), "{text}");
    let text = toml::to_string(&torch_cfg(1)).unwrap();
    assert!(text.contains("random_streams = \"pytorch\""), "{text}");
    let back: TrainConfig = toml::from_str(&text).unwrap();
    assert_eq!(back.random_streams, RandomStreams::Pytorch);
}
