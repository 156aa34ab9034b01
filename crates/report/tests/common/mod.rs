//! A deterministic synthetic sweep written through the results schema (`ablate_schema`,
//! docs/results.md), for the tests and the benchmark.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use ablate_schema::tables::{self, TableDef};
use ablate_schema::{
    AxisValue, ClassLine, EpochLine, FeatureMap, GateBlock, IterationLine, SampleImage, TrialRow,
    TrialState,
};
use polars::prelude::DataFrame;

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
    /// Number of classes: 10 are CIFAR-10's names, any other count `class00`, `class01`, ...
    pub classes: usize,
}

impl Spec {
    /// The name of class `ci`.
    pub fn class_name(&self, ci: usize) -> String {
        if self.classes == CLASSES.len() {
            CLASSES[ci].to_string()
        } else {
            format!("class{ci:02}")
        }
    }
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
        classes: CLASSES.len(),
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

fn write(dir: &Path, table: &'static TableDef, df: Result<DataFrame, ablate_schema::SchemaError>) {
    let mut df = df.expect("a frame of the schema");
    ablate_schema::write_table(dir, table, &mut df).expect("write parquet");
}

/// One trial of the sweep and what it reached.
struct Fixture {
    row: TrialRow,
    variant: usize,
    /// Test accuracy it reaches at the last planned epoch.
    final_acc: f64,
}

fn trial_rows(spec: &Spec) -> Vec<Fixture> {
    let mut out = Vec::new();
    for (vi, v) in spec.variants.iter().enumerate() {
        for &seed in &spec.seeds {
            let (status, error) = spec
                .overrides
                .iter()
                .find(|o| o.0 == vi && o.1 == seed)
                .map(|o| (o.2.parse().expect("a trial status"), o.3.clone()))
                .unwrap_or((TrialState::Completed, None));
            let noise = (unit(vi as u64, seed, 7) - 0.5) * 0.01;
            let final_acc = 0.70 + v.effect + noise;
            let done = status == TrialState::Completed;
            let epochs_done = match status {
                TrialState::Completed => spec.epochs,
                TrialState::Pending => 0,
                _ => spec.epochs.min(1),
            };
            let mut axes = BTreeMap::new();
            if let Some(r) = v.reduction {
                axes.insert(
                    "model.attention".into(),
                    AxisValue::Str(v.attention.clone()),
                );
                axes.insert("model.reduction".into(), AxisValue::Int(r));
            }
            let row = TrialRow {
                experiment: spec.name.clone(),
                trial_id: format!("{:012x}", (vi as u64 + 1) * 0x1000_0000 + seed),
                variant_id: format!("{:012x}", (vi as u64 + 1) * 0xabc),
                variant: v.label.clone(),
                seed,
                attention: v.attention.clone(),
                axes,
                status,
                attempts: 1,
                params: Some(545_098 + v.extra_params),
                macs: Some(39_648_256 + v.extra_params * 3),
                epochs_planned: spec.epochs,
                epochs_done,
                final_test_acc: done.then_some(final_acc),
                best_test_acc: done.then_some(final_acc + 0.002),
                final_test_loss: done.then_some(1.0 - final_acc),
                train_seconds: 10.0 * epochs_done as f64,
                images_per_sec: done.then_some(5000.0 - 100.0 * vi as f64),
                device: Some("cpu".into()),
                device_name: Some("Synthetic CPU".into()),
                started_at: Some("2026-01-01T00:00:00Z".into()),
                ended_at: (status != TrialState::Running).then(|| "2026-01-01T01:00:00Z".into()),
                exit_code: match status {
                    TrialState::Completed => Some(0),
                    TrialState::Failed | TrialState::Diverged => Some(1),
                    _ => None,
                },
                error,
                config: "[model]\n".into(),
            };
            out.push(Fixture {
                row,
                variant: vi,
                final_acc,
            });
        }
    }
    out
}

/// The epochs and iterations a trial reached: accuracy rising to its final value, loss falling.
fn curves(spec: &Spec, t: &Fixture) -> (Vec<EpochLine>, Vec<IterationLine>) {
    let (mut epochs, mut its) = (Vec::new(), Vec::new());
    for e in 1..=t.row.epochs_done {
        let progress = e as f64 / spec.epochs as f64;
        let acc = t.final_acc * (0.6 + 0.4 * progress);
        let seconds = 10.0 + t.variant as f64;
        epochs.push(EpochLine {
            epoch: e,
            train_loss: 2.3 * (1.0 - 0.6 * progress),
            train_acc: acc + 0.03,
            test_loss: 2.3 * (1.0 - 0.55 * progress),
            test_acc: acc,
            lr: 0.1 * (1.0 - progress) + 0.001,
            seconds,
            images_per_sec: 50_000.0 / seconds,
        });
        for s in 0..spec.iters_per_epoch {
            let it = (e - 1) as u64 * spec.iters_per_epoch as u64 + s as u64;
            let total = (spec.epochs * spec.iters_per_epoch) as f64;
            let noise = unit(it, t.row.seed, t.variant as u64) * 0.3;
            its.push(IterationLine {
                epoch: e,
                step: s,
                iteration: it,
                loss: (2.3 * (-(it as f64) / total * 1.5).exp() + noise) as f32
                    - 0.02 * t.variant as f32,
            });
        }
    }
    (epochs, its)
}

/// Per-class results of a completed trial: accuracy spread around its final accuracy (from
/// -0.09 to +0.09 over the classes), the errors split over two other classes. With other than
/// 10 classes, variant `v` also gains `v * class_gain(ci)` on class `ci`, so classes rank
/// differently by the gain over the baseline.
fn classes(spec: &Spec, t: &Fixture) -> Vec<ClassLine> {
    let n = spec.classes;
    let step = 9.0 / (n as f64 - 1.0).max(1.0);
    (0..n)
        .map(|ci| {
            let total = 1000u64;
            let spread = (ci as f64 - (n as f64 - 1.0) / 2.0) * 0.02 * step;
            let gain = if n == CLASSES.len() {
                0.0
            } else {
                t.variant as f64 * class_gain(ci)
            };
            let acc = (t.final_acc + spread + gain).clamp(0.0, 1.0);
            let correct = (acc * total as f64).round() as u64;
            let mut row = vec![0u64; n];
            row[ci] = correct;
            let wrong = total - correct;
            let other = (ci + 1 + t.variant) % n;
            let other = if other == ci { (ci + 2) % n } else { other };
            row[other] += wrong - wrong / 3;
            row[(ci + 5) % n] += wrong / 3;
            ClassLine {
                class_index: ci as u32,
                class: spec.class_name(ci),
                correct,
                total,
                confusion: row,
            }
        })
        .collect()
}

/// A class's extra accuracy per variant index with other than 10 classes: 0.001 x
/// `(37 ci) mod 100`, a shuffle of 0 to 0.099 over the first 100 classes.
pub fn class_gain(ci: usize) -> f64 {
    0.001 * ((ci * 37) % 100) as f64
}

/// Mean gates of a channel-attention trial: early blocks class-agnostic, late blocks
/// class-specific.
fn gates(spec: &Spec) -> Vec<GateBlock> {
    BLOCKS
        .iter()
        .enumerate()
        .map(|(bi, (channels, _))| GateBlock {
            block: bi as u32 + 1,
            mean_gate: (0..spec.classes as u64)
                .map(|ci| {
                    (0..*channels as u64)
                        .map(|ch| {
                            let base = 0.5 + 0.3 * (ch as f64 * 0.37).sin();
                            let spread = 0.15 * bi as f64 * (unit(ci, ch, bi as u64) - 0.5);
                            (base + spread).clamp(0.0, 1.0) as f32
                        })
                        .collect()
                })
                .collect(),
        })
        .collect()
}

/// The sample images of a trial (a coloured disc on a gradient, recognisable when viewed) and
/// the first 9 channels of each block's maps on them.
fn inside(spec: &Spec, t: &Fixture) -> (Vec<SampleImage>, Vec<FeatureMap>) {
    let (mut samples, mut maps) = (Vec::new(), Vec::new());
    for s in 0..spec.samples {
        let ci = (s * 3 % 10) as usize;
        let mut px = Vec::with_capacity(3 * 32 * 32);
        for c in 0..3u32 {
            for y in 0..32u32 {
                for x in 0..32u32 {
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
        samples.push(SampleImage {
            sample: s,
            class_index: ci as u32,
            class: spec.class_name(ci),
            predicted: if (s + t.variant as u32).is_multiple_of(3) {
                (ci as u32 + 1) % 10
            } else {
                ci as u32
            },
            height: 32,
            width: 32,
            pixels: px,
        });
        for (bi, (channels, size)) in BLOCKS.iter().enumerate() {
            for ch in 0..(*channels).min(9) {
                let values = (0..size * size)
                    .map(|i| {
                        let (y, x) = ((i / size) as f32, (i % size) as f32);
                        ((x * (ch + 1) as f32 * 0.3).sin() + (y * (bi + 1) as f32 * 0.2).cos())
                            * (1.0 + t.variant as f32)
                    })
                    .collect();
                maps.push(FeatureMap {
                    sample: s,
                    block: bi as u32 + 1,
                    channel: ch,
                    height: *size,
                    width: *size,
                    values,
                });
            }
        }
    }
    (samples, maps)
}

/// Writes every Parquet file of the spec into `dir`.
pub fn write_sweep(dir: &Path, spec: &Spec) {
    std::fs::create_dir_all(dir).expect("create dir");
    let trials = trial_rows(spec);
    let rows: Vec<TrialRow> = trials.iter().map(|t| t.row.clone()).collect();
    write(dir, &tables::TRIALS, ablate_schema::trials_frame(&rows));
    let curves: Vec<_> = trials.iter().map(|t| curves(spec, t)).collect();
    let id = |i: usize| trials[i].row.trial_id.as_str();
    let epochs: Vec<_> = (0..trials.len())
        .map(|i| (id(i), &curves[i].0[..]))
        .collect();
    let its: Vec<_> = (0..trials.len())
        .map(|i| (id(i), &curves[i].1[..]))
        .collect();
    write(dir, &tables::EPOCHS, ablate_schema::epochs_frame(&epochs));
    write(
        dir,
        &tables::ITERATIONS,
        ablate_schema::iterations_frame(&its),
    );

    // The runner writes the looking-inside tables from completed trials only.
    let completed: Vec<&Fixture> = trials
        .iter()
        .filter(|t| t.row.status == TrialState::Completed)
        .collect();
    if !spec.inside || completed.is_empty() {
        return;
    }
    let per_class: Vec<Vec<ClassLine>> = completed.iter().map(|t| classes(spec, t)).collect();
    let gate_blocks = gates(spec);
    let looked: Vec<_> = completed.iter().map(|t| inside(spec, t)).collect();
    let ids = || completed.iter().map(|t| t.row.trial_id.as_str());
    let classes: Vec<_> = ids().zip(&per_class).map(|(i, c)| (i, &c[..])).collect();
    let gated: Vec<_> = completed
        .iter()
        .filter(|t| spec.variants[t.variant].attention != "none")
        .map(|t| (t.row.trial_id.as_str(), &gate_blocks[..]))
        .collect();
    let samples: Vec<_> = ids().zip(&looked).map(|(i, l)| (i, &l.0[..])).collect();
    let maps: Vec<_> = ids().zip(&looked).map(|(i, l)| (i, &l.1[..])).collect();
    write(
        dir,
        &tables::CLASSES,
        ablate_schema::classes_frame(&classes),
    );
    write(dir, &tables::GATES, ablate_schema::gates_frame(&gated));
    write(
        dir,
        &tables::SAMPLES,
        ablate_schema::samples_frame(&samples),
    );
    write(
        dir,
        &tables::FEATURE_MAPS,
        ablate_schema::feature_maps_frame(&maps),
    );
}
