//! `DataConfig`: the `[data]` table of an experiment file.
//!
//! Every key has a default (the seed's pipeline on CIFAR-10), unknown keys are
//! rejected, and [`DataConfig::validate`] checks ranges and names the key at
//! fault, e.g. `data.flip_prob must be in [0, 1], got 1.5`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::resample::Resample;

/// The official CIFAR-10 binary archive.
pub const CIFAR10_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
/// MD5 of [`CIFAR10_URL`]'s archive, as published on the CIFAR-10 page.
pub const CIFAR10_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";
/// The seed's per-channel normalization mean (CIFAR-10 train set, RGB).
pub const CIFAR10_MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
/// The seed's per-channel normalization std.
pub const CIFAR10_STD: [f32; 3] = [0.2023, 0.1994, 0.2010];
/// Default folder of the CIFAR-10 binary dataset (relative to the working directory).
pub const CIFAR10_DEFAULT_PATH: &str = "data/cifar10";
/// The official CIFAR-100 binary archive.
pub const CIFAR100_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz";
/// MD5 of [`CIFAR100_URL`]'s archive, as published on the CIFAR page.
pub const CIFAR100_MD5: &str = "03b5dce01913d631647c71ecec9e9cb8";
/// Default folder of the CIFAR-100 binary dataset (relative to the working directory).
pub const CIFAR100_DEFAULT_PATH: &str = "data/cifar100";
/// CIFAR-100's usual normalization mean (train set, RGB); not a default: `data.mean` stays
/// [`CIFAR10_MEAN`] unless set.
pub const CIFAR100_MEAN: [f32; 3] = [0.5071, 0.4865, 0.4409];
/// CIFAR-100's usual normalization std; not a default (see [`CIFAR100_MEAN`]).
pub const CIFAR100_STD: [f32; 3] = [0.2673, 0.2564, 0.2762];

/// Which source a dataset comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// CIFAR-10 in the official binary layout (folder or `cifar-10-binary.tar.gz`),
    /// downloaded when missing.
    #[default]
    Cifar10,
    /// CIFAR-100 in the official binary layout (folder or `cifar-100-binary.tar.gz`),
    /// downloaded when missing; `data.labels` chooses fine (100) or coarse (20) classes.
    Cifar100,
    /// `train/<class>/*.{png,jpg,jpeg}` and `test/<class>/...`, as a folder or a `.tar.gz`.
    ImageFolder,
    /// A generated, seeded 10-class 32x32 dataset (offline default for smoke runs and CI).
    Synthetic,
}

impl DatasetKind {
    /// The TOML spelling of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Cifar100 => "cifar100",
            DatasetKind::ImageFolder => "image-folder",
            DatasetKind::Synthetic => "synthetic",
        }
    }
}

impl std::fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which of CIFAR-100's labels are the classes (`data.labels`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cifar100Labels {
    /// The 100 classes.
    #[default]
    Fine,
    /// The 20 superclasses.
    Coarse,
}

impl Cifar100Labels {
    /// The TOML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Cifar100Labels::Fine => "fine",
            Cifar100Labels::Coarse => "coarse",
        }
    }

    /// Number of classes: 100 fine, 20 coarse.
    pub const fn classes(self) -> usize {
        match self {
            Cifar100Labels::Fine => 100,
            Cifar100Labels::Coarse => 20,
        }
    }
}

impl std::fmt::Display for Cifar100Labels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a run's random numbers come from (`train.random_streams`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RandomStreams {
    /// Our own keyed ChaCha8 streams: a parameter's initial value depends on (seed, name), an
    /// image's augmentation on (seed, epoch, image), a dropout mask on (seed, iteration). Any
    /// augmentation; batches built in any order on any number of threads.
    #[default]
    Ablate,
    /// PyTorch's CPU generator used as `../shared/reference/torch_seed.py train` uses it
    /// (`crate::torch_rng`): initial weights from `torch.manual_seed(seed)` in `state_dict`
    /// order, then the dropout masks from that stream; the epoch orders, crop offsets and flips
    /// from a second generator seeded with `seed`. A trial then starts from the same weights and
    /// sees the same batches as the reference run with that seed. Needs `data.augment` to be
    /// `["crop", "flip"]` (the reference's augmentation) or `[]`.
    Pytorch,
}

