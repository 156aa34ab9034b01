//! CIFAR-10 in the official binary layout (Krizhevsky, "Learning Multiple Layers of Features
//! from Tiny Images", 2009; <https://www.cs.toronto.edu/~kriz/cifar.html>):
//! `data_batch_1.bin` ... `data_batch_5.bin` and `test_batch.bin`, each a run of 3073-byte
//! records (1 label byte, then 1024 R, 1024 G, 1024 B bytes, row-major), and
//! `batches.meta.txt` (one class name per line).
//!
//! Read from a folder holding `cifar-10-batches-bin/` or the files directly, or from the
//! official archive `cifar-10-binary.tar.gz`; downloaded (MD5-checked, unpacked atomically)
//! when missing. The pieces shared with CIFAR-100 are in [`crate::cifar_bin`].

use std::fs;
use std::path::Path;

pub use crate::cifar_bin::Located;
use crate::cifar_bin::{self, BinLayout, RecordLayout, SIDE};
use crate::error::DataError;
use crate::imageset::{Dataset, ImageSet};

/// The train batch files, in order.
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The test batch file.
pub const TEST_FILE: &str = "test_batch.bin";
/// The class-name file.
pub const META_FILE: &str = "batches.meta.txt";
/// The folder the official archive unpacks to.
pub const BATCHES_DIR: &str = "cifar-10-batches-bin";
/// The official archive's file name.
pub const ARCHIVE_NAME: &str = "cifar-10-binary.tar.gz";
/// CIFAR-10's class names, used when `batches.meta.txt` is absent.
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

/// CIFAR-10's files.
pub const LAYOUT: BinLayout = BinLayout {
    title: "CIFAR-10",
    name: "cifar10",
    dir: BATCHES_DIR,
    archive: ARCHIVE_NAME,
    markers: &[TEST_FILE, TRAIN_FILES[0]],
    expected:
        "cifar-10-batches-bin/, data_batch_1.bin ... test_batch.bin, or cifar-10-binary.tar.gz",
};

/// A CIFAR-10 record: 1 label byte, then the pixels.
pub const RECORD: RecordLayout = RecordLayout {
    file_kind: "CIFAR-10 batch",
    labels: &["label"],
};

/// Every file of the layout: the batches (train in order, then test), then the class names.
const ALL_FILES: [&str; 7] = [
    TRAIN_FILES[0],
    TRAIN_FILES[1],
    TRAIN_FILES[2],
    TRAIN_FILES[3],
    TRAIN_FILES[4],
    TEST_FILE,
    META_FILE,
];

/// Finds the data at `path`: an archive file, a folder with `cifar-10-batches-bin/`,
/// with the files directly, or with `cifar-10-binary.tar.gz`; `None` when there is none.
pub fn locate(path: &Path) -> Option<Located> {
    LAYOUT.locate(path)
}

/// Loads CIFAR-10 from `path` (see [`locate`]); when nothing is there and
/// `download` is set, downloads `url` (checked against `md5`) into `path` first.
pub fn load(path: &Path, download: bool, url: &str, md5: &str) -> Result<Dataset, DataError> {
    match LAYOUT.find_or_fetch(path, download, url, md5)? {
        Located::Dir(d) => read_dir(&d),
        Located::Archive(a) => read_archive(&a),
    }
}

/// Reads the binary layout from a folder holding the `.bin` files.
pub fn read_dir(dir: &Path) -> Result<Dataset, DataError> {
    assemble(dir, cifar_bin::read_dir_files(dir, &ALL_FILES)?)
}

/// Reads the binary layout from a `.tar.gz` (the official archive or any
/// archive holding the files, in any folder).
pub fn read_archive(path: &Path) -> Result<Dataset, DataError> {
    assemble(path, cifar_bin::read_archive_files(path, &ALL_FILES)?)
}

