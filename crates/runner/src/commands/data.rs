//! `ablate data info` and `ablate data export`: thin wrappers over `ablate_data`.

use std::path::Path;

use anyhow::{bail, Context};

use ablate_data::cifar_bin::{BinLayout, Located};
use ablate_data::{cifar, cifar100, DataConfig, DatasetKind};

use crate::cli::{DataExportArgs, DataInfoArgs, ExportFormat, EXIT_OK};

use super::CommandResult;

/// What a SOURCE argument accepts, for messages.
pub const SOURCE_HELP: &str = "`synthetic`, `cifar10` (the folder data/cifar10, downloaded when missing), \
`cifar100` (data/cifar100, likewise; fine labels), a CIFAR-10 binary folder or cifar-10-binary.tar.gz, \
a CIFAR-100 binary folder or cifar-100-binary.tar.gz, or an image folder (train/<class>/*, test/<class>/*) \
as a folder or .tar.gz";

/// The `[data]` table that loads SOURCE (no augmentation matters here):
///
/// - `synthetic`: the generated dataset at its default sizes;
/// - `cifar10`: the official binary layout in `data/cifar10` (downloaded when missing);
/// - `cifar100`: CIFAR-100's in `data/cifar100` (downloaded when missing), fine labels;
/// - a folder holding CIFAR-10's `.bin` files (directly, in `cifar-10-batches-bin/`, or as
///   `cifar-10-binary.tar.gz`), or the archive `cifar-10-binary.tar.gz` itself: CIFAR-10;
/// - likewise CIFAR-100's (`train.bin`, `test.bin`, `cifar-100-binary/`,
///   `cifar-100-binary.tar.gz`): CIFAR-100 with its fine labels;
/// - any other folder or `.tar.gz`: an image folder (`train/<class>/...`, `test/<class>/...`).
pub fn source_config(source: &str) -> anyhow::Result<DataConfig> {
    match source {
        "synthetic" => {
            let d = DataConfig::default();
            return Ok(DataConfig::synthetic(d.synthetic_train, d.synthetic_test));
        }
        "cifar10" => return Ok(DataConfig::default()),
        "cifar100" => {
            return Ok(DataConfig {
                dataset: DatasetKind::Cifar100,
                ..DataConfig::default()
            })
        }
        _ => {}
    }
    let path = Path::new(source);
    if !path.exists() {
        bail!("data source `{source}` does not exist; SOURCE is {SOURCE_HELP}");
    }
    let dataset = if holds(path, &cifar::LAYOUT) {
        DatasetKind::Cifar10
    } else if holds(path, &cifar100::LAYOUT) {
        DatasetKind::Cifar100
    } else {
        DatasetKind::ImageFolder
    };
    Ok(DataConfig {
        dataset,
        path: Some(path.to_path_buf()),
        download: false,
        ..DataConfig::default()
    })
}

/// Whether `path` is `layout`'s official archive (by its name), or a folder holding its files
/// or its archive.
fn holds(path: &Path, layout: &BinLayout) -> bool {
    let is_archive = path.is_file()
        && path.file_name().is_some_and(|n| {
            let stem = layout.archive.trim_end_matches(".tar.gz");
            n.to_string_lossy().starts_with(stem)
        });
    let is_dir = path.is_dir()
        && (matches!(layout.locate(path), Some(Located::Dir(_)))
            || path.join(layout.archive).is_file());
    is_archive || is_dir
}

/// Loads SOURCE with both splits whole.
pub fn load_source(source: &str) -> anyhow::Result<ablate_data::Dataset> {
    let cfg = source_config(source)?;
    let ds = ablate_data::load(&cfg, 0)
        .with_context(|| format!("cannot load data source `{source}`"))?;
    Ok(ds)
}

/// `ablate data info SOURCE`.
pub fn info(args: DataInfoArgs) -> CommandResult {
    let ds = load_source(&args.source)?;
    let info = ablate_data::info(&ds);
    if args.json {
        let (c, h, w) = info.image_size;
        let splits: Vec<serde_json::Value> = info
            .splits
            .iter()
            .map(|s| {
                serde_json::json!({
                    "split": s.split,
                    "count": s.count,
                    "per_class": s.per_class,
                    "mean": s.mean,
                    "std": s.std,
                })
            })
            .collect();
        let v = serde_json::json!({
            "name": info.name,
            "classes": info.classes,
            "channels": c,
            "height": h,
            "width": w,
            "splits": splits,
        });
        println!("{v}");
    } else {
        print!("{info}");
    }
    Ok(EXIT_OK)
}

/// `ablate data export SOURCE --format cifar-bin OUT`.
pub fn export(args: DataExportArgs) -> CommandResult {
    let ds = load_source(&args.source)?;
    match args.format {
        ExportFormat::CifarBin => {
            ablate_data::export_cifar_bin(&ds, &args.out).with_context(|| {
                format!("cannot export `{}` to {}", args.source, args.out.display())
            })?;
            println!(
                "wrote {} train and {} test images of {} classes to {} (CIFAR-10 binary layout)",
                ds.train.len,
                ds.test.len,
                ds.classes.len(),
                args.out.display()
            );
        }
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_map_to_datasets() {
        assert_eq!(
            source_config("synthetic").unwrap().dataset,
            DatasetKind::Synthetic
        );
        assert_eq!(
            source_config("cifar10").unwrap().dataset,
            DatasetKind::Cifar10
        );
        let dir = tempfile::tempdir().unwrap();
        // A folder with CIFAR's test batch is CIFAR-10; any other is an image folder.
        let cifar = dir.path().join("c");
        std::fs::create_dir_all(cifar.join("cifar-10-batches-bin")).unwrap();
        std::fs::write(cifar.join("cifar-10-batches-bin/test_batch.bin"), b"").unwrap();
        assert_eq!(
            source_config(cifar.to_str().unwrap()).unwrap().dataset,
            DatasetKind::Cifar10
        );
        // Likewise CIFAR-100's files, nested or not, and its archive.
        let c100 = dir.path().join("c100");
        std::fs::create_dir_all(c100.join("cifar-100-binary")).unwrap();
        std::fs::write(c100.join("cifar-100-binary/train.bin"), b"").unwrap();
        assert_eq!(
            source_config(c100.to_str().unwrap()).unwrap().dataset,
            DatasetKind::Cifar100
        );
        let archive = dir.path().join("cifar-100-binary.tar.gz");
        std::fs::write(&archive, b"").unwrap();
        assert_eq!(
            source_config(archive.to_str().unwrap()).unwrap().dataset,
            DatasetKind::Cifar100
        );
        let named = source_config("cifar100").unwrap();
        assert_eq!(named.dataset, DatasetKind::Cifar100);
        assert_eq!(ablate_data::known_classes(&named), Some(100));
        let folder = dir.path().join("f");
        std::fs::create_dir_all(folder.join("train")).unwrap();
        let cfg = source_config(folder.to_str().unwrap()).unwrap();
        assert_eq!(cfg.dataset, DatasetKind::ImageFolder);
        assert_eq!(cfg.path.as_deref(), Some(folder.as_path()));
        let e = source_config("/no/such/place").unwrap_err().to_string();
        assert!(e.contains("`/no/such/place` does not exist"), "{e}");
    }
}
