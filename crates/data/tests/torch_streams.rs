//! `random_streams = "pytorch"` against PyTorch 2.15.0 itself: the fixture
//! `tests/data/torch_streams.json` was written by `scripts/torch-streams.py` from PyTorch's own
//! generator calls and from the reference script's `augment` and normalization
//! (`../shared/reference/torch_seed.py`).

use std::sync::Arc;

use ablate_data::augment::{Augment, AugmentOp, Normalize};
use ablate_data::{ImageSet, Loader, LoaderConfig, RandomStreams, TorchGenerator};
use serde_json::Value;

fn fixture() -> Value {
    let text = include_str!("data/torch_streams.json");
    serde_json::from_str(text).expect("fixture is JSON")
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn u64s(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

#[test]
fn generator_primitives_match_pytorch() {
    let fx = fixture();
    let p = &fx["primitives"];

    let mut g = TorchGenerator::new(7);
    let got: Vec<f32> = (0..6).map(|_| g.uniform_f32(-0.25, 0.5)).collect();
    assert_eq!(got, f32s(&p["uniform_f32_seed7_from_m0.25_to_0.5"]));

    let mut g = TorchGenerator::new(7);
    let got: Vec<f32> = (0..6).map(|_| g.rand_f32()).collect();
    assert_eq!(got, f32s(&p["rand_seed7"]));

    let mut g = TorchGenerator::new(7);
    let got: Vec<u64> = (0..12).map(|_| u64::from(g.randint(9))).collect();
    assert_eq!(got, u64s(&p["randint_0_9_seed7"]));

    let mut g = TorchGenerator::new(7);
    let got: Vec<u64> = g.randperm(10).into_iter().map(|i| i as u64).collect();
    assert_eq!(got, u64s(&p["randperm_10_seed7"]));
    // randperm(10) consumed exactly 9 numbers: the next draws continue the stream.
    let got: Vec<u64> = (0..3).map(|_| u64::from(g.randint(1000))).collect();
    assert_eq!(got, u64s(&p["randint_0_1000_after_randperm_10_seed7"]));

    for (key, prob) in [("bernoulli_0.5_seed7", 0.5), ("bernoulli_0.3_seed7", 0.3)] {
        let mut g = TorchGenerator::new(7);
        let got: Vec<f32> = (0..16)
            .map(|_| if g.bernoulli(prob) { 1.0 } else { 0.0 })
            .collect();
        assert_eq!(got, f32s(&p[key]), "{key}");
    }

    let mut g = TorchGenerator::new((1 << 40) + 7);
    let got: Vec<f32> = (0..2).map(|_| g.uniform_f32(0.0, 1.0)).collect();
    assert_eq!(got, f32s(&p["uniform_f32_seed_2p40_plus_7"]));
}

/// The fixture's synthetic set: pixel `k` of the whole `[n, 3, 32, 32]` array is
/// `(7k + 13 * (k / 3072)) % 256`, label `i % 10`.
fn synthetic_set(n: usize) -> ImageSet {
    let images: Vec<u8> = (0..n * 3072)
        .map(|k| ((7 * k + 13 * (k / 3072)) % 256) as u8)
        .collect();
    ImageSet {
        images,
        labels: (0..n).map(|i| (i % 10) as u8).collect(),
        len: n,
        channels: 3,
        height: 32,
        width: 32,
    }
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

fn torch_loader(seed: u64, n: usize, batch: usize) -> Loader {
    Loader::new(
        Arc::new(synthetic_set(n)),
        LoaderConfig {
            batch_size: batch,
            shuffle: true,
            drop_last: false,
            seed,
            augment: Some(Augment::new(vec![
                AugmentOp::Crop { padding: 4 },
                AugmentOp::Flip { p: 0.5 },
            ])),
            normalize: Normalize {
                mean: [0.4914, 0.4822, 0.4465],
                std: [0.2023, 0.1994, 0.2010],
            },
            prefetch: 2,
            streams: RandomStreams::Pytorch,
        },
    )
}

#[test]
fn batches_are_the_reference_scripts_to_the_bit() {
    let fx = fixture();
    let b = &fx["batches"];
    let seed = b["seed"].as_u64().unwrap();
    let n = b["n"].as_u64().unwrap() as usize;
    let batch = b["batch"].as_u64().unwrap() as usize;
    let loader = torch_loader(seed, n, batch);
    let expected = b["list"].as_array().unwrap();
    let mut k = 0;
    for epoch in 0..b["epochs"].as_u64().unwrap() {
        // Built on the background thread, as training does; epoch 1 is replayed from the seed.
        for got in loader.epoch(epoch) {
            let want = &expected[k];
            assert_eq!(want["epoch"].as_u64().unwrap(), epoch);
            let idx: Vec<u64> = got.indices.iter().map(|&i| i as u64).collect();
            assert_eq!(idx, u64s(&want["indices"]), "order, batch {k}");
            let plane = 3 * 32 * 32;
            for (j, img) in got.images.chunks(plane).enumerate() {
                let s = exact(&want["image_sums"][j]);
                let ws = exact(&want["image_weighted_sums"][j]);
                assert_eq!(seq_sum(img, false), s, "pixels, batch {k} image {j}");
                assert_eq!(seq_sum(img, true), ws, "pixel order, batch {k} image {j}");
            }
            k += 1;
        }
    }
    assert_eq!(k, expected.len());
}

#[test]
fn torch_batches_do_not_depend_on_threads_or_on_where_the_epoch_starts() {
    let loader = torch_loader(5, 150, 32);
    let full: Vec<_> = loader.epoch(2).collect();
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let single: Vec<_> = one.install(|| {
        (0..loader.num_batches())
            .map(|b| loader.batch(2, b))
            .collect()
    });
    assert_eq!(full, single);
    let resumed: Vec<_> = loader.epoch_from(2, 3).collect();
    assert_eq!(&full[3..], &resumed[..]);
    // Epochs differ, and the crops/flips follow the order's positions.
    assert_ne!(loader.order(1), loader.order(2));
    let drawn = loader.crop_flips(2).unwrap();
    assert_eq!(drawn.len(), 150);
    assert!(drawn.iter().all(|d| d.top <= 8 && d.left <= 8));
    assert!(drawn.iter().any(|d| d.flip) && drawn.iter().any(|d| !d.flip));
}

#[test]
fn pytorch_streams_accept_only_the_reference_augmentation() {
    use ablate_data::{AugmentKind, DataConfig};
    let mut cfg = DataConfig::synthetic(10, 10);
    assert!(RandomStreams::Ablate.check_data(&cfg).is_ok());
    let err = RandomStreams::Pytorch.check_data(&cfg).unwrap_err();
    assert_eq!(err.key, "augment");
    assert!(err.to_string().contains("color_jitter"), "{err}");
    cfg.augment = vec![AugmentKind::Crop, AugmentKind::Flip];
    assert!(RandomStreams::Pytorch.check_data(&cfg).is_ok());
    cfg.augment = vec![];
    assert!(RandomStreams::Pytorch.check_data(&cfg).is_ok());
    cfg.augment = vec![AugmentKind::Flip, AugmentKind::Crop];
    assert!(RandomStreams::Pytorch.check_data(&cfg).is_err());
}