fn assemble(root: &Path, mut files: cifar_bin::Files) -> Result<Dataset, DataError> {
    let classes: Vec<String> = match cifar_bin::take(&mut files, META_FILE) {
        Some(m) => cifar_bin::class_names(&m),
        None => CLASSES.iter().map(|s| s.to_string()).collect(),
    };
    if classes.is_empty() {
        return Err(DataError::BadLayout {
            path: root.join(META_FILE),
            problem: "no class name".into(),
        });
    }
    let mut train = ImageSet::empty(SIDE, SIDE);
    let mut test = ImageSet::empty(SIDE, SIDE);
    for (name, bytes) in files.into_iter().filter(|(n, _)| *n != META_FILE) {
        let bytes = bytes.ok_or_else(|| DataError::Missing {
            path: root.to_path_buf(),
            what: if name == TEST_FILE {
                format!("{name} (the test split)")
            } else {
                format!("{name} (part of the train split)")
            },
        })?;
        let set = parse_bin(&bytes, &root.join(name), classes.len())?;
        if name == TEST_FILE {
            test = set;
        } else {
            train.append(&set);
        }
    }
    Ok(Dataset {
        name: "cifar10".into(),
        classes,
        train,
        test,
    })
}

/// Parses the records of one `.bin`; `path` is for error messages.
pub fn parse_bin(bytes: &[u8], path: &Path, classes: usize) -> Result<ImageSet, DataError> {
    RECORD.parse(bytes, path, &[classes], 0)
}

/// Writes `ds` in the official binary layout into `out` (created if needed):
/// the train split in five nearly equal `data_batch_{1..5}.bin` (in order),
/// `test_batch.bin` and `batches.meta.txt`. Images must be 3x32x32, with at most
/// 256 classes and at least 5 train and 1 test image.
pub fn export_cifar_bin(ds: &Dataset, out: &Path) -> Result<(), DataError> {
    let bad = |problem: String| DataError::Export {
        path: out.to_path_buf(),
        problem,
    };
    for (split, set) in [("train", &ds.train), ("test", &ds.test)] {
        if (set.channels, set.height, set.width) != (3, SIDE, SIDE) {
            return Err(bad(format!(
                "the {split} images are {}x{}x{}, the CIFAR binary layout needs 3x32x32 (load with data.resize = 32)",
                set.channels, set.height, set.width
            )));
        }
    }
    if ds.classes.is_empty() || ds.classes.len() > 256 {
        return Err(bad(format!(
            "{} classes; the layout's one label byte allows 1 to 256",
            ds.classes.len()
        )));
    }
    if ds.train.len < TRAIN_FILES.len() || ds.test.len == 0 {
        return Err(bad(format!(
            "{} train and {} test images; at least 5 train (one per batch file) and 1 test image are needed",
            ds.train.len, ds.test.len
        )));
    }
    for name in &ds.classes {
        if name.contains(['\n', '\r']) || name.trim().is_empty() {
            return Err(bad(format!(
                "class name {name:?} cannot be written as one line"
            )));
        }
    }
    fs::create_dir_all(out).map_err(|e| DataError::io(out, "cannot create folder", e))?;
    let write = |name: &str, set: &ImageSet, range: std::ops::Range<usize>| {
        let records = range.map(|i| (std::slice::from_ref(&set.labels[i]), set.image(i)));
        cifar_bin::write_records(&out.join(name), records)
    };
    let n = ds.train.len;
    for (k, name) in TRAIN_FILES.iter().enumerate() {
        write(name, &ds.train, n * k / 5..n * (k + 1) / 5)?;
    }
    write(TEST_FILE, &ds.test, 0..ds.test.len)?;
    cifar_bin::write_class_names(&out.join(META_FILE), &ds.classes)
}

