//! Expanding an experiment file into trials: parse, validate every
//! combination, dedupe, hash ids. Goal: a 10,000-trial grid well under 1 s
//! (`ablate sweep --dry-run` of a large sweep feels instant).
//!
//! `cargo bench -p ablate-runner --bench expand`

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};

use ablate_runner::config::Experiment;

/// 2,000 variants (model and train keys swept) x 5 seeds = 10,000 trials.
fn grid_2000x5() -> String {
    let reductions: Vec<String> = (1..=25).map(|r| r.to_string()).collect();
    format!(
        r#"
name = "big"
seeds = [0, 1, 2, 3, 4]
[model]
attention = "se"
[[grid]]
"model.reduction" = [{}]
"model.placement" = ["post_conv", "post_bn", "post_relu", "post_pool"]
"model.squeeze" = ["avg", "max"]
"model.gate" = ["sigmoid", "hard_sigmoid"]
"train.lr" = [1e-3, 5e-4, 3e-4, 2e-4, 1e-4]
"#,
        reductions.join(", ")
    )
}

/// 10,000 distinct variants x 1 seed: the worst case (every trial validated).
fn grid_10000x1() -> String {
    let epochs: Vec<String> = (1..=100).map(|e| e.to_string()).collect();
    let batch: Vec<String> = (1..=100).map(|b| (b * 8).to_string()).collect();
    format!(
        r#"
name = "big"
seeds = [0]
[[grid]]
"train.epochs" = [{}]
"train.batch_size" = [{}]
"#,
        epochs.join(", "),
        batch.join(", ")
    )
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("expand");
    g.sample_size(10);
    for (name, text) in [
        ("2000_variants_x5_seeds", grid_2000x5()),
        ("10000_variants_x1_seed", grid_10000x1()),
    ] {
        let e = Experiment::parse(Path::new("big.toml"), &text, &[]).unwrap();
        assert_eq!(e.trials().len(), 10_000);
        g.bench_function(name, |b| {
            b.iter(|| {
                let e = Experiment::parse(Path::new("big.toml"), black_box(&text), &[]).unwrap();
                black_box(e.trials())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
