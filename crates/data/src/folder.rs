//! Image-folder datasets: `train/<class>/*.{png,jpg,jpeg}` and
//! `test/<class>/*...`, as a folder or a `.tar.gz` (possibly under one top
//! folder). Classes are sorted by name, images by file name; images are
//! decoded in parallel, and the decoded arrays are cached so a second load is
//! near-instant.
//!
//! The cache lives in `<cache>/image-folder/<key>.bin`, where `<cache>` is
//! `data.cache_dir`, else `$ABLATE_CACHE`, else `$XDG_CACHE_HOME/ablate`, else
//! `~/.cache/ablate`; the key is an MD5 of the source's canonical path, the
//! resize, and the source's size and modification time (for a folder: of every
//! file in it). Nothing is ever written next to the source.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use flate2::read::GzDecoder;
use md5::{Digest, Md5};
use rayon::prelude::*;

use crate::error::DataError;
use crate::imageset::{Dataset, ImageSet};

const SPLITS: [&str; 2] = ["train", "test"];
const CACHE_MAGIC: &[u8; 8] = b"ABLATEIF";
const CACHE_VERSION: u32 = 1;

/// What happened with the decode cache on a load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheUse {
    /// No cache was used (disabled or no cache folder could be found).
    Disabled,
    /// The dataset came from this cache file.
    Hit(PathBuf),
    /// The dataset was decoded and written to this cache file.
    Written(PathBuf),
    /// The dataset was decoded; writing the cache failed (logged as a warning).
    WriteFailed,
}

/// The default cache folder: `$ABLATE_CACHE`, else `$XDG_CACHE_HOME/ablate`,
/// else `$HOME/.cache/ablate`; `None` when none of these is set.
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("ABLATE_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|p| p.join("ablate")))
        .or_else(|| var("HOME").map(|p| p.join(".cache").join("ablate")))
}

/// One image file found in the source.
struct Item {
    split: usize,
    class: String,
    /// For messages: the file path (or `archive/inner/path`).
    name: PathBuf,
    /// The encoded bytes (archives), or `None` to read `name` (folders).
    bytes: Option<Vec<u8>>,
}

/// What a source holds before decoding.
struct Listing {
    items: Vec<Item>,
    /// Class folders seen per split (including empty ones), with a path for messages.
    class_dirs: [BTreeMap<String, PathBuf>; 2],
}

/// Loads an image-folder dataset from a folder or `.tar.gz`. `resize` makes
/// every image `n x n` (bilinear); without it all images must have one size.
/// `cache`: the cache folder to use, or `None` for no cache.
pub fn load(
    path: &Path,
    resize: Option<u32>,
    cache: Option<&Path>,
) -> Result<(Dataset, CacheUse), DataError> {
    let meta = fs::metadata(path).map_err(|e| DataError::io(path, "cannot read dataset", e))?;
    let name = dataset_name(path);
    let cache_file = match cache {
        Some(dir) => match cache_key(path, &meta, resize) {
            Ok(key) => Some(dir.join("image-folder").join(format!("{key}.bin"))),
            Err(e) => {
                tracing::warn!("not caching {}: {e}", path.display());
                None
            }
        },
        None => None,
    };
    if let Some(cf) = &cache_file {
        if cf.is_file() {
            match read_cache(cf) {
                Ok((classes, train, test)) => {
                    tracing::debug!(cache = %cf.display(), "image folder loaded from cache");
                    let ds = Dataset {
                        name,
                        classes,
                        train,
                        test,
                    };
                    return Ok((ds, CacheUse::Hit(cf.clone())));
                }
                Err(e) => tracing::warn!("ignoring unreadable cache {}: {e}", cf.display()),
            }
        }
    }
    let listing = if meta.is_file() {
        list_archive(path)?
    } else {
        list_dir(path)?
    };
    let (classes, train, test) = decode(path, listing, resize)?;
    let used = match &cache_file {
        None => CacheUse::Disabled,
        Some(cf) => match write_cache(cf, &classes, &train, &test) {
            Ok(()) => CacheUse::Written(cf.clone()),
            Err(e) => {
                tracing::warn!("cannot write cache {}: {e}", cf.display());
                CacheUse::WriteFailed
            }
        },
    };
    Ok((
        Dataset {
            name,
            classes,
            train,
            test,
        },
        used,
    ))
}

fn dataset_name(path: &Path) -> String {
    let n = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image-folder".into());
    for ext in [".tar.gz", ".tgz"] {
        if let Some(stem) = n.strip_suffix(ext) {
            return stem.to_string();
        }
    }
    n
}

