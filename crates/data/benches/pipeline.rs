//! The full train pipeline: shuffle, crop + flip + color jitter + rotation,
//! normalize, batch (128), produced on the loader's background thread with
//! rayon inside; and the test pipeline (normalize only) for comparison.
//!
//! Run: `cargo bench -p ablate-data --bench pipeline`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use ablate_data::{synthetic, Augment, DataConfig, Loader, LoaderConfig, Normalize};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const IMAGES: usize = 10_000;

fn pipeline(c: &mut Criterion) {
    let ds = synthetic::generate(IMAGES, 0, 0);
    let set = Arc::new(ds.train);
    let cfg = DataConfig::default();
    let train = Loader::new(
        Arc::clone(&set),
        LoaderConfig {
            batch_size: 128,
            shuffle: true,
            drop_last: false,
            seed: 0,
            augment: Augment::from_config(&cfg),
            normalize: Normalize::from_config(&cfg),
            prefetch: 4,
            streams: ablate_data::RandomStreams::Ablate,
        },
    );
    let eval = Loader::new(
        Arc::clone(&set),
        LoaderConfig::eval(128, Normalize::from_config(&cfg)),
    );
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(IMAGES as u64));
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(5));
    let mut epoch = 0u64;
    g.bench_function("train_epoch_10k_all_augment", |b| {
        b.iter(|| {
            epoch += 1;
            for batch in train.epoch(epoch) {
                black_box(&batch.images);
            }
        })
    });
    g.bench_function("test_epoch_10k_normalize", |b| {
        b.iter(|| {
            for batch in eval.epoch(0) {
                black_box(&batch.images);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
