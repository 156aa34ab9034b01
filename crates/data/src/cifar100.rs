//! CIFAR-100 in the official binary layout (Krizhevsky, "Learning Multiple Layers of Features
//! from Tiny Images", 2009; <https://www.cs.toronto.edu/~kriz/cifar.html>): `train.bin`
//! (50,000 records) and `test.bin` (10,000), each a run of 3074-byte records (1 coarse-label
//! byte, 1 fine-label byte, then 1024 R, 1024 G, 1024 B bytes, row-major), and
//! `fine_label_names.txt` (100 names) and `coarse_label_names.txt` (20 superclasses), one name
//! per line.
//!
//! Read from a folder holding `cifar-100-binary/` or the files directly, or from the official
//! archive `cifar-100-binary.tar.gz`; downloaded (MD5-checked, unpacked atomically) when
//! missing. `data.labels` ([`Labels`], defined with the `[data]` table) chooses the fine or the coarse labels; both bytes of
//! every record are checked.

use std::fs;
use std::path::Path;

use crate::cifar_bin::{self, BinLayout, Located, RecordLayout, SIDE};
pub use crate::config::Cifar100Labels as Labels;
use crate::error::DataError;
use crate::imageset::{Dataset, ImageSet};

/// The train file.
pub const TRAIN_FILE: &str = "train.bin";
/// The test file.
pub const TEST_FILE: &str = "test.bin";
/// The fine class names (100 lines).
pub const FINE_NAMES_FILE: &str = "fine_label_names.txt";
/// The coarse class names (20 lines).
pub const COARSE_NAMES_FILE: &str = "coarse_label_names.txt";
/// The folder the official archive unpacks to.
pub const DATA_DIR: &str = "cifar-100-binary";
/// The official archive's file name.
pub const ARCHIVE_NAME: &str = "cifar-100-binary.tar.gz";
/// Number of fine classes (100).
pub const FINE_CLASSES: usize = Labels::Fine.classes();
/// Number of coarse classes (superclasses, 20).
pub const COARSE_CLASSES: usize = Labels::Coarse.classes();

/// CIFAR-100's files.
pub const LAYOUT: BinLayout = BinLayout {
    title: "CIFAR-100",
    name: "cifar100",
    dir: DATA_DIR,
    archive: ARCHIVE_NAME,
    markers: &[TEST_FILE, TRAIN_FILE],
    expected: "cifar-100-binary/, train.bin and test.bin, or cifar-100-binary.tar.gz",
};

/// A CIFAR-100 record: the coarse label byte, the fine label byte, then the pixels.
pub const RECORD: RecordLayout = RecordLayout {
    file_kind: "CIFAR-100 file",
    labels: &["coarse label", "fine label"],
};

/// Classes per label byte, in record order.
const CLASSES_PER_LABEL: [usize; 2] = [COARSE_CLASSES, FINE_CLASSES];

const ALL_FILES: [&str; 4] = [TRAIN_FILE, TEST_FILE, FINE_NAMES_FILE, COARSE_NAMES_FILE];

/// The file holding `labels`' class names.
fn names_file(labels: Labels) -> &'static str {
    match labels {
        Labels::Fine => FINE_NAMES_FILE,
        Labels::Coarse => COARSE_NAMES_FILE,
    }
}

/// The position of `labels`' byte in a record.
fn label_byte(labels: Labels) -> usize {
    match labels {
        Labels::Coarse => 0,
        Labels::Fine => 1,
    }
}

/// Finds the data at `path`: an archive file, a folder with `cifar-100-binary/`, with the
/// files directly, or with `cifar-100-binary.tar.gz`; `None` when there is none.
pub fn locate(path: &Path) -> Option<Located> {
    LAYOUT.locate(path)
}

/// Loads CIFAR-100 with `labels` from `path` (see [`locate`]); when nothing is there and
/// `download` is set, downloads `url` (checked against `md5`) into `path` first.
pub fn load(
    path: &Path,
    download: bool,
    url: &str,
    md5: &str,
    labels: Labels,
) -> Result<Dataset, DataError> {
    match LAYOUT.find_or_fetch(path, download, url, md5)? {
        Located::Dir(d) => read_dir(&d, labels),
        Located::Archive(a) => read_archive(&a, labels),
    }
}

/// Reads the binary layout from a folder holding `train.bin`, `test.bin` and the label names.
pub fn read_dir(dir: &Path, labels: Labels) -> Result<Dataset, DataError> {
    assemble(dir, cifar_bin::read_dir_files(dir, &ALL_FILES)?, labels)
}

/// Reads the binary layout from a `.tar.gz` (the official archive or any archive holding the
/// files, in any folder).
pub fn read_archive(path: &Path, labels: Labels) -> Result<Dataset, DataError> {
    assemble(
        path,
        cifar_bin::read_archive_files(path, &ALL_FILES)?,
        labels,
    )
}

