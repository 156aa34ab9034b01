//! The training batches of a run: the loader [`fit`](fn@super::fit) draws from.
//!
//! It is built from the training images, the `[data]` table (augmentation, normalization),
//! the batch size, the random streams and the seed, and from nothing else: not the network.
//! Trials of different variants (different modules, parameter counts, initializations) with
//! the same seed and data settings therefore see the same images in the same order with the
//! same crops, flips, jitter and rotations: their results are paired by design (common
//! random numbers), which the report's paired analysis relies on;
//! `crates/runner/tests/pairing.rs` checks it for the baseline, SE and CBAM.

use std::sync::Arc;

use ablate_data::{Augment, DataConfig, ImageSet, Loader, LoaderConfig, Normalize};

use super::config::TrainConfig;

/// The shuffled, augmented training loader of a run with `seed` (the data-order seed).
pub fn train_loader(
    train: &ImageSet,
    data_cfg: &DataConfig,
    cfg: &TrainConfig,
    seed: u64,
) -> Loader {
    Loader::new(
        Arc::new(train.clone()),
        LoaderConfig {
            batch_size: cfg.batch_size,
            shuffle: true,
            drop_last: false,
            seed,
            augment: Augment::from_config(data_cfg),
            normalize: Normalize::from_config(data_cfg),
            prefetch: 4,
            streams: cfg.random_streams,
        },
    )
}