impl RandomStreams {
    /// The TOML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RandomStreams::Ablate => "ablate",
            RandomStreams::Pytorch => "pytorch",
        }
    }

    /// Whether this is the default ([`RandomStreams::Ablate`]); the default is left out of
    /// serialized configs, so trial ids made before the key existed stay the same.
    pub fn is_ablate(&self) -> bool {
        *self == RandomStreams::Ablate
    }

    /// Checks that `data` can be drawn with these streams: PyTorch's draw only the reference
    /// script's crop (then flip) augmentation. The error names the `data` key at fault.
    pub fn check_data(self, data: &DataConfig) -> Result<(), DataConfigError> {
        if self == RandomStreams::Pytorch
            && !(data.augment.is_empty() || data.augment == [AugmentKind::Crop, AugmentKind::Flip])
        {
            let listed: Vec<&str> = data.augment.iter().map(|a| a.as_str()).collect();
            return Err(bad(
                "augment",
                format!(
                    "must be [\"crop\", \"flip\"] or [] with train.random_streams = \"pytorch\" \
                     (the reference script's draws), got {listed:?}"
                ),
            ));
        }
        Ok(())
    }
}

/// One train-time augmentation; applied in the order listed in `data.augment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AugmentKind {
    /// torchvision `RandomCrop(size, padding=crop_padding)`, zero fill.
    Crop,
    /// torchvision `RandomHorizontalFlip(p=flip_prob)`.
    Flip,
    /// torchvision `ColorJitter(brightness, contrast, saturation, hue)`.
    ColorJitter,
    /// torchvision `RandomRotation(rotate_degrees)`, nearest, zero fill.
    Rotate,
}

impl AugmentKind {
    /// The TOML spelling of this augmentation.
    pub fn as_str(self) -> &'static str {
        match self {
            AugmentKind::Crop => "crop",
            AugmentKind::Flip => "flip",
            AugmentKind::ColorJitter => "color_jitter",
            AugmentKind::Rotate => "rotate",
        }
    }
}

/// The `[data]` table of an experiment TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// The source: `cifar10` (default), `cifar100`, `image-folder` or `synthetic`.
    pub dataset: DatasetKind,
    /// cifar10 / cifar100: the folder (default `data/cifar10` / `data/cifar100`) or the
    /// `.tar.gz` archive; image-folder: the folder or `.tar.gz` (required); synthetic: unused.
    pub path: Option<PathBuf>,
    /// cifar10 / cifar100: download the archive when the folder is missing.
    pub download: bool,
    /// cifar10 / cifar100: where to download from (`http(s)://` or `file://`); the default,
    /// CIFAR-10's archive, stands for CIFAR-100's with `dataset = "cifar100"`
    /// ([`DataConfig::resolved_url`]).
    pub url: String,
    /// cifar100: the fine (100, default) or coarse (20) labels. Left out of the serialized
    /// table when absent; an error with another dataset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Cifar100Labels>,
    /// image-folder: resize every image to `resize x resize` (bilinear); without it
    /// images of different sizes are an error.
    pub resize: Option<u32>,
    /// Train-time augmentations, applied in this order (default: the seed's four).
    pub augment: Vec<AugmentKind>,
    /// Zero padding on each side before the random crop back to the image size.
    pub crop_padding: u32,
    /// Probability of a horizontal flip.
    pub flip_prob: f32,
    /// Color jitter strengths: brightness, contrast, saturation (each in [0, 1]), hue (in [0, 0.5]).
    pub color_jitter: [f32; 4],
    /// Rotation range: an angle uniform in `[-rotate_degrees, rotate_degrees]`.
    pub rotate_degrees: f32,
    /// Normalize with `mean`/`std` after scaling pixels to [0, 1].
    pub normalize: bool,
    /// Per-channel mean (RGB), in [0, 1] units.
    pub mean: [f32; 3],
    /// Per-channel std (RGB), in [0, 1] units, each > 0.
    pub std: [f32; 3],
    /// Keep a stratified, seeded subset of at most this many train images.
    pub train_limit: Option<usize>,
    /// Keep a stratified, seeded subset of at most this many test images.
    pub test_limit: Option<usize>,
    /// Resample the training split per trial (`none`, `bootstrap`, `subsample`), drawn from
    /// the sample seed (`train.seed_varies`). Left out of the serialized table when `none`.
    #[serde(skip_serializing_if = "Resample::is_none")]
    pub resample: Resample,
    /// `subsample`: the share of the training split kept, in (0, 1] (default 0.5). Left out
    /// of the serialized table when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resample_fraction: Option<f64>,
    /// synthetic: number of train images.
    pub synthetic_train: usize,
    /// synthetic: number of test images.
    pub synthetic_test: usize,
    /// synthetic: generator seed (the data does not depend on the trial seed).
    pub synthetic_seed: u64,
    /// image-folder: keep decoded arrays in the cache folder.
    pub cache: bool,
    /// image-folder: cache folder; default `$ABLATE_CACHE`, else
    /// `$XDG_CACHE_HOME/ablate`, else `~/.cache/ablate`.
    pub cache_dir: Option<PathBuf>,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dataset: DatasetKind::Cifar10,
            path: None,
            download: true,
            url: CIFAR10_URL.to_string(),
            labels: None,
            resize: None,
            augment: vec![
                AugmentKind::Crop,
                AugmentKind::Flip,
                AugmentKind::ColorJitter,
                AugmentKind::Rotate,
            ],
            crop_padding: 4,
            flip_prob: 0.5,
            color_jitter: [0.2, 0.2, 0.2, 0.1],
            rotate_degrees: 15.0,
            normalize: true,
            mean: CIFAR10_MEAN,
            std: CIFAR10_STD,
            train_limit: None,
            test_limit: None,
            resample: Resample::None,
            resample_fraction: None,
            synthetic_train: 5000,
            synthetic_test: 1000,
            synthetic_seed: 0,
            cache: true,
            cache_dir: None,
        }
    }
}

