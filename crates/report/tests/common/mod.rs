//! A deterministic synthetic sweep written in the documented Parquet schema
//! (docs/results.md, version 1), for the tests and the benchmark.

#![allow(dead_code)]

use std::fs::File;
use std::path::Path;

use polars::prelude::*;

/// One variant of the synthetic sweep.
#[derive(Debug, Clone)]
pub struct VariantSpec {
    pub label: String,
    pub attention: String,
    pub reduction: Option<i64>,
    /// Added to the final accuracy (fraction).
    pub effect: f64,
    /// Extra parameters over the baseline.
    pub extra_params: u64,
}

/// The sweep: variants x seeds, some trials forced to another status.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub variants: Vec<VariantSpec>,
    pub seeds: Vec<u64>,
    pub epochs: u32,
    pub iters_per_epoch: u32,
    /// `(variant index, seed, status, error)` overrides.
    pub overrides: Vec<(usize, u64, String, Option<String>)>,
    /// Write classes, gates, samples and feature maps.
    pub inside: bool,
    /// Samples per trial in samples/feature_maps.
    pub samples: u32,
}

pub const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Channels of the three conv blocks and their output sizes.
pub const BLOCKS: [(u32, u32); 3] = [(32, 32), (64, 16), (128, 8)];

/// The fixture of the snapshot tests: baseline, SE r=16, SE r=4 (one failed
/// trial), 3 seeds, 3 epochs, 20 iterations per epoch.
pub fn small_spec() -> Spec {
    Spec {
        name: "fixture".into(),
        variants: vec![
            VariantSpec {
                label: "baseline".into(),
                attention: "none".into(),
                reduction: None,
                effect: 0.0,
                extra_params: 0,
            },
            VariantSpec {
                label: "model.attention=se model.reduction=16".into(),
                attention: "se".into(),
                reduction: Some(16),
                effect: 0.012,
                extra_params: 1_552,
            },
            VariantSpec {
                label: "model.attention=se model.reduction=4".into(),
                attention: "se".into(),
                reduction: Some(4),
                effect: 0.004,
                extra_params: 6_048,
            },
        ],
        seeds: vec![1, 2, 3],
        epochs: 3,
        iters_per_epoch: 20,
        overrides: vec![(
            2,
            3,
            "failed".into(),
            Some(
                "error: out of memory\nthread 'main' panicked at crates/model/src/train.rs:10"
                    .into(),
            ),
        )],
        inside: true,
        samples: 4,
    }
}

