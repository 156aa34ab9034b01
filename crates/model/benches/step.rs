//! Training step (train-mode forward, cross-entropy, backward, Adam update through
//! `Trainer::step`) and inference (eval-mode forward) of the seed CNN and SE r=16, at batch 64
//! and 128, with the kernels `Net::new` picks (the fast CPU kernels by default;
//! `ABLATE_KERNELS=reference cargo bench -p ablate-model --bench step` for plain candle ops).
//! Throughput is reported in images/s.
//!
//! `cargo bench -p ablate-model --bench step`; side by side with PyTorch:
//! `scripts/bench-vs-torch.sh`. The global allocator is mimalloc, as in the `ablate` binary.

use std::time::Duration;

use ablate_model::layers::Mode;
use ablate_model::train::{TrainConfig, Trainer};
use ablate_model::{AttentionKind, ModelSpec, Net};
use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[global_allocator]
static GLOBAL: ablate_model::allocator::Allocator = ablate_model::allocator::Allocator;

fn batch(n: usize, device: &Device) -> (Tensor, Tensor) {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let x: Vec<f32> = (0..n * 3 * 32 * 32)
        .map(|_| rng.random::<f32>() * 2.0 - 1.0)
        .collect();
    let y: Vec<u32> = (0..n).map(|_| rng.random_range(0..10)).collect();
    (
        Tensor::from_vec(x, (n, 3, 32, 32), device).expect("input tensor"),
        Tensor::from_vec(y, n, device).expect("label tensor"),
    )
}

fn models() -> [(&'static str, ModelSpec); 2] {
    [
        ("baseline", ModelSpec::default()),
        (
            "se_r16",
            ModelSpec {
                attention: AttentionKind::Se,
                reduction: 16,
                ..ModelSpec::default()
            },
        ),
    ]
}

fn net(spec: &ModelSpec) -> Net {
    Net::new(spec, 10, &Device::Cpu, 0).expect("model")
}

fn train(c: &mut Criterion) {
    ablate_model::allocator::configure();
    let mut group = c.benchmark_group("step/train");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));
    for n in [64, 128] {
        let (x, y) = batch(n, &Device::Cpu);
        group.throughput(Throughput::Elements(n as u64));
        for (name, spec) in models() {
            let net = net(&spec);
            let mut trainer = Trainer::new(&net, &TrainConfig::default(), 0).expect("trainer");
            group.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter(|| trainer.step(&net, &x, &y).expect("train step"))
            });
        }
    }
    group.finish();
}

fn infer(c: &mut Criterion) {
    let mut group = c.benchmark_group("step/infer");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for n in [64, 128] {
        let (x, _) = batch(n, &Device::Cpu);
        group.throughput(Throughput::Elements(n as u64));
        for (name, spec) in models() {
            let net = net(&spec);
            group.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter(|| net.forward(&x, Mode::Eval).expect("forward"))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, train, infer);
criterion_main!(benches);
