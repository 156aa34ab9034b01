//! CIFAR-10 in the official binary layout (Krizhevsky, "Learning Multiple Layers
//! of Features from Tiny Images", 2009; <https://www.cs.toronto.edu/~kriz/cifar.html>):
//! `data_batch_1.bin` ... `data_batch_5.bin` and `test_batch.bin`, each a run of
//! 3073-byte records (1 label byte, then 1024 R, 1024 G, 1024 B bytes, row-major),
//! and `batches.meta.txt` (one class name per line).
//!
//! Read from a folder holding `cifar-10-batches-bin/` or the files directly, or
//! from the official archive `cifar-10-binary.tar.gz`; downloaded (MD5-checked,
//! unpacked atomically) when missing.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use md5::{Digest, Md5};

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

const SIDE: usize = 32;
const PIXELS: usize = 3 * SIDE * SIDE;
const RECORD: usize = PIXELS + 1;

/// Where CIFAR-10 data was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    /// A folder with the `.bin` files.
    Dir(PathBuf),
    /// A `.tar.gz` archive.
    Archive(PathBuf),
}

/// Finds the data at `path`: an archive file, a folder with `cifar-10-batches-bin/`,
/// with the files directly, or with `cifar-10-binary.tar.gz`; `None` when there is none.
pub fn locate(path: &Path) -> Option<Located> {
    if path.is_file() {
        return Some(Located::Archive(path.to_path_buf()));
    }
    if !path.is_dir() {
        return None;
    }
    let nested = path.join(BATCHES_DIR);
    if nested.join(TEST_FILE).is_file() || nested.join(TRAIN_FILES[0]).is_file() {
        return Some(Located::Dir(nested));
    }
    if path.join(TEST_FILE).is_file() || path.join(TRAIN_FILES[0]).is_file() {
        return Some(Located::Dir(path.to_path_buf()));
    }
    let archive = path.join(ARCHIVE_NAME);
    if archive.is_file() {
        return Some(Located::Archive(archive));
    }
    None
}

/// Loads CIFAR-10 from `path` (see [`locate`]); when nothing is there and
/// `download` is set, downloads `url` (checked against `md5`) into `path` first.
pub fn load(path: &Path, download: bool, url: &str, md5: &str) -> Result<Dataset, DataError> {
    let found = match locate(path) {
        Some(l) => l,
        None if download => {
            fetch(url, md5, path)?;
            locate(path).ok_or_else(|| DataError::Missing {
                path: path.to_path_buf(),
                what: format!("{BATCHES_DIR}/ after unpacking {url}"),
            })?
        }
        None => {
            return Err(DataError::NotFound {
                path: path.to_path_buf(),
            })
        }
    };
    match found {
        Located::Dir(d) => read_dir(&d),
        Located::Archive(a) => read_archive(&a),
    }
}

/// Reads the binary layout from a folder holding the `.bin` files.
pub fn read_dir(dir: &Path) -> Result<Dataset, DataError> {
    let read = |name: &str| -> Result<Option<Vec<u8>>, DataError> {
        let p = dir.join(name);
        match fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(DataError::io(p, "cannot read", e)),
        }
    };
    let meta = read(META_FILE)?;
    let mut files = Vec::new();
    for name in TRAIN_FILES.iter().chain([&TEST_FILE]) {
        files.push((name.to_string(), read(name)?));
    }
    assemble(dir, meta, files)
}

/// Reads the binary layout from a `.tar.gz` (the official archive or any
/// archive holding the files, in any folder).
pub fn read_archive(path: &Path) -> Result<Dataset, DataError> {
    let arch = |e: io::Error| DataError::Archive {
        path: path.to_path_buf(),
        source: e,
    };
    let file = File::open(path).map_err(|e| DataError::io(path, "cannot open", e))?;
    let mut tar = tar::Archive::new(GzDecoder::new(io::BufReader::new(file)));
    let mut meta = None;
    let mut found: Vec<(String, Option<Vec<u8>>)> = TRAIN_FILES
        .iter()
        .chain([&TEST_FILE])
        .map(|n| (n.to_string(), None))
        .collect();
    for entry in tar.entries().map_err(arch)? {
        let mut entry = entry.map_err(arch)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()
            .map_err(arch)?
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let slot = if name == META_FILE {
            Some(&mut meta)
        } else {
            found.iter_mut().find(|(n, _)| *n == name).map(|(_, b)| b)
        };
        if let Some(slot) = slot {
            let mut buf = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut buf).map_err(arch)?;
            *slot = Some(buf);
        }
    }
    assemble(path, meta, found)
}

