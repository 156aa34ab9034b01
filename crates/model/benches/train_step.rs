//! One training step (train-mode forward, cross-entropy, backward, Adam update)
//! at batch 64 on 32x32 inputs, for the seed CNN and SE r=16.
//!
//! `cargo bench -p ablate-model --bench train_step` (throughput in images/s);
//! compare with `python3 ../shared/reference/torch_seed.py bench`.

use std::time::Duration;

use ablate_model::train::{TrainConfig, Trainer};
use ablate_model::{AttentionKind, ModelSpec, Net};
use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BATCH: usize = 64;

fn batch(device: &Device) -> (Tensor, Tensor) {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let x: Vec<f32> = (0..BATCH * 3 * 32 * 32)
        .map(|_| rng.random::<f32>() * 2.0 - 1.0)
        .collect();
    let y: Vec<u32> = (0..BATCH).map(|_| rng.random_range(0..10)).collect();
    (
        Tensor::from_vec(x, (BATCH, 3, 32, 32), device).unwrap(),
        Tensor::from_vec(y, BATCH, device).unwrap(),
    )
}

fn train_step(c: &mut Criterion) {
    let device = Device::Cpu;
    let (x, y) = batch(&device);
    let mut group = c.benchmark_group("train_step");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(BATCH as u64));
    for (name, spec) in [
        ("baseline", ModelSpec::default()),
        (
            "se_r16",
            ModelSpec {
                attention: AttentionKind::Se,
                reduction: 16,
                ..ModelSpec::default()
            },
        ),
    ] {
        let net = Net::new(&spec, 10, &device, 0).unwrap();
        let mut trainer = Trainer::new(&net, &TrainConfig::default(), 0).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| trainer.step(&net, &x, &y).unwrap());
        });
    }
    group.finish();
}

criterion_group!(benches, train_step);
criterion_main!(benches);