/// Downloads the archive at `url` (`http(s)://` or `file://`), checks its MD5
/// against `md5` (hex), and unpacks it into the folder `dest` atomically: into
/// a temporary folder next to `dest`, renamed to `dest` only when complete. On
/// any error nothing is left at `dest`.
pub fn fetch(url: &str, md5: &str, dest: &Path) -> Result<(), DataError> {
    LAYOUT.fetch(url, md5, dest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic;

    const RECORD_LEN: usize = RECORD.record_len();

    #[test]
    fn export_then_load_round_trips() {
        let ds = synthetic::generate(23, 7, 1);
        let dir = tempfile::tempdir().unwrap();
        export_cifar_bin(&ds, dir.path()).unwrap();
        let sizes: Vec<u64> = TRAIN_FILES
            .iter()
            .map(|f| fs::metadata(dir.path().join(f)).unwrap().len())
            .collect();
        assert_eq!(sizes.iter().sum::<u64>(), 23 * 3073);
        assert_eq!(
            fs::metadata(dir.path().join(TEST_FILE)).unwrap().len(),
            7 * 3073
        );
        let back = load(dir.path(), false, "file:///nowhere", "").unwrap();
        assert_eq!(back.classes, ds.classes);
        assert_eq!(back.train, ds.train);
        assert_eq!(back.test, ds.test);
        // Also nested in cifar-10-batches-bin/.
        let outer = tempfile::tempdir().unwrap();
        export_cifar_bin(&ds, &outer.path().join(BATCHES_DIR)).unwrap();
        assert_eq!(load(outer.path(), false, "", "").unwrap().train, ds.train);
    }

    #[test]
    fn record_layout_is_label_then_rgb_planes() {
        let mut rec = vec![0u8; RECORD_LEN * 2];
        rec[0] = 3;
        rec[1] = 10; // R(0, 0)
        rec[1 + 1024] = 20; // G(0, 0)
        rec[1 + 2048 + 33] = 30; // B(1, 1)
        rec[RECORD_LEN] = 9;
        let set = parse_bin(&rec, Path::new("x.bin"), 10).unwrap();
        assert_eq!(set.labels, vec![3, 9]);
        let img = set.image(0);
        assert_eq!((img[0], img[1024], img[2048 + 33]), (10, 20, 30));
    }

    #[test]
    fn truncated_bin_is_an_error_naming_the_file() {
        let ds = synthetic::generate(10, 2, 0);
        let dir = tempfile::tempdir().unwrap();
        export_cifar_bin(&ds, dir.path()).unwrap();
        let p = dir.path().join("data_batch_3.bin");
        let bytes = fs::read(&p).unwrap();
        fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
        let e = read_dir(dir.path()).unwrap_err();
        assert!(matches!(e, DataError::BadBinSize { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("data_batch_3.bin") && msg.contains("not a positive multiple of 3073"),
            "{msg}"
        );
    }

    #[test]
    fn label_out_of_range_is_an_error() {
        let ds = synthetic::generate(10, 2, 0);
        let dir = tempfile::tempdir().unwrap();
        export_cifar_bin(&ds, dir.path()).unwrap();
        let p = dir.path().join(TEST_FILE);
        let mut bytes = fs::read(&p).unwrap();
        bytes[RECORD_LEN] = 10; // second record
        fs::write(&p, &bytes).unwrap();
        let msg = read_dir(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("test_batch.bin")
                && msg.contains("record 1 has label 10, out of range for 10 classes"),
            "{msg}"
        );
    }

    #[test]
    fn missing_split_is_an_error() {
        let ds = synthetic::generate(10, 2, 0);
        let dir = tempfile::tempdir().unwrap();
        export_cifar_bin(&ds, dir.path()).unwrap();
        fs::remove_file(dir.path().join(TEST_FILE)).unwrap();
        let msg = read_dir(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("missing test_batch.bin (the test split)"),
            "{msg}"
        );
    }

    #[test]
    fn export_rejects_wrong_sizes() {
        let mut ds = synthetic::generate(10, 2, 0);
        ds.train.height = 16;
        let dir = tempfile::tempdir().unwrap();
        let msg = export_cifar_bin(&ds, dir.path()).unwrap_err().to_string();
        assert!(msg.contains("needs 3x32x32"), "{msg}");
    }
}
