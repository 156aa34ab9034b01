//! Paired by design: trials of the same seed in different variants draw the same training
//! batches (the same images in the same order, with the same crops, flips, color jitter and
//! rotations), whatever their module and parameter count. The report's paired analysis
//! rests on this (docs/report.md, "Pairing").
//!
//! Each trial is prepared exactly as `ablate trial` prepares it: the experiment is expanded by
//! the runner, the data and seeds come from `commands::trial::trial_data`, the network is
//! built from the init seed, and the batches come from the loader `fit` trains on
//! (`ablate_model::train::train_loader`).

use std::path::Path;

use ablate_model::train::train_loader;
use ablate_model::Net;
use ablate_runner::commands::trial::trial_data;
use ablate_runner::config::{Experiment, Trial};
use candle_core::Device;
use sha2::{Digest, Sha256};

/// Baseline, SE and CBAM on synthetic data with every augmentation (or PyTorch's streams).
fn experiment(extra_train: &str, augment: &str) -> Experiment {
    let text = format!(
        "name = \"pairing\"\nseeds = [3, 4]\n\
         [data]\ndataset = \"synthetic\"\nsynthetic_train = 300\nsynthetic_test = 20\naugment = {augment}\n\
         [train]\nepochs = 2\nbatch_size = 64\n{extra_train}\n\
         [[grid]]\n\"model.attention\" = [\"none\", \"se\", \"cbam\"]\n"
    );
    Experiment::parse(Path::new("pairing.toml"), &text, &[]).expect("valid experiment")
}

/// The network's parameter count and a digest of every batch of two epochs (images, labels,
/// indices), as the trial would train on them.
fn prepare(trial: &Trial) -> (u64, Vec<u8>) {
    let (data, seeds) = trial_data(&trial.config, trial.seed).expect("data");
    let net = Net::new(
        &trial.config.model,
        data.num_classes(),
        &Device::Cpu,
        seeds.init,
    )
    .expect("net");
    let loader = train_loader(
        &data.train,
        &trial.config.data,
        &trial.config.train,
        seeds.order,
    );
    let mut h = Sha256::new();
    for epoch in 0..u64::from(trial.config.train.epochs) {
        for b in loader.epoch(epoch) {
            for x in &b.images {
                h.update(x.to_le_bytes());
            }
            for l in &b.labels {
                h.update(l.to_le_bytes());
            }
            for i in &b.indices {
                h.update((*i as u64).to_le_bytes());
            }
        }
    }
    (net.param_count(), h.finalize().to_vec())
}

fn check_paired(e: &Experiment) {
    let trials = e.trials();
    assert_eq!(trials.len(), 6);
    for seed in [3, 4] {
        let same_seed: Vec<(u64, Vec<u8>)> = trials
            .iter()
            .filter(|t| t.seed == seed)
            .map(prepare)
            .collect();
        assert_eq!(same_seed.len(), 3);
        // Three different networks...
        let mut params: Vec<u64> = same_seed.iter().map(|p| p.0).collect();
        params.dedup();
        assert_eq!(
            params.len(),
            3,
            "baseline, SE and CBAM differ in size: {params:?}"
        );
        // ...on the same batches.
        assert!(
            same_seed.iter().all(|p| p.1 == same_seed[0].1),
            "seed {seed}: the variants drew different batches"
        );
    }
    // Another seed, other batches: the digest is not blind.
    let a = prepare(trials.iter().find(|t| t.seed == 3).unwrap());
    let b = prepare(trials.iter().find(|t| t.seed == 4).unwrap());
    assert_ne!(a.1, b.1);
}

#[test]
fn same_seed_same_batches_with_every_augmentation() {
    check_paired(&experiment(
        "",
        "[\"crop\", \"flip\", \"color_jitter\", \"rotate\"]",
    ));
}

#[test]
fn same_seed_same_batches_with_pytorch_streams() {
    check_paired(&experiment(
        "random_streams = \"pytorch\"",
        "[\"crop\", \"flip\"]",
    ));
}

#[test]
fn same_seed_same_batches_when_only_the_order_varies() {
    // seed_varies = "order": the init seed is fixed, the batches still pair by seed.
    check_paired(&experiment(
        "seed_varies = \"order\"\nfixed_seed = 9",
        "[\"crop\", \"flip\", \"color_jitter\"]",
    ));
}

/// A digest of the network's initial weights.
fn weights(trial: &Trial) -> Vec<u8> {
    let (data, seeds) = trial_data(&trial.config, trial.seed).expect("data");
    let net = Net::new(
        &trial.config.model,
        data.num_classes(),
        &Device::Cpu,
        seeds.init,
    )
    .expect("net");
    let mut h = Sha256::new();
    for (name, t) in net.state_dict().expect("state dict") {
        h.update(name.as_bytes());
        for x in t.flatten_all().unwrap().to_vec1::<f32>().unwrap() {
            h.update(x.to_le_bytes());
        }
    }
    h.finalize().to_vec()
}

/// One source at a time: with `seed_varies = "init"` two seeds share the batches and differ
/// in the weights; with `"order"` the reverse; with `"sample"` (a bootstrap) the weights
/// are shared and the batches, drawn from another sample, differ.
#[test]
fn each_seed_source_varies_alone() {
    let seeds_of = |extra: &str, data: &str| -> (bool, bool) {
        let text = format!(
            "name = \"sources\"\nseeds = [3, 4]\n\
             [data]\ndataset = \"synthetic\"\nsynthetic_train = 300\nsynthetic_test = 20\naugment = [\"crop\", \"flip\"]\n{data}\n\
             [train]\nepochs = 1\nbatch_size = 64\n{extra}\n"
        );
        let e = Experiment::parse(Path::new("sources.toml"), &text, &[]).expect("valid");
        let t = e.trials();
        assert_eq!(t.len(), 2);
        let same_batches = prepare(&t[0]).1 == prepare(&t[1]).1;
        let same_weights = weights(&t[0]) == weights(&t[1]);
        (same_batches, same_weights)
    };
    assert_eq!(seeds_of("", ""), (false, false));
    assert_eq!(seeds_of("seed_varies = \"init\"", ""), (true, false));
    assert_eq!(seeds_of("seed_varies = \"order\"", ""), (false, true));
    assert_eq!(
        seeds_of("seed_varies = \"sample\"", "resample = \"bootstrap\""),
        (false, true)
    );
    // With the sample fixed, a bootstrap does not change the batches of an init-only seed.
    assert_eq!(
        seeds_of("seed_varies = \"init\"", "resample = \"bootstrap\""),
        (true, false)
    );
}