fn assemble(
    root: &Path,
    meta: Option<Vec<u8>>,
    files: Vec<(String, Option<Vec<u8>>)>,
) -> Result<Dataset, DataError> {
    let classes: Vec<String> = match meta {
        Some(m) => String::from_utf8_lossy(&m)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
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
    for (name, bytes) in files {
        let bytes = bytes.ok_or_else(|| DataError::Missing {
            path: root.to_path_buf(),
            what: if name == TEST_FILE {
                format!("{name} (the test split)")
            } else {
                format!("{name} (part of the train split)")
            },
        })?;
        let set = parse_bin(&bytes, &root.join(&name), classes.len())?;
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
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(DataError::BadBinSize {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
        });
    }
    let n = bytes.len() / RECORD;
    let mut images = Vec::with_capacity(n * PIXELS);
    let mut labels = Vec::with_capacity(n);
    for (record, r) in bytes.chunks_exact(RECORD).enumerate() {
        if r[0] as usize >= classes {
            return Err(DataError::LabelOutOfRange {
                path: path.to_path_buf(),
                record,
                label: r[0],
                classes,
            });
        }
        labels.push(r[0]);
        images.extend_from_slice(&r[1..]);
    }
    Ok(ImageSet {
        images,
        labels,
        len: n,
        channels: 3,
        height: SIDE,
        width: SIDE,
    })
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
    let write =
        |name: &str, set: &ImageSet, range: std::ops::Range<usize>| -> Result<(), DataError> {
            let path = out.join(name);
            let tmp = out.join(format!(".{name}.tmp"));
            let io_err = |e| DataError::io(&path, "cannot write", e);
            let mut w = BufWriter::new(File::create(&tmp).map_err(io_err)?);
            for i in range {
                w.write_all(&[set.labels[i]]).map_err(io_err)?;
                w.write_all(set.image(i)).map_err(io_err)?;
            }
            w.into_inner()
                .map_err(|e| io_err(e.into_error()))?
                .sync_all()
                .map_err(io_err)?;
            fs::rename(&tmp, &path).map_err(io_err)
        };
    let n = ds.train.len;
    for (k, name) in TRAIN_FILES.iter().enumerate() {
        write(name, &ds.train, n * k / 5..n * (k + 1) / 5)?;
    }
    write(TEST_FILE, &ds.test, 0..ds.test.len)?;
    let mut meta = ds.classes.join("\n");
    meta.push_str("\n\n");
    let meta_path = out.join(META_FILE);
    fs::write(&meta_path, meta).map_err(|e| DataError::io(meta_path, "cannot write", e))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Downloads the archive at `url` (`http(s)://` or `file://`), checks its MD5
/// against `md5` (hex), and unpacks it into the folder `dest` atomically: into
/// a temporary folder next to `dest`, renamed to `dest` only when complete. On
/// any error nothing is left at `dest`.
pub fn fetch(url: &str, md5: &str, dest: &Path) -> Result<(), DataError> {
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(|e| DataError::io(&parent, "cannot create folder", e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".cifar10-download-")
        .tempdir_in(&parent)
        .map_err(|e| DataError::io(&parent, "cannot create a temporary folder", e))?;
    let archive = tmp.path().join(ARCHIVE_NAME);
    let fail = |reason: String| DataError::Download {
        url: url.to_string(),
        dest: dest.to_path_buf(),
        reason,
    };
    tracing::info!(url, dest = %dest.display(), "downloading CIFAR-10");
    let mut reader: Box<dyn Read> = if let Some(local) = url.strip_prefix("file://") {
        Box::new(File::open(local).map_err(|e| fail(format!("cannot open {local}: {e}")))?)
    } else {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(std::time::Duration::from_secs(20)))
            .timeout_per_read(Some(std::time::Duration::from_secs(60)))
            .build()
            .into();
        let resp = agent.get(url).call().map_err(|e| fail(e.to_string()))?;
        Box::new(resp.into_body().into_reader())
    };
    let mut hasher = Md5::new();
    {
        let mut w = BufWriter::new(
            File::create(&archive).map_err(|e| DataError::io(&archive, "cannot create", e))?,
        );
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let k = reader
                .read(&mut buf)
                .map_err(|e| fail(format!("reading the response failed: {e}")))?;
            if k == 0 {
                break;
            }
            hasher.update(&buf[..k]);
            w.write_all(&buf[..k])
                .map_err(|e| DataError::io(&archive, "cannot write", e))?;
        }
        w.flush()
            .map_err(|e| DataError::io(&archive, "cannot write", e))?;
    }
    let got = hex(&hasher.finalize());
    if !got.eq_ignore_ascii_case(md5) {
        return Err(DataError::Checksum {
            url: url.to_string(),
            expected: md5.to_lowercase(),
            got,
        });
    }
    let unpacked = tmp.path().join("unpacked");
    fs::create_dir(&unpacked).map_err(|e| DataError::io(&unpacked, "cannot create folder", e))?;
    let file = File::open(&archive).map_err(|e| DataError::io(&archive, "cannot open", e))?;
    tar::Archive::new(GzDecoder::new(io::BufReader::new(file)))
        .unpack(&unpacked)
        .map_err(|e| DataError::Archive {
            path: archive.clone(),
            source: e,
        })?;
    if locate(&unpacked).is_none() {
        return Err(DataError::Missing {
            path: PathBuf::from(url),
            what: format!("{BATCHES_DIR}/ or the .bin files in the archive"),
        });
    }
    match fs::rename(&unpacked, dest) {
        Ok(()) => Ok(()),
        // Another process finished first: use its copy.
        Err(_) if locate(dest).is_some() => Ok(()),
        Err(e) => Err(DataError::io(
            dest,
            "cannot move the unpacked archive into place",
            e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic;

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
        let mut rec = vec![0u8; RECORD * 2];
        rec[0] = 3;
        rec[1] = 10; // R(0, 0)
        rec[1 + 1024] = 20; // G(0, 0)
        rec[1 + 2048 + 33] = 30; // B(1, 1)
        rec[RECORD] = 9;
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
        bytes[RECORD] = 10; // second record
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