/// A `[data]` value out of range; the message names the key.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("data.{key} {problem}")]
pub struct DataConfigError {
    /// The key at fault, without the `data.` prefix (e.g. `flip_prob`, `color_jitter[3]`).
    pub key: String,
    /// What is wrong, with the value (e.g. `must be in [0, 1], got 1.5`).
    pub problem: String,
}

fn bad(key: impl Into<String>, problem: impl Into<String>) -> DataConfigError {
    DataConfigError {
        key: key.into(),
        problem: problem.into(),
    }
}

impl DataConfig {
    /// A synthetic configuration of the given sizes (the rest default), handy in tests.
    pub fn synthetic(train: usize, test: usize) -> DataConfig {
        DataConfig {
            dataset: DatasetKind::Synthetic,
            synthetic_train: train,
            synthetic_test: test,
            ..DataConfig::default()
        }
    }

    /// The dataset location: `path`, or the default for CIFAR-10 and CIFAR-100.
    pub fn resolved_path(&self) -> Option<PathBuf> {
        match (&self.path, self.dataset) {
            (Some(p), _) => Some(p.clone()),
            (None, DatasetKind::Cifar10) => Some(PathBuf::from(CIFAR10_DEFAULT_PATH)),
            (None, DatasetKind::Cifar100) => Some(PathBuf::from(CIFAR100_DEFAULT_PATH)),
            (None, _) => None,
        }
    }

    /// Where to download from: `url`, except that the default (CIFAR-10's archive) means
    /// CIFAR-100's archive for `dataset = "cifar100"`.
    pub fn resolved_url(&self) -> &str {
        if self.dataset == DatasetKind::Cifar100 && self.url == CIFAR10_URL {
            CIFAR100_URL
        } else {
            &self.url
        }
    }

    /// The CIFAR-100 labels (`labels`, default fine).
    pub fn cifar100_labels(&self) -> Cifar100Labels {
        self.labels.unwrap_or_default()
    }

    /// Checks every value; the error names the first key at fault.
    pub fn validate(&self) -> Result<(), DataConfigError> {
        self.validate_source()?;
        self.validate_augmentation()?;
        self.validate_normalization()?;
        self.validate_sampling()
    }