/// Deterministic pseudo-random value in [0, 1) from integers (SplitMix64).
pub fn unit(a: u64, b: u64, c: u64) -> f64 {
    let mut z = a
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(b.wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add(c.wrapping_mul(0x94D0_49BB_1331_11EB))
        .wrapping_add(0x2545_F491_4F6C_DD1D);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

fn write(dir: &Path, name: &str, mut df: DataFrame) {
    let path = dir.join(format!("{name}.parquet"));
    let f = File::create(&path).expect("create parquet");
    ParquetWriter::new(f)
        .finish(&mut df)
        .expect("write parquet");
}

fn version(n: usize) -> Column {
    Column::new("schema_version".into(), vec![1u32; n])
}

struct TrialRow {
    trial_id: String,
    variant: usize,
    seed: u64,
    status: String,
    error: Option<String>,
    final_acc: f64,
}

/// Writes every Parquet file of the spec into `dir`.
pub fn write_sweep(dir: &Path, spec: &Spec) {
    std::fs::create_dir_all(dir).expect("create dir");
    let mut rows: Vec<TrialRow> = Vec::new();
    for (vi, v) in spec.variants.iter().enumerate() {
        for &seed in &spec.seeds {
            let (status, error) = spec
                .overrides
                .iter()
                .find(|o| o.0 == vi && o.1 == seed)
                .map(|o| (o.2.clone(), o.3.clone()))
                .unwrap_or(("completed".into(), None));
            let noise = (unit(vi as u64, seed, 7) - 0.5) * 0.01;
            rows.push(TrialRow {
                trial_id: format!("{:012x}", (vi as u64 + 1) * 0x1000_0000 + seed),
                variant: vi,
                seed,
                status,
                error,
                final_acc: 0.70 + v.effect + noise,
            });
        }
    }
    let n = rows.len();
    let done = |r: &TrialRow| r.status == "completed";
    let epochs_done = |r: &TrialRow| match r.status.as_str() {
        "completed" => spec.epochs,
        "pending" => 0,
        _ => spec.epochs.min(1),
    };
    let v = |r: &TrialRow| &spec.variants[r.variant];
    let df = DataFrame::new_infer_height(vec![
        version(n),
        Column::new("experiment".into(), vec![spec.name.as_str(); n]),
        Column::new(
            "trial_id".into(),
            rows.iter().map(|r| r.trial_id.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "variant_id".into(),
            rows.iter()
                .map(|r| format!("{:012x}", (r.variant as u64 + 1) * 0xabc))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "variant".into(),
            rows.iter().map(|r| v(r).label.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "seed".into(),
            rows.iter().map(|r| r.seed).collect::<Vec<_>>(),
        ),
        Column::new(
            "attention".into(),
            rows.iter()
                .map(|r| v(r).attention.clone())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "axis.model.attention".into(),
            rows.iter()
                .map(|r| v(r).reduction.map(|_| v(r).attention.clone()))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "axis.model.reduction".into(),
            rows.iter().map(|r| v(r).reduction).collect::<Vec<_>>(),
        ),
        Column::new(
            "status".into(),
            rows.iter().map(|r| r.status.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "attempts".into(),
            rows.iter().map(|_| 1u32).collect::<Vec<_>>(),
        ),
        Column::new(
            "params".into(),
            rows.iter()
                .map(|r| 545_098u64 + v(r).extra_params)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "macs".into(),
            rows.iter()
                .map(|r| 39_648_256u64 + v(r).extra_params * 3)
                .collect::<Vec<_>>(),
        ),
        Column::new("epochs_planned".into(), vec![spec.epochs; n]),
        Column::new(
            "epochs_done".into(),
            rows.iter().map(epochs_done).collect::<Vec<_>>(),
        ),
        Column::new(
            "final_test_acc".into(),
            rows.iter()
                .map(|r| done(r).then_some(r.final_acc))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "best_test_acc".into(),
            rows.iter()
                .map(|r| done(r).then_some(r.final_acc + 0.002))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "final_test_loss".into(),
            rows.iter()
                .map(|r| done(r).then_some(1.0 - r.final_acc))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "train_seconds".into(),
            rows.iter()
                .map(|r| Some(10.0 * epochs_done(r) as f64))
                .collect::<Vec<Option<f64>>>(),
        ),
        Column::new(
            "images_per_sec".into(),
            rows.iter()
                .map(|r| done(r).then_some(5000.0 - 100.0 * r.variant as f64))
                .collect::<Vec<_>>(),
        ),
        Column::new("device".into(), vec!["cpu"; n]),
        Column::new("started_at".into(), vec!["2026-01-01T00:00:00Z"; n]),
        Column::new(
            "ended_at".into(),
            rows.iter()
                .map(|r| (r.status != "running").then_some("2026-01-01T01:00:00Z"))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "exit_code".into(),
            rows.iter()
                .map(|r| match r.status.as_str() {
                    "completed" => Some(0i32),
                    "failed" | "diverged" => Some(1),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "error".into(),
            rows.iter().map(|r| r.error.clone()).collect::<Vec<_>>(),
        ),
        Column::new("config".into(), vec!["[model]\n"; n]),
    ])
    .expect("trials frame");
    write(dir, "trials", df);

    // epochs and iterations.
    let mut e_tid = Vec::new();
    let mut e_epoch = Vec::new();
    let mut e_m: [Vec<f64>; 6] = Default::default();
    let mut i_tid = Vec::new();
    let mut i_epoch = Vec::new();
    let mut i_step = Vec::new();
    let mut i_iter = Vec::new();
    let mut i_loss = Vec::new();
    for r in &rows {
        let ed = epochs_done(r);
        for e in 1..=ed {
            let progress = e as f64 / spec.epochs as f64;
            let acc = r.final_acc * (0.6 + 0.4 * progress);
            e_tid.push(r.trial_id.clone());
            e_epoch.push(e);
            e_m[0].push(2.3 * (1.0 - 0.6 * progress)); // train_loss
            e_m[1].push(acc + 0.03); // train_acc
            e_m[2].push(2.3 * (1.0 - 0.55 * progress)); // test_loss
            e_m[3].push(acc); // test_acc
            e_m[4].push(0.1 * (1.0 - progress) + 0.001); // lr
            e_m[5].push(10.0 + r.variant as f64); // seconds
            for s in 0..spec.iters_per_epoch {
                let it = (e - 1) as u64 * spec.iters_per_epoch as u64 + s as u64;
                let total = (spec.epochs * spec.iters_per_epoch) as f64;
                let noise = unit(it, r.seed, r.variant as u64) * 0.3;
                i_tid.push(r.trial_id.clone());
                i_epoch.push(e);
                i_step.push(s);
                i_iter.push(it);
                i_loss.push(
                    (2.3 * (-(it as f64) / total * 1.5).exp() + noise) as f32
                        - 0.02 * r.variant as f32,
                );
            }
        }
    }
    let ne = e_tid.len();
    let [tl, ta, sl, sa, lr, secs] = e_m;
    let ips: Vec<f64> = secs.iter().map(|s| 50_000.0 / s).collect();
    let df = DataFrame::new_infer_height(vec![
        version(ne),
        Column::new("trial_id".into(), e_tid),
        Column::new("epoch".into(), e_epoch),
        Column::new("train_loss".into(), tl),
        Column::new("train_acc".into(), ta),
        Column::new("test_loss".into(), sl),
        Column::new("test_acc".into(), sa),
        Column::new("lr".into(), lr),
        Column::new("seconds".into(), secs),
        Column::new("images_per_sec".into(), ips),
    ])
    .expect("epochs frame");
    write(dir, "epochs", df);
    let ni = i_tid.len();
    let df = DataFrame::new_infer_height(vec![
        version(ni),
        Column::new("trial_id".into(), i_tid),
        Column::new("epoch".into(), i_epoch),
        Column::new("step".into(), i_step),
        Column::new("iteration".into(), i_iter),
        Column::new("loss".into(), i_loss),
    ])
    .expect("iterations frame");
    write(dir, "iterations", df);

    if !spec.inside {
        return;
    }
    let completed: Vec<&TrialRow> = rows.iter().filter(|r| done(r)).collect();
    if completed.is_empty() {
        // The runner writes these files from completed trials only.
        return;
    }

    // classes.
    let (mut c_tid, mut c_idx, mut c_name, mut c_acc, mut c_cor, mut c_tot, mut c_conf) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for r in &completed {
        for (ci, name) in CLASSES.iter().enumerate() {
            let total = 1000u64;
            let acc = (r.final_acc + (ci as f64 - 4.5) * 0.02).clamp(0.0, 1.0);
            let correct = (acc * total as f64).round() as u64;
            let mut row = vec![0u64; CLASSES.len()];
            row[ci] = correct;
            let wrong = total - correct;
            let other = (ci + 1 + r.variant) % CLASSES.len();
            let other = if other == ci {
                (ci + 2) % CLASSES.len()
            } else {
                other
            };
            row[other] += wrong - wrong / 3;
            row[(ci + 5) % CLASSES.len()] += wrong / 3;
            c_tid.push(r.trial_id.clone());
            c_idx.push(ci as u32);
            c_name.push(name.to_string());
            c_acc.push(correct as f64 / total as f64);
            c_cor.push(correct);
            c_tot.push(total);
            c_conf.push(Series::new("".into(), row));
        }
    }
    let nc = c_tid.len();
    let df = DataFrame::new_infer_height(vec![
        version(nc),
        Column::new("trial_id".into(), c_tid),
        Column::new("class_index".into(), c_idx),
        Column::new("class".into(), c_name),
        Column::new("accuracy".into(), c_acc),
        Column::new("correct".into(), c_cor),
        Column::new("total".into(), c_tot),
        Column::new("confusion".into(), c_conf),
    ])
    .expect("classes frame");
    write(dir, "classes", df);

    // gates (channel attention only).
    let (mut g_tid, mut g_block, mut g_class, mut g_ch, mut g_val) =
        (vec![], vec![], vec![], vec![], vec![]);
    for r in completed
        .iter()
        .filter(|r| spec.variants[r.variant].attention != "none")
    {
        for (bi, (channels, _)) in BLOCKS.iter().enumerate() {
            for ci in 0..CLASSES.len() as u32 {
                for ch in 0..*channels {
                    // Early blocks class-agnostic, late blocks class-specific.
                    let base = 0.5 + 0.3 * (ch as f64 * 0.37).sin();
                    let spread = 0.15 * bi as f64 * (unit(ci as u64, ch as u64, bi as u64) - 0.5);
                    g_tid.push(r.trial_id.clone());
                    g_block.push(bi as u32 + 1);
                    g_class.push(ci);
                    g_ch.push(ch);
                    g_val.push((base + spread).clamp(0.0, 1.0) as f32);
                }
            }
        }
    }
    let ng = g_tid.len();
    let df = DataFrame::new_infer_height(vec![
        version(ng),
        Column::new("trial_id".into(), g_tid),
        Column::new("block".into(), g_block),
        Column::new("class_index".into(), g_class),
        Column::new("channel".into(), g_ch),
        Column::new("mean_gate".into(), g_val),
    ])
    .expect("gates frame");
    write(dir, "gates", df);

    // samples and feature maps.
    let (mut s_tid, mut s_sample, mut s_ci, mut s_class, mut s_pred, mut s_h, mut s_w, mut s_px) = (
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
    );
    let (mut f_tid, mut f_sample, mut f_block, mut f_ch, mut f_h, mut f_w, mut f_vals) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for r in &completed {
        for s in 0..spec.samples {
            let ci = (s * 3 % 10) as usize;
            let mut px = Vec::with_capacity(3 * 32 * 32);
            for c in 0..3u32 {
                for y in 0..32u32 {
                    for x in 0..32u32 {
                        // A coloured disc on a gradient: recognisable when viewed.
                        let d = ((x as f64 - 16.0).powi(2) + (y as f64 - 16.0).powi(2)).sqrt();
                        let v = if d < 9.0 {
                            [220, 60 + 40 * s, 40][c as usize]
                        } else {
                            [x * 4, y * 4, 128 + 3 * s][c as usize]
                        };
                        px.push(v.min(255) as u8);
                    }
                }
            }
            s_tid.push(r.trial_id.clone());
            s_sample.push(s);
            s_ci.push(ci as u32);
            s_class.push(CLASSES[ci].to_string());
            s_pred.push(if (s + r.variant as u32).is_multiple_of(3) {
                (ci as u32 + 1) % 10
            } else {
                ci as u32
            });
            s_h.push(32u32);
            s_w.push(32u32);
            s_px.push(Series::new("".into(), px));
            for (bi, (channels, size)) in BLOCKS.iter().enumerate() {
                for ch in 0..(*channels).min(9) {
                    let vals: Vec<f32> = (0..size * size)
                        .map(|i| {
                            let (y, x) = ((i / size) as f32, (i % size) as f32);
                            ((x * (ch + 1) as f32 * 0.3).sin() + (y * (bi + 1) as f32 * 0.2).cos())
                                * (1.0 + r.variant as f32)
                        })
                        .collect();
                    f_tid.push(r.trial_id.clone());
                    f_sample.push(s);
                    f_block.push(bi as u32 + 1);
                    f_ch.push(ch);
                    f_h.push(*size);
                    f_w.push(*size);
                    f_vals.push(Series::new("".into(), vals));
                }
            }
        }
    }
    let ns = s_tid.len();
    let df = DataFrame::new_infer_height(vec![
        version(ns),
        Column::new("trial_id".into(), s_tid),
        Column::new("sample".into(), s_sample),
        Column::new("class_index".into(), s_ci),
        Column::new("class".into(), s_class),
        Column::new("predicted".into(), s_pred),
        Column::new("height".into(), s_h),
        Column::new("width".into(), s_w),
        Column::new("pixels".into(), s_px),
    ])
    .expect("samples frame");
    write(dir, "samples", df);
    let nf = f_tid.len();
    let df = DataFrame::new_infer_height(vec![
        version(nf),
        Column::new("trial_id".into(), f_tid),
        Column::new("sample".into(), f_sample),
        Column::new("block".into(), f_block),
        Column::new("channel".into(), f_ch),
        Column::new("height".into(), f_h),
        Column::new("width".into(), f_w),
        Column::new("values".into(), f_vals),
    ])
    .expect("feature maps frame");
    write(dir, "feature_maps", df);
}