fn assemble(
    root: &Path,
    mut files: cifar_bin::Files,
    labels: Labels,
) -> Result<Dataset, DataError> {
    let names_file = names_file(labels);
    let names = cifar_bin::take(&mut files, names_file).ok_or_else(|| DataError::Missing {
        path: root.to_path_buf(),
        what: format!("{names_file} (the class names of data.labels = \"{labels}\")"),
    })?;
    let classes = cifar_bin::class_names(&names);
    if classes.len() != labels.classes() {
        return Err(DataError::BadLayout {
            path: root.join(names_file),
            problem: format!(
                "{} class names, CIFAR-100 has {} {labels} classes",
                classes.len(),
                labels.classes()
            ),
        });
    }
    let mut split = |name: &str, what: &str| -> Result<ImageSet, DataError> {
        let bytes = cifar_bin::take(&mut files, name).ok_or_else(|| DataError::Missing {
            path: root.to_path_buf(),
            what: format!("{name} (the {what} split)"),
        })?;
        parse_bin(&bytes, &root.join(name), labels)
    };
    let train = split(TRAIN_FILE, "train")?;
    let test = split(TEST_FILE, "test")?;
    Ok(Dataset {
        name: match labels {
            Labels::Fine => "cifar100".into(),
            Labels::Coarse => "cifar100-coarse".into(),
        },
        classes,
        train,
        test,
    })
}

/// Parses the records of one `.bin`, checking both labels, keeping `labels`; `path` is for
/// error messages.
pub fn parse_bin(bytes: &[u8], path: &Path, labels: Labels) -> Result<ImageSet, DataError> {
    RECORD.parse(bytes, path, &CLASSES_PER_LABEL, label_byte(labels))
}

/// One split to write: the images with their fine labels, and each image's coarse label.
#[derive(Debug, Clone, Copy)]
pub struct SplitToWrite<'a> {
    /// 3x32x32 images; their labels are the fine labels.
    pub images: &'a ImageSet,
    /// The coarse label of each image.
    pub coarse: &'a [u8],
}

/// Writes the official layout into `out` (created if needed): `train.bin`, `test.bin` (each
/// file atomically) and the two label-name files. Used to make CIFAR-100 subsets and test
/// fixtures; labels must be in range (100 fine names, 20 coarse names).
pub fn write_dir(
    out: &Path,
    train: SplitToWrite<'_>,
    test: SplitToWrite<'_>,
    fine_names: &[String],
    coarse_names: &[String],
) -> Result<(), DataError> {
    let bad = |problem: String| DataError::Export {
        path: out.to_path_buf(),
        problem,
    };
    if fine_names.len() != FINE_CLASSES || coarse_names.len() != COARSE_CLASSES {
        return Err(bad(format!(
            "{} fine and {} coarse class names; CIFAR-100 has {FINE_CLASSES} and {COARSE_CLASSES}",
            fine_names.len(),
            coarse_names.len()
        )));
    }
    for (split, s) in [("train", &train), ("test", &test)] {
        let set = s.images;
        if (set.channels, set.height, set.width) != (3, SIDE, SIDE) || s.coarse.len() != set.len {
            return Err(bad(format!(
                "the {split} split must be 3x32x32 images with one coarse label each"
            )));
        }
        let fine_ok = set.labels.iter().all(|&l| (l as usize) < FINE_CLASSES);
        let coarse_ok = s.coarse.iter().all(|&l| (l as usize) < COARSE_CLASSES);
        if !(fine_ok && coarse_ok) {
            return Err(bad(format!("a {split} label is out of range")));
        }
    }
    fs::create_dir_all(out).map_err(|e| DataError::io(out, "cannot create folder", e))?;
    for (name, s) in [(TRAIN_FILE, &train), (TEST_FILE, &test)] {
        let label_pairs: Vec<[u8; 2]> = s
            .coarse
            .iter()
            .zip(&s.images.labels)
            .map(|(&c, &f)| [c, f])
            .collect();
        let records = label_pairs
            .iter()
            .enumerate()
            .map(|(i, pair)| (&pair[..], s.images.image(i)));
        cifar_bin::write_records(&out.join(name), records)?;
    }
    cifar_bin::write_class_names(&out.join(FINE_NAMES_FILE), fine_names)?;
    cifar_bin::write_class_names(&out.join(COARSE_NAMES_FILE), coarse_names)
}

/// Downloads the archive at `url` (`http(s)://` or `file://`), checks its MD5 against `md5`
/// (hex), and unpacks it into the folder `dest` atomically.
pub fn fetch(url: &str, md5: &str, dest: &Path) -> Result<(), DataError> {
    LAYOUT.fetch(url, md5, dest)
}