fn is_image(name: &str) -> bool {
    if name.starts_with('.') {
        return false;
    }
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".png") || lower.ends_with(".jpg") || lower.ends_with(".jpeg")
}

fn mtime_nanos(meta: &fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// MD5 (hex) of the canonical path, resize, and size/mtime of the source (every file of a folder).
fn cache_key(path: &Path, meta: &fs::Metadata, resize: Option<u32>) -> io::Result<String> {
    let canon = fs::canonicalize(path)?;
    let mut h = Md5::new();
    h.update(format!("v{CACHE_VERSION}\0{}\0{resize:?}\0", canon.display()).as_bytes());
    if meta.is_file() {
        h.update(format!("{}\0{}\0", meta.len(), mtime_nanos(meta)).as_bytes());
    } else {
        let mut stack = vec![canon.clone()];
        let mut rows = Vec::new();
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d)? {
                let e = e?;
                let m = e.metadata()?;
                if m.is_dir() {
                    stack.push(e.path());
                } else {
                    rows.push(format!(
                        "{}\0{}\0{}\0",
                        e.path().display(),
                        m.len(),
                        mtime_nanos(&m)
                    ));
                }
            }
        }
        rows.sort();
        for r in rows {
            h.update(r.as_bytes());
        }
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The folder holding `train/` and `test/`: `path` itself, or its only subfolder.
fn find_root(path: &Path) -> Result<PathBuf, DataError> {
    let has_split = |p: &Path| SPLITS.iter().any(|s| p.join(s).is_dir());
    if has_split(path) {
        return Ok(path.to_path_buf());
    }
    let subdirs: Vec<PathBuf> = fs::read_dir(path)
        .map_err(|e| DataError::io(path, "cannot list folder", e))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    if let [only] = subdirs.as_slice() {
        if has_split(only) {
            return Ok(only.clone());
        }
    }
    Err(DataError::Missing {
        path: path.to_path_buf(),
        what: "split train/ (expected train/<class>/*.png|jpg and test/<class>/...)".into(),
    })
}

fn list_dir(path: &Path) -> Result<Listing, DataError> {
    let root = find_root(path)?;
    let mut listing = Listing {
        items: Vec::new(),
        class_dirs: [BTreeMap::new(), BTreeMap::new()],
    };
    for (s, split) in SPLITS.iter().enumerate() {
        let sd = root.join(split);
        if !sd.is_dir() {
            continue;
        }
        let classes = fs::read_dir(&sd).map_err(|e| DataError::io(&sd, "cannot list folder", e))?;
        for c in classes {
            let c = c.map_err(|e| DataError::io(&sd, "cannot list folder", e))?;
            let cp = c.path();
            if !cp.is_dir() {
                continue;
            }
            let class = c.file_name().to_string_lossy().into_owned();
            listing.class_dirs[s].insert(class.clone(), cp.clone());
            let files =
                fs::read_dir(&cp).map_err(|e| DataError::io(&cp, "cannot list folder", e))?;
            for f in files {
                let f = f.map_err(|e| DataError::io(&cp, "cannot list folder", e))?;
                let fname = f.file_name().to_string_lossy().into_owned();
                if is_image(&fname) && f.path().is_file() {
                    listing.items.push(Item {
                        split: s,
                        class: class.clone(),
                        name: f.path(),
                        bytes: None,
                    });
                }
            }
        }
    }
    Ok(listing)
}

fn list_archive(path: &Path) -> Result<Listing, DataError> {
    let arch = |e: io::Error| DataError::Archive {
        path: path.to_path_buf(),
        source: e,
    };
    let file = File::open(path).map_err(|e| DataError::io(path, "cannot open", e))?;
    let mut tar = tar::Archive::new(GzDecoder::new(BufReader::with_capacity(1 << 20, file)));
    let mut listing = Listing {
        items: Vec::new(),
        class_dirs: [BTreeMap::new(), BTreeMap::new()],
    };
    for entry in tar.entries().map_err(arch)? {
        let mut entry = entry.map_err(arch)?;
        let inner = entry.path().map_err(arch)?.into_owned();
        let parts: Vec<String> = inner
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        let kind = entry.header().entry_type();
        // .../<split>/<class>/ (a folder) or .../<split>/<class>/<file>.
        let (split_at, is_file) = if kind.is_dir() && parts.len() >= 2 {
            (parts.len() - 2, false)
        } else if kind.is_file() && parts.len() >= 3 {
            (parts.len() - 3, true)
        } else {
            continue;
        };
        let Some(s) = SPLITS.iter().position(|x| *x == parts[split_at]) else {
            continue;
        };
        let class = parts[split_at + 1].clone();
        let class_path = path.join(parts[..split_at + 2].iter().collect::<PathBuf>());
        listing.class_dirs[s]
            .entry(class.clone())
            .or_insert(class_path);
        if is_file && is_image(&parts[split_at + 2]) {
            let mut bytes = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut bytes).map_err(arch)?;
            listing.items.push(Item {
                split: s,
                class,
                name: path.join(&inner),
                bytes: Some(bytes),
            });
        }
    }
    Ok(listing)
}