    /// The dataset, where it comes from and which labels it uses.
    fn validate_source(&self) -> Result<(), DataConfigError> {
        if self.dataset == DatasetKind::ImageFolder && self.path.is_none() {
            return Err(bad(
                "path",
                "is required for dataset = \"image-folder\" (a folder or a .tar.gz)",
            ));
        }
        if self.labels.is_some() && self.dataset != DatasetKind::Cifar100 {
            return Err(bad(
                "labels",
                format!(
                    "is only used with dataset = \"cifar100\", not \"{}\"",
                    self.dataset
                ),
            ));
        }
        if matches!(self.dataset, DatasetKind::Cifar10 | DatasetKind::Cifar100)
            && !(self.url.starts_with("http://")
                || self.url.starts_with("https://")
                || self.url.starts_with("file://"))
        {
            return Err(bad(
                "url",
                format!(
                    "must start with http://, https:// or file://, got {:?}",
                    self.url
                ),
            ));
        }
        if self.dataset == DatasetKind::Synthetic {
            if self.synthetic_train == 0 {
                return Err(bad("synthetic_train", "must be at least 1, got 0"));
            }
            if self.synthetic_test == 0 {
                return Err(bad("synthetic_test", "must be at least 1, got 0"));
            }
        }
        Ok(())
    }

    /// The resize and the training augmentations.
    fn validate_augmentation(&self) -> Result<(), DataConfigError> {
        if let Some(r) = self.resize {
            if r == 0 || r > 4096 {
                return Err(bad("resize", format!("must be in [1, 4096], got {r}")));
            }
        }
        for (i, a) in self.augment.iter().enumerate() {
            if self.augment[..i].contains(a) {
                return Err(bad("augment", format!("lists {:?} twice", a.as_str())));
            }
        }
        if self.crop_padding > 64 {
            return Err(bad(
                "crop_padding",
                format!("must be in [0, 64], got {}", self.crop_padding),
            ));
        }
        if !(0.0..=1.0).contains(&self.flip_prob) {
            return Err(bad(
                "flip_prob",
                format!("must be in [0, 1], got {}", self.flip_prob),
            ));
        }
        let names = ["brightness", "contrast", "saturation", "hue"];
        for (i, (&v, name)) in self.color_jitter.iter().zip(names).enumerate() {
            let max = if i == 3 { 0.5 } else { 1.0 };
            if !(0.0..=max).contains(&v) {
                return Err(bad(
                    format!("color_jitter[{i}]"),
                    format!("({name}) must be in [0, {max}], got {v}"),
                ));
            }
        }
        if !(0.0..=180.0).contains(&self.rotate_degrees) {
            return Err(bad(
                "rotate_degrees",
                format!("must be in [0, 180], got {}", self.rotate_degrees),
            ));
        }
        Ok(())
    }

    /// The per-channel mean and standard deviation.
    fn validate_normalization(&self) -> Result<(), DataConfigError> {
        for c in 0..3 {
            if !self.mean[c].is_finite() {
                return Err(bad(
                    format!("mean[{c}]"),
                    format!("must be finite, got {}", self.mean[c]),
                ));
            }
            if !(self.std[c].is_finite() && self.std[c] > 0.0) {
                return Err(bad(
                    format!("std[{c}]"),
                    format!("must be finite and > 0, got {}", self.std[c]),
                ));
            }
        }
        Ok(())
    }

