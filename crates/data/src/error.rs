//! The errors of loading, downloading and exporting datasets. Each names the
//! file (or URL) and the problem.

use std::path::PathBuf;

use thiserror::Error;

use crate::config::DataConfigError;

/// Why a dataset could not be loaded, downloaded or written.
#[derive(Debug, Error)]
pub enum DataError {
    /// A `[data]` value out of range.
    #[error(transparent)]
    Config(#[from] DataConfigError),
    /// Reading or writing a file failed.
    #[error("{}: {what}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done (e.g. `cannot read`).
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A CIFAR `.bin` whose size is not a whole number of records.
    #[error("{}: truncated or wrongly sized {file_kind}: {size} bytes is not a positive multiple of {record} ({labels} label byte{} + 3072 pixel bytes)", path.display(), if *labels == 1 { "" } else { "s" })]
    BadBinSize {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// What the file is (`CIFAR-10 batch`, `CIFAR-100 file`).
        file_kind: &'static str,
        /// Bytes per record.
        record: usize,
        /// Label bytes per record.
        labels: usize,
    },
    /// A label not below the number of classes.
    #[error("{}: record {record} has {which} {label}, out of range for {classes} classes", path.display())]
    LabelOutOfRange {
        /// The file.
        path: PathBuf,
        /// The record (0-based).
        record: usize,
        /// Which label byte (`label`, `coarse label`, `fine label`).
        which: &'static str,
        /// The label found.
        label: u8,
        /// Number of classes.
        classes: usize,
    },
    /// An image that does not decode.
    #[error("{}: corrupt or unsupported image", path.display())]
    BadImage {
        /// The image file (inside the archive when there is one).
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: image::ImageError,
    },
    /// An image whose size differs from the others (and no resize was asked for).
    #[error("{}: image is {got_w}x{got_h}, expected {want_w}x{want_h} like the other images (set data.resize to resize every image)", path.display())]
    ImageSize {
        /// The image file.
        path: PathBuf,
        /// Its width.
        got_w: u32,
        /// Its height.
        got_h: u32,
        /// The expected width.
        want_w: u32,
        /// The expected height.
        want_h: u32,
    },
    /// A class folder without any image.
    #[error("{}: class folder has no .png/.jpg/.jpeg image", path.display())]
    EmptyClass {
        /// The class folder.
        path: PathBuf,
    },
    /// A split that has no class folder, or classes that differ between splits.
    #[error("{}: {problem}", path.display())]
    BadLayout {
        /// The dataset root (or archive).
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A required split or file is missing.
    #[error("{}: missing {what}", path.display())]
    Missing {
        /// The dataset root (or archive).
        path: PathBuf,
        /// What is missing (e.g. `split test/`, `test_batch.bin`).
        what: String,
    },
    /// The downloaded archive's MD5 differs from the published one.
    #[error("{url}: checksum mismatch: md5 {got}, expected {expected} (corrupt or different download; nothing was unpacked)")]
    Checksum {
        /// Where it came from.
        url: String,
        /// Expected MD5 (hex).
        expected: String,
        /// Computed MD5 (hex).
        got: String,
    },
    /// The download failed (e.g. offline).
    #[error("cannot download {url}: {reason}; without internet, put a copy of {archive} (or its unpacked {dir}/) at {} or set data.path to it, or set data.url to a local file:// or http:// mirror", dest.display())]
    Download {
        /// The URL that failed.
        url: String,
        /// The folder the dataset was meant for.
        dest: PathBuf,
        /// The official archive's name.
        archive: &'static str,
        /// The folder it unpacks to.
        dir: &'static str,
        /// Why.
        reason: String,
    },
    /// The dataset's folder is missing and downloading is off.
    #[error("{}: no {title} data here (expected {expected}) and data.download = false; set data.download = true or data.path to a local copy", path.display())]
    NotFound {
        /// The folder looked at.
        path: PathBuf,
        /// The dataset (`CIFAR-10`).
        title: &'static str,
        /// What the folder should hold.
        expected: &'static str,
    },
    /// A `.tar.gz` that cannot be read.
    #[error("{}: cannot read archive", path.display())]
    Archive {
        /// The archive.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A dataset that cannot be written in the requested format.
    #[error("cannot export to {}: {problem}", path.display())]
    Export {
        /// The output folder.
        path: PathBuf,
        /// Why.
        problem: String,
    },
}

impl DataError {
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        what: impl Into<String>,
        source: std::io::Error,
    ) -> DataError {
        DataError::Io {
            path: path.into(),
            what: what.into(),
            source,
        }
    }
}
