//! What the official CIFAR-10 and CIFAR-100 binary layouts share (Krizhevsky, "Learning
//! Multiple Layers of Features from Tiny Images", 2009;
//! <https://www.cs.toronto.edu/~kriz/cifar.html>): records of label bytes then 1024 R,
//! 1024 G, 1024 B bytes (32x32, row-major); class-name files of one name per line; finding
//! the files in a folder, a nested folder or a `.tar.gz`; and downloading the official
//! archive (MD5-checked, unpacked atomically). [`crate::cifar`] and [`crate::cifar100`]
//! describe their own files with a [`BinLayout`] and a [`RecordLayout`].

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use md5::{Digest, Md5};

use crate::error::DataError;
use crate::imageset::ImageSet;

/// Image side in pixels.
pub const SIDE: usize = 32;
/// Pixel bytes per record (3 planes of 32x32).
pub const PIXELS: usize = 3 * SIDE * SIDE;

/// Where a dataset's files were found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    /// A folder with the `.bin` files.
    Dir(PathBuf),
    /// A `.tar.gz` archive.
    Archive(PathBuf),
}

/// The files of one official binary layout.
#[derive(Debug, Clone, Copy)]
pub struct BinLayout {
    /// The dataset's name in messages (`CIFAR-10`).
    pub title: &'static str,
    /// The short name (`cifar10`), also the prefix of download folders.
    pub name: &'static str,
    /// The folder the official archive unpacks to (`cifar-10-batches-bin`).
    pub dir: &'static str,
    /// The official archive's file name (`cifar-10-binary.tar.gz`).
    pub archive: &'static str,
    /// Files any of which marks a folder as holding the layout (the first train and the test file).
    pub markers: &'static [&'static str],
    /// What a folder is expected to hold, for the error when nothing is found.
    pub expected: &'static str,
}

impl BinLayout {
    /// Finds the data at `path`: an archive file, a folder with the nested folder, with the
    /// files directly, or with the archive; `None` when there is none.
    pub fn locate(&self, path: &Path) -> Option<Located> {
        if path.is_file() {
            return Some(Located::Archive(path.to_path_buf()));
        }
        if !path.is_dir() {
            return None;
        }
        let holds = |d: &Path| self.markers.iter().any(|m| d.join(m).is_file());
        let nested = path.join(self.dir);
        if holds(&nested) {
            return Some(Located::Dir(nested));
        }
        if holds(path) {
            return Some(Located::Dir(path.to_path_buf()));
        }
        let archive = path.join(self.archive);
        archive.is_file().then_some(Located::Archive(archive))
    }

    /// Finds the data at `path` (see [`BinLayout::locate`]); when nothing is there and
    /// `download` is set, downloads `url` (checked against `md5`) into `path` first.
    pub fn find_or_fetch(
        &self,
        path: &Path,
        download: bool,
        url: &str,
        md5: &str,
    ) -> Result<Located, DataError> {
        match self.locate(path) {
            Some(l) => Ok(l),
            None if download => {
                self.fetch(url, md5, path)?;
                self.locate(path).ok_or_else(|| DataError::Missing {
                    path: path.to_path_buf(),
                    what: format!("{}/ after unpacking {url}", self.dir),
                })
            }
            None => Err(DataError::NotFound {
                path: path.to_path_buf(),
                title: self.title,
                expected: self.expected,
            }),
        }
    }

    /// Downloads the archive at `url` (`http(s)://` or `file://`), checks its MD5 against
    /// `md5` (hex), and unpacks it into the folder `dest` atomically: into a temporary folder
    /// next to `dest`, renamed to `dest` only when complete. On any error nothing is left at
    /// `dest`.
    pub fn fetch(&self, url: &str, md5: &str, dest: &Path) -> Result<(), DataError> {
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent)
            .map_err(|e| DataError::io(&parent, "cannot create folder", e))?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{}-download-", self.name))
            .tempdir_in(&parent)
            .map_err(|e| DataError::io(&parent, "cannot create a temporary folder", e))?;
        let archive = tmp.path().join(self.archive);
        tracing::info!(url, dest = %dest.display(), "downloading {}", self.title);
        download_checked(url, md5, &archive, |reason| DataError::Download {
            url: url.to_string(),
            dest: dest.to_path_buf(),
            archive: self.archive,
            dir: self.dir,
            reason,
        })?;
        let unpacked = tmp.path().join("unpacked");
        fs::create_dir(&unpacked)
            .map_err(|e| DataError::io(&unpacked, "cannot create folder", e))?;
        let file = File::open(&archive).map_err(|e| DataError::io(&archive, "cannot open", e))?;
        tar::Archive::new(GzDecoder::new(io::BufReader::new(file)))
            .unpack(&unpacked)
            .map_err(|e| DataError::Archive {
                path: archive.clone(),
                source: e,
            })?;
        if self.locate(&unpacked).is_none() {
            return Err(DataError::Missing {
                path: PathBuf::from(url),
                what: format!("{}/ or the .bin files in the archive", self.dir),
            });
        }
        match fs::rename(&unpacked, dest) {
            Ok(()) => Ok(()),
            // Another process finished first: use its copy.
            Err(_) if self.locate(dest).is_some() => Ok(()),
            Err(e) => Err(DataError::io(
                dest,
                "cannot move the unpacked archive into place",
                e,
            )),
        }
    }
}

