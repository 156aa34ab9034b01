//! The resume scan over 1,000 completed trial folders (issue 4: well under a second).
//!
//! Each folder holds what a completed trial leaves (status.json, config.toml and metric files);
//! the scan reads only status.json.

use std::hint::black_box;

use ablate_runner::results::records::{files, write_json_atomic, TrialState, TrialStatus};
use ablate_runner::results::scan::scan;
use criterion::{criterion_group, criterion_main, Criterion};

fn sweep_with_completed_trials(n: usize) -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ids: Vec<String> = (0..n).map(|i| format!("{:012x}", i * 7919)).collect();
    for (i, id) in ids.iter().enumerate() {
        let d = dir.path().join("trials").join(id);
        std::fs::create_dir_all(&d).expect("mkdir");
        let mut s = TrialStatus::pending();
        s.status = TrialState::Completed;
        s.attempts = 1;
        s.exit_code = Some(0);
        s.epochs_done = 50;
        s.train_seconds = 1234.5;
        s.device = Some("cpu".into());
        s.started_at = Some("2026-01-01T00:00:00Z".into());
        s.ended_at = Some("2026-01-01T01:00:00Z".into());
        s.params = Some(1_150_602);
        s.macs = Some(38_000_000);
        write_json_atomic(&d.join(files::STATUS), &s).expect("status");
        let config = format!(
            "experiment = \"bench\"\nseed = {seed}\ntrial_id = \"{id}\"\nvariant_id = \"{v:012x}\"\n\
             variant = \"attention=se reduction={r}\"\n\n[axes]\n\"model.reduction\" = {r}\n\n\
             [data]\ndataset = \"cifar10\"\n\n[model]\nattention = \"se\"\nreduction = {r}\n\n\
             [train]\nepochs = 50\n",
            seed = i % 5,
            v = i / 5,
            r = 1 << (i % 5),
        );
        std::fs::write(d.join(files::CONFIG), config).expect("config");
        std::fs::write(d.join(files::EPOCHS), vec![b'x'; 8192]).expect("epochs");
    }
    (dir, ids)
}

fn bench(c: &mut Criterion) {
    let (dir, ids) = sweep_with_completed_trials(1000);
    c.bench_function("resume_scan_1000_completed", |b| {
        b.iter(|| {
            let entries = scan(black_box(dir.path()), black_box(&ids)).expect("scan");
            assert!(entries.iter().all(|e| !e.needs_run()));
            entries
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
