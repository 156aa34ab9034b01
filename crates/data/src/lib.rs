//! `ablate-data`: datasets as one in-memory form ([`ImageSet`]: u8 `[N, 3, H, W]`,
//! labels; [`Dataset`]: class names and train/test splits), loaded from
//! CIFAR-10's and CIFAR-100's official binary layouts (downloaded and MD5-checked when
//! missing; [`cifar`], [`cifar100`], their shared pieces in [`cifar_bin`]),
//! from image folders (folder or `.tar.gz`, decoded in parallel and cached), or
//! generated ([`synthetic`]); train-time augmentations with torchvision
//! semantics ([`augment`]); and a [`Loader`] that yields normalized f32
//! batches, shuffled per epoch from a seeded stream and augmented in parallel
//! on a background thread.
//!
//! This crate does not depend on any tensor library: batches are plain
//! `Vec<f32>`. A batch depends only on (seed, epoch, batch index), never on the
//! number of threads or on timing.

pub mod augment;
pub mod cifar;
pub mod cifar100;
pub mod cifar_bin;
pub mod config;
pub mod error;
pub mod folder;
pub mod imageset;
pub mod info;
pub mod loader;
pub mod resample;
mod rng;
pub mod seeds;
pub mod synthetic;
pub mod torch_rng;

use std::path::PathBuf;

pub use augment::{Augment, AugmentOp, Normalize};
pub use cifar::export_cifar_bin;
pub use config::{
    AugmentKind, Cifar100Labels, DataConfig, DataConfigError, DatasetKind, RandomStreams,
    CIFAR100_MD5, CIFAR100_URL, CIFAR10_MD5, CIFAR10_URL,
};
pub use error::DataError;
pub use folder::{default_cache_dir, CacheUse};
pub use imageset::{Dataset, ImageSet};
pub use info::{info, DataInfo, SplitInfo};
pub use loader::{Batch, Loader, LoaderConfig};
pub use resample::Resample;
pub use seeds::{SeedVaries, TrialSeeds};
pub use torch_rng::TorchGenerator;

/// Loads the dataset of `cfg` (after validating it) and applies `train_limit` /
/// `test_limit` as stratified subsets seeded by `subset_seed`.
pub fn load(cfg: &DataConfig, subset_seed: u64) -> Result<Dataset, DataError> {
    cfg.validate()?;
    let mut ds = load_source(cfg)?.0;
    apply_limits(&mut ds, cfg, subset_seed);
    Ok(ds)
}

/// Loads the dataset of `cfg` without subset limits; also says how the
/// image-folder cache was used ([`CacheUse::Disabled`] for other sources).
pub fn load_source(cfg: &DataConfig) -> Result<(Dataset, CacheUse), DataError> {
    cfg.validate()?;
    match cfg.dataset {
        DatasetKind::Synthetic => Ok((
            synthetic::generate(cfg.synthetic_train, cfg.synthetic_test, cfg.synthetic_seed),
            CacheUse::Disabled,
        )),
        DatasetKind::Cifar10 => {
            let path = cfg
                .resolved_path()
                .unwrap_or_else(|| PathBuf::from(config::CIFAR10_DEFAULT_PATH));
            Ok((
                cifar::load(&path, cfg.download, cfg.resolved_url(), CIFAR10_MD5)?,
                CacheUse::Disabled,
            ))
        }
        DatasetKind::Cifar100 => {
            let path = cfg
                .resolved_path()
                .unwrap_or_else(|| PathBuf::from(config::CIFAR100_DEFAULT_PATH));
            let ds = cifar100::load(
                &path,
                cfg.download,
                cfg.resolved_url(),
                CIFAR100_MD5,
                cfg.cifar100_labels(),
            )?;
            Ok((ds, CacheUse::Disabled))
        }
        DatasetKind::ImageFolder => {
            let path = cfg.path.clone().ok_or_else(|| DataConfigError {
                key: "path".into(),
                problem: "is required for dataset = \"image-folder\"".into(),
            })?;
            let cache = if cfg.cache {
                cfg.cache_dir.clone().or_else(default_cache_dir)
            } else {
                None
            };
            folder::load(&path, cfg.resize, cache.as_deref())
        }
    }
}

/// The number of classes of `cfg`'s data when the configuration alone says it (CIFAR-10: 10,
/// CIFAR-100: 100 fine or 20 coarse, synthetic: 10); `None` for an image folder, whose classes
/// are known once it is read.
pub fn known_classes(cfg: &DataConfig) -> Option<usize> {
    match cfg.dataset {
        DatasetKind::Cifar10 => Some(cifar::CLASSES.len()),
        DatasetKind::Cifar100 => Some(cfg.cifar100_labels().classes()),
        DatasetKind::Synthetic => Some(synthetic::CLASSES.len()),
        DatasetKind::ImageFolder => None,
    }
}

/// Replaces the training split by its resample (`data.resample`, drawn from `sample_seed`;
/// nothing with the default `none`). Apply after [`load`]: the resample is of the
/// `train_limit` subset.
pub fn apply_resample(ds: &mut Dataset, cfg: &DataConfig, sample_seed: u64) {
    if cfg.resample.is_none() {
        return;
    }
    let fraction = cfg.resample_fraction.unwrap_or(resample::DEFAULT_FRACTION);
    ds.train = resample::resample(
        &ds.train,
        ds.classes.len(),
        cfg.resample,
        fraction,
        sample_seed,
    );
}

/// Replaces the splits by their stratified subsets of `train_limit` / `test_limit`.
pub fn apply_limits(ds: &mut Dataset, cfg: &DataConfig, subset_seed: u64) {
    let k = ds.classes.len();
    if let Some(l) = cfg.train_limit {
        ds.train = ds.train.stratified_subset(l, k, subset_seed);
    }
    if let Some(l) = cfg.test_limit {
        // A different stream than train's, so the two subsets are independent.
        ds.test = ds.test.stratified_subset(l, k, subset_seed ^ 0x7465_7374);
    }
}
