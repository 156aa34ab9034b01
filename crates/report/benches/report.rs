//! Benchmark: the report of a large synthetic sweep, 100 trials (20 variants
//! x 5 seeds) x 50 epochs x 800 iterations = 4 million iteration rows, with
//! classes, gates, samples and feature maps. Goal: a few seconds.
//!
//! Run with `cargo bench -p ablate-report`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use ablate_report::{generate, ReportOptions};
use common::{Spec, VariantSpec};
use criterion::{criterion_group, criterion_main, Criterion};

fn large_spec() -> Spec {
    let mut variants = vec![VariantSpec {
        label: "baseline".into(),
        attention: "none".into(),
        reduction: None,
        effect: 0.0,
        extra_params: 0,
    }];
    for attention in ["se", "eca", "cbam", "spatial"] {
        for r in [2i64, 4, 8, 16, 32] {
            if variants.len() == 20 {
                break;
            }
            variants.push(VariantSpec {
                label: format!("model.attention={attention} model.reduction={r}"),
                attention: attention.into(),
                reduction: Some(r),
                effect: 0.002 * (r as f64).log2(),
                extra_params: 100_000 / r as u64,
            });
        }
    }
    Spec {
        name: "bench".into(),
        variants,
        seeds: vec![1, 2, 3, 4, 5],
        epochs: 50,
        iters_per_epoch: 800,
        overrides: vec![(3, 2, "failed".into(), Some("error: boom".into()))],
        inside: true,
        samples: 4,
        classes: common::CLASSES.len(),
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    common::write_sweep(dir.path(), &large_spec());
    let opts = ReportOptions::default();
    let mut g = c.benchmark_group("report");
    g.sample_size(10).measurement_time(Duration::from_secs(40));
    g.bench_function("100 trials x 50 epochs x 800 iterations", |b| {
        b.iter(|| generate(dir.path(), &opts).expect("report"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