type Splits = (Vec<String>, ImageSet, ImageSet);

fn decode(path: &Path, mut listing: Listing, resize: Option<u32>) -> Result<Splits, DataError> {
    for (s, split) in SPLITS.iter().enumerate() {
        if listing.class_dirs[s].is_empty() {
            return Err(DataError::Missing {
                path: path.to_path_buf(),
                what: format!("split {split}/ (expected {split}/<class>/*.png|jpg)"),
            });
        }
    }
    let mut counts: [BTreeMap<&str, usize>; 2] = [BTreeMap::new(), BTreeMap::new()];
    for it in &listing.items {
        *counts[it.split].entry(it.class.as_str()).or_default() += 1;
    }
    for (dirs, counted) in listing.class_dirs.iter().zip(&counts) {
        for (class, dir) in dirs {
            if !counted.contains_key(class.as_str()) {
                return Err(DataError::EmptyClass { path: dir.clone() });
            }
        }
    }
    let train_classes: BTreeSet<&String> = listing.class_dirs[0].keys().collect();
    let test_classes: BTreeSet<&String> = listing.class_dirs[1].keys().collect();
    if train_classes != test_classes {
        let only_train: Vec<&&String> = train_classes.difference(&test_classes).collect();
        let only_test: Vec<&&String> = test_classes.difference(&train_classes).collect();
        return Err(DataError::BadLayout {
            path: path.to_path_buf(),
            problem: format!(
                "train and test have different classes (only in train: {only_train:?}, only in test: {only_test:?})"
            ),
        });
    }
    let classes: Vec<String> = train_classes.into_iter().cloned().collect();
    if classes.len() > 256 {
        return Err(DataError::BadLayout {
            path: path.to_path_buf(),
            problem: format!("{} classes, at most 256 are supported", classes.len()),
        });
    }
    listing
        .items
        .sort_by(|a, b| (a.split, &a.class, &a.name).cmp(&(b.split, &b.class, &b.name)));
    let decoded: Vec<(u32, u32, Vec<u8>)> = listing
        .items
        .par_iter_mut()
        .map(|it| decode_one(it, resize))
        .collect::<Result<_, _>>()?;
    let (w0, h0) = (decoded[0].0, decoded[0].1);
    for (it, (w, h, _)) in listing.items.iter().zip(&decoded) {
        if (*w, *h) != (w0, h0) {
            return Err(DataError::ImageSize {
                path: it.name.clone(),
                got_w: *w,
                got_h: *h,
                want_w: w0,
                want_h: h0,
            });
        }
    }
    let mut sets = [
        ImageSet::empty(h0 as usize, w0 as usize),
        ImageSet::empty(h0 as usize, w0 as usize),
    ];
    for (it, (_, _, px)) in listing.items.iter().zip(decoded) {
        let set = &mut sets[it.split];
        set.images.extend_from_slice(&px);
        set.labels
            .push(classes.binary_search(&it.class).unwrap_or(0) as u8);
        set.len += 1;
    }
    let [train, test] = sets;
    Ok((classes, train, test))
}

/// Decodes one image to channel-major RGB `(w, h, [3, h, w])`, resized when asked.
fn decode_one(it: &mut Item, resize: Option<u32>) -> Result<(u32, u32, Vec<u8>), DataError> {
    let bytes = match it.bytes.take() {
        Some(b) => b,
        None => fs::read(&it.name).map_err(|e| DataError::io(&it.name, "cannot read image", e))?,
    };
    let img = image::load_from_memory(&bytes).map_err(|e| DataError::BadImage {
        path: it.name.clone(),
        source: e,
    })?;
    let mut rgb = img.to_rgb8();
    if let Some(n) = resize {
        if rgb.dimensions() != (n, n) {
            rgb = image::imageops::resize(&rgb, n, n, image::imageops::FilterType::Triangle);
        }
    }
    let (w, h) = rgb.dimensions();
    let plane = (w * h) as usize;
    let mut out = vec![0u8; 3 * plane];
    for (p, px) in rgb.pixels().enumerate() {
        out[p] = px[0];
        out[plane + p] = px[1];
        out[2 * plane + p] = px[2];
    }
    Ok((w, h, out))
}