/// Copies `url` to the file `to`, checking its MD5 against `md5`; `fail` makes the error of
/// a failed transfer from its reason.
fn download_checked(
    url: &str,
    md5: &str,
    to: &Path,
    fail: impl Fn(String) -> DataError,
) -> Result<(), DataError> {
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
    let mut w =
        BufWriter::new(File::create(to).map_err(|e| DataError::io(to, "cannot create", e))?);
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
            .map_err(|e| DataError::io(to, "cannot write", e))?;
    }
    w.flush()
        .map_err(|e| DataError::io(to, "cannot write", e))?;
    let got: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if !got.eq_ignore_ascii_case(md5) {
        return Err(DataError::Checksum {
            url: url.to_string(),
            expected: md5.to_lowercase(),
            got,
        });
    }
    Ok(())
}

/// The named files read from a folder or an archive, in the order asked for; `None` for a
/// file that is not there.
pub type Files = Vec<(&'static str, Option<Vec<u8>>)>;

/// Reads the files `names` from the folder `dir` (a missing one is `None`).
pub fn read_dir_files(dir: &Path, names: &[&'static str]) -> Result<Files, DataError> {
    names
        .iter()
        .map(|&name| {
            let p = dir.join(name);
            match fs::read(&p) {
                Ok(b) => Ok((name, Some(b))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok((name, None)),
                Err(e) => Err(DataError::io(p, "cannot read", e)),
            }
        })
        .collect()
}

/// Reads the files `names` from the `.tar.gz` at `path`, matched by file name in any folder
/// of the archive (a missing one is `None`).
pub fn read_archive_files(path: &Path, names: &[&'static str]) -> Result<Files, DataError> {
    let arch = |e: io::Error| DataError::Archive {
        path: path.to_path_buf(),
        source: e,
    };
    let file = File::open(path).map_err(|e| DataError::io(path, "cannot open", e))?;
    let mut tar = tar::Archive::new(GzDecoder::new(io::BufReader::new(file)));
    let mut found: Files = names.iter().map(|&n| (n, None)).collect();
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
        if let Some((_, slot)) = found.iter_mut().find(|(n, _)| *n == name) {
            let mut buf = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut buf).map_err(arch)?;
            *slot = Some(buf);
        }
    }
    Ok(found)
}

/// Takes the bytes of `name` out of `files` (`None` when it was not found).
pub fn take(files: &mut Files, name: &str) -> Option<Vec<u8>> {
    files
        .iter_mut()
        .find(|(n, _)| *n == name)
        .and_then(|(_, b)| b.take())
}

/// The class names of a label-name file: one per line, blank lines left out.
pub fn class_names(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Writes `names` one per line (then a blank line, as the official files end) to `path`.
pub fn write_class_names(path: &Path, names: &[String]) -> Result<(), DataError> {
    let mut text = names.join("\n");
    text.push_str("\n\n");
    fs::write(path, text).map_err(|e| DataError::io(path, "cannot write", e))
}

/// How the records of one layout's `.bin` files begin: one byte per label, then the pixels.
#[derive(Debug, Clone, Copy)]
pub struct RecordLayout {
    /// What a file is called in messages (`CIFAR-10 batch`).
    pub file_kind: &'static str,
    /// The label bytes, in record order, as messages name them (`["label"]`,
    /// `["coarse label", "fine label"]`).
    pub labels: &'static [&'static str],
}

impl RecordLayout {
    /// Bytes per record.
    pub const fn record_len(&self) -> usize {
        self.labels.len() + PIXELS
    }

    /// Parses the records of one `.bin` (`path` is for error messages). `classes[k]` is the
    /// number of classes of label byte `k`, each checked; the set's labels are label byte
    /// `keep`.
    pub fn parse(
        &self,
        bytes: &[u8],
        path: &Path,
        classes: &[usize],
        keep: usize,
    ) -> Result<ImageSet, DataError> {
        let record_len = self.record_len();
        let l = self.labels.len();
        if bytes.is_empty() || !bytes.len().is_multiple_of(record_len) {
            return Err(DataError::BadBinSize {
                path: path.to_path_buf(),
                size: bytes.len() as u64,
                file_kind: self.file_kind,
                record: record_len,
                labels: l,
            });
        }
        let n = bytes.len() / record_len;
        let mut images = Vec::with_capacity(n * PIXELS);
        let mut labels = Vec::with_capacity(n);
        for (record, r) in bytes.chunks_exact(record_len).enumerate() {
            for (k, (&label, &count)) in r[..l].iter().zip(classes).enumerate() {
                if label as usize >= count {
                    return Err(DataError::LabelOutOfRange {
                        path: path.to_path_buf(),
                        record,
                        which: self.labels[k],
                        label,
                        classes: count,
                    });
                }
            }
            labels.push(r[keep]);
            images.extend_from_slice(&r[l..]);
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
}

/// Writes records to `path` atomically (a temporary file synced, then renamed): for each
/// `(labels, pixels)`, the label bytes then the 3072 pixel bytes.
pub fn write_records<'a>(
    path: &Path,
    records: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> Result<(), DataError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let io_err = |e| DataError::io(path, "cannot write", e);
    let mut w = BufWriter::new(File::create(&tmp).map_err(io_err)?);
    for (labels, pixels) in records {
        w.write_all(labels).map_err(io_err)?;
        w.write_all(pixels).map_err(io_err)?;
    }
    w.into_inner()
        .map_err(|e| io_err(e.into_error()))?
        .sync_all()
        .map_err(io_err)?;
    fs::rename(&tmp, path).map_err(io_err)
}