    /// The subset limits and the resampling.
    fn validate_sampling(&self) -> Result<(), DataConfigError> {
        if self.train_limit == Some(0) {
            return Err(bad("train_limit", "must be at least 1, got 0"));
        }
        if self.test_limit == Some(0) {
            return Err(bad("test_limit", "must be at least 1, got 0"));
        }
        if let Some(f) = self.resample_fraction {
            if !(f > 0.0 && f <= 1.0) {
                return Err(bad(
                    "resample_fraction",
                    format!("must be in (0, 1], got {f}"),
                ));
            }
            if self.resample != Resample::Subsample {
                return Err(bad(
                    "resample_fraction",
                    "is only used with resample = \"subsample\"",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seed_pipeline() {
        let c = DataConfig::default();
        assert_eq!(c.dataset, DatasetKind::Cifar10);
        assert_eq!(c.augment.len(), 4);
        assert_eq!(c.color_jitter, [0.2, 0.2, 0.2, 0.1]);
        assert_eq!(c.mean, [0.4914, 0.4822, 0.4465]);
        assert_eq!(c.std, [0.2023, 0.1994, 0.2010]);
        c.validate().unwrap();
    }

    #[test]
    fn toml_round_trip_and_unknown_keys() {
        let c: DataConfig = toml::from_str(
            "dataset = \"image-folder\"\npath = \"x.tar.gz\"\naugment = [\"flip\", \"color_jitter\"]\nflip_prob = 0.25\n",
        )
        .unwrap();
        assert_eq!(c.dataset, DatasetKind::ImageFolder);
        assert_eq!(c.augment, vec![AugmentKind::Flip, AugmentKind::ColorJitter]);
        assert_eq!(c.flip_prob, 0.25);
        assert_eq!(c.crop_padding, 4);
        let s = toml::to_string(&c).unwrap();
        let back: DataConfig = toml::from_str(&s).unwrap();
        assert_eq!(back, c);
        let err = toml::from_str::<DataConfig>("flip_probability = 0.5\n").unwrap_err();
        assert!(err.to_string().contains("flip_probability"), "{err}");
        let err = toml::from_str::<DataConfig>("dataset = \"mnist\"\n").unwrap_err();
        assert!(err.to_string().contains("mnist"), "{err}");
    }

    #[test]
    fn validate_names_the_key() {
        let c = DataConfig {
            flip_prob: 1.5,
            ..DataConfig::default()
        };
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "data.flip_prob must be in [0, 1], got 1.5"
        );
        let c = DataConfig {
            color_jitter: [0.2, 0.2, 0.2, 0.7],
            ..DataConfig::default()
        };
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "data.color_jitter[3] (hue) must be in [0, 0.5], got 0.7"
        );
        let c = DataConfig {
            std: [0.2, 0.0, 0.2],
            ..DataConfig::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("data.std[1]"));
        let c = DataConfig {
            dataset: DatasetKind::ImageFolder,
            ..DataConfig::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("data.path is required"));
        let c = DataConfig {
            augment: vec![AugmentKind::Flip, AugmentKind::Flip],
            ..DataConfig::default()
        };
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "data.augment lists \"flip\" twice"
        );
        let c = DataConfig {
            url: "ftp://x".into(),
            ..DataConfig::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("data.url"));
    }

    #[test]
    fn cifar100_labels_url_path_and_classes() {
        let c: DataConfig = toml::from_str("dataset = \"cifar100\"\n").unwrap();
        assert_eq!(c.dataset, DatasetKind::Cifar100);
        assert_eq!(c.cifar100_labels(), Cifar100Labels::Fine);
        assert_eq!(c.resolved_url(), CIFAR100_URL);
        assert_eq!(c.resolved_path(), Some(PathBuf::from("data/cifar100")));
        c.validate().unwrap();
        // Absent labels are left out of the serialized table (trial ids do not change).
        assert!(!toml::to_string(&c).unwrap().contains("labels"));
        assert!(!toml::to_string(&DataConfig::default())
            .unwrap()
            .contains("labels"));
        let c: DataConfig = toml::from_str(
            "dataset = \"cifar100\"\nlabels = \"coarse\"\nurl = \"file:///m.tgz\"\n",
        )
        .unwrap();
        assert_eq!(c.cifar100_labels().classes(), 20);
        assert_eq!(c.resolved_url(), "file:///m.tgz");
        assert!(toml::to_string(&c).unwrap().contains("labels = \"coarse\""));
        let err = toml::from_str::<DataConfig>("labels = \"medium\"\n").unwrap_err();
        assert!(err.to_string().contains("medium"), "{err}");
        let c = DataConfig {
            labels: Some(Cifar100Labels::Coarse),
            ..DataConfig::synthetic(10, 10)
        };
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "data.labels is only used with dataset = \"cifar100\", not \"synthetic\""
        );
        assert_eq!(DataConfig::default().resolved_url(), CIFAR10_URL);
    }
}