fn write_cache(
    file: &Path,
    classes: &[String],
    train: &ImageSet,
    test: &ImageSet,
) -> io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    {
        let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file());
        w.write_all(CACHE_MAGIC)?;
        w.write_all(&CACHE_VERSION.to_le_bytes())?;
        w.write_all(&(classes.len() as u32).to_le_bytes())?;
        for c in classes {
            w.write_all(&(c.len() as u32).to_le_bytes())?;
            w.write_all(c.as_bytes())?;
        }
        for set in [train, test] {
            for v in [set.len, set.channels, set.height, set.width] {
                w.write_all(&(v as u64).to_le_bytes())?;
            }
            w.write_all(&set.labels)?;
            w.write_all(&set.images)?;
        }
        w.flush()?;
    }
    tmp.persist(file).map_err(|e| e.error)?;
    Ok(())
}

fn read_cache(file: &Path) -> io::Result<Splits> {
    let bytes = fs::read(file)?;
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad cache file");
    let mut r: &[u8] = &bytes;
    let mut take = |n: usize| -> io::Result<&[u8]> {
        if r.len() < n {
            return Err(bad());
        }
        let (a, b) = r.split_at(n);
        r = b;
        Ok(a)
    };
    if take(8)? != CACHE_MAGIC {
        return Err(bad());
    }
    let u32_ = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap_or([0; 4]));
    if u32_(take(4)?) != CACHE_VERSION {
        return Err(bad());
    }
    let nc = u32_(take(4)?) as usize;
    let mut classes = Vec::with_capacity(nc.min(256));
    for _ in 0..nc {
        let l = u32_(take(4)?) as usize;
        classes.push(String::from_utf8(take(l)?.to_vec()).map_err(|_| bad())?);
    }
    let mut sets = Vec::new();
    for _ in 0..2 {
        let mut dims = [0usize; 4];
        for d in &mut dims {
            *d = u64::from_le_bytes(take(8)?.try_into().map_err(|_| bad())?) as usize;
        }
        let [len, c, h, w] = dims;
        let labels = take(len)?.to_vec();
        let n = len.checked_mul(c * h * w).ok_or_else(bad)?;
        let images = take(n)?.to_vec();
        sets.push(ImageSet {
            images,
            labels,
            len,
            channels: c,
            height: h,
            width: w,
        });
    }
    if !r.is_empty() {
        return Err(bad());
    }
    let test = sets.pop().ok_or_else(bad)?;
    let train = sets.pop().ok_or_else(bad)?;
    Ok((classes, train, test))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, RgbImage};

    /// Writes `root/<split>/<class>/<i>.png`, pixel (x, y) = (x, y, class index * 10 + i).
    fn make_folder(root: &Path, classes: &[&str], per: usize, size: u32) {
        for split in SPLITS {
            for (ci, class) in classes.iter().enumerate() {
                let d = root.join(split).join(class);
                fs::create_dir_all(&d).unwrap();
                for i in 0..per {
                    let img = RgbImage::from_fn(size, size, |x, y| {
                        image::Rgb([x as u8, y as u8, (ci * 10 + i) as u8])
                    });
                    img.save_with_format(d.join(format!("{i}.png")), ImageFormat::Png)
                        .unwrap();
                }
            }
        }
    }

    fn tar_gz(dir: &Path, out: &Path) {
        let f = File::create(out).unwrap();
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            f,
            flate2::Compression::fast(),
        ));
        b.append_dir_all("top", dir).unwrap();
        b.into_inner().unwrap().finish().unwrap();
    }

    #[test]
    fn folder_and_archive_load_the_same_sorted_classes() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("set");
        make_folder(&src, &["zebra", "apple", "mango"], 3, 8);
        let (ds, used) = load(&src, None, None).unwrap();
        assert_eq!(used, CacheUse::Disabled);
        assert_eq!(ds.classes, vec!["apple", "mango", "zebra"]);
        assert_eq!((ds.train.len, ds.test.len), (9, 9));
        assert_eq!((ds.train.height, ds.train.width), (8, 8));
        assert_eq!(ds.train.class_counts(3), vec![3, 3, 3]);
        // Image 0 of class "apple" (folder index 1): blue plane constant 10.
        let img = ds.train.image(0);
        assert_eq!((img[8 * 3 + 5], img[64 + 8 * 3 + 5], img[128]), (5, 3, 10));
        assert_eq!(ds.train.labels[0], 0);
        let arch = tmp.path().join("set.tar.gz");
        tar_gz(&src, &arch);
        let (from_tar, _) = load(&arch, None, None).unwrap();
        assert_eq!(from_tar.name, "set");
        assert_eq!(from_tar.classes, ds.classes);
        assert_eq!(from_tar.train, ds.train);
        assert_eq!(from_tar.test, ds.test);
    }

    #[test]
    fn cache_is_written_then_hit_and_tracks_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("set");
        let cache = tmp.path().join("cache");
        make_folder(&src, &["a", "b"], 2, 4);
        let (d1, u1) = load(&src, None, Some(&cache)).unwrap();
        assert!(matches!(u1, CacheUse::Written(_)), "{u1:?}");
        let (d2, u2) = load(&src, None, Some(&cache)).unwrap();
        assert!(matches!(u2, CacheUse::Hit(_)), "{u2:?}");
        assert_eq!(d1, d2);
        // A different resize is a different entry.
        let (d3, u3) = load(&src, Some(2), Some(&cache)).unwrap();
        assert!(matches!(u3, CacheUse::Written(_)));
        assert_eq!(d3.train.height, 2);
        // A new file changes the key.
        RgbImage::new(4, 4).save(src.join("train/a/9.png")).unwrap();
        let (d4, u4) = load(&src, None, Some(&cache)).unwrap();
        assert!(matches!(u4, CacheUse::Written(_)), "{u4:?}");
        assert_eq!(d4.train.len, 5);
        // A corrupt cache file is ignored and rewritten.
        let CacheUse::Written(cf) = u4 else {
            unreachable!()
        };
        fs::write(&cf, b"garbage").unwrap();
        let (d5, u5) = load(&src, None, Some(&cache)).unwrap();
        assert!(matches!(u5, CacheUse::Written(_)));
        assert_eq!(d5, d4);
        // Nothing was written next to the source.
        assert!(!src.join("train/a").read_dir().unwrap().any(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".png")));
    }

    #[test]
    fn size_mismatch_is_an_error_unless_resized() {
        let tmp = tempfile::tempdir().unwrap();
        make_folder(tmp.path(), &["a", "b"], 2, 8);
        RgbImage::new(6, 8)
            .save(tmp.path().join("test/b/5.png"))
            .unwrap();
        let msg = load(tmp.path(), None, None).unwrap_err().to_string();
        assert!(
            msg.contains("test/b/5.png") && msg.contains("image is 6x8, expected 8x8"),
            "{msg}"
        );
        let (ds, _) = load(tmp.path(), Some(8), None).unwrap();
        assert_eq!((ds.test.len, ds.test.height, ds.test.width), (5, 8, 8));
    }

    #[test]
    fn corrupt_image_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        make_folder(tmp.path(), &["a"], 2, 4);
        fs::write(
            tmp.path().join("train/a/bad.jpg"),
            b"\xff\xd8\xff\xe0 not really a jpeg",
        )
        .unwrap();
        let e = load(tmp.path(), None, None).unwrap_err();
        assert!(matches!(e, DataError::BadImage { .. }));
        assert!(e.to_string().contains("train/a/bad.jpg"), "{e}");
    }

    #[test]
    fn empty_class_and_missing_split_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        make_folder(tmp.path(), &["a", "b"], 1, 4);
        fs::create_dir_all(tmp.path().join("train/c")).unwrap();
        let msg = load(tmp.path(), None, None).unwrap_err().to_string();
        assert!(
            msg.contains("train/c") && msg.contains("class folder has no"),
            "{msg}"
        );
        // The same in an archive (the empty folder is a directory entry).
        let other = tempfile::tempdir().unwrap();
        let arch = other.path().join("x.tar.gz");
        tar_gz(tmp.path(), &arch);
        let msg = load(&arch, None, None).unwrap_err().to_string();
        assert!(
            msg.contains("train/c") && msg.contains("class folder has no"),
            "{msg}"
        );
        fs::remove_file(&arch).unwrap();
        fs::remove_dir(tmp.path().join("train/c")).unwrap();
        fs::remove_dir_all(tmp.path().join("test")).unwrap();
        let msg = load(tmp.path(), None, None).unwrap_err().to_string();
        assert!(msg.contains("missing split test/"), "{msg}");
        let msg = load(&tmp.path().join("nope"), None, None)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("nope") && msg.contains("cannot read dataset"),
            "{msg}"
        );
    }
}
