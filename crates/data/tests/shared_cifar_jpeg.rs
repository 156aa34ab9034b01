//! The real CIFAR-10 as JPEG class folders (`../shared/data/cifar10-jpeg.tar.gz`
//! next to the workspace) loads as an image-folder dataset with the right
//! counts, and the second load comes from the decode cache. Runs in CI (which
//! has `../shared`); skipped with a printed reason where the file is absent.

use std::path::PathBuf;

use ablate_data::{folder, info, CacheUse, DataConfig, DatasetKind};

fn shared_archive() -> Option<PathBuf> {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/cifar10-jpeg.tar.gz");
    p.is_file().then_some(p)
}

#[test]
fn shared_cifar10_jpeg_loads_with_the_right_counts() {
    let Some(archive) = shared_archive() else {
        eprintln!(
            "skipped: {} not found (the shared CIFAR-10 JPEG archive lives in ../shared/data next to the workspace)",
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/cifar10-jpeg.tar.gz").display()
        );
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let (ds, used) = folder::load(&archive, None, Some(cache.path())).unwrap();
    assert!(matches!(used, CacheUse::Written(_)), "{used:?}");
    assert_eq!(
        ds.classes,
        [
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck"
        ]
    );
    assert_eq!((ds.train.len, ds.test.len), (50_000, 10_000));
    assert_eq!(
        (ds.train.channels, ds.train.height, ds.train.width),
        (3, 32, 32)
    );
    assert_eq!(ds.train.class_counts(10), vec![5_000; 10]);
    assert_eq!(ds.test.class_counts(10), vec![1_000; 10]);
    // The per-channel means are CIFAR-10's (0.4914, 0.4822, 0.4465) up to the JPEG re-encode.
    let i = info(&ds);
    for (m, want) in i.splits[0].mean.iter().zip([0.4914, 0.4822, 0.4465]) {
        assert!((m - want).abs() < 0.01, "train mean {:?}", i.splits[0].mean);
    }

    // Second load: from the cache, identical.
    let cfg = DataConfig {
        dataset: DatasetKind::ImageFolder,
        path: Some(archive.clone()),
        cache_dir: Some(cache.path().to_path_buf()),
        ..DataConfig::default()
    };
    let (again, used) = ablate_data::load_source(&cfg).unwrap();
    assert!(matches!(used, CacheUse::Hit(_)), "{used:?}");
    assert_eq!(again, ds);
    // And with limits: stratified.
    let limited = ablate_data::load(
        &DataConfig {
            train_limit: Some(1000),
            test_limit: Some(500),
            ..cfg
        },
        3,
    )
    .unwrap();
    assert_eq!(limited.train.class_counts(10), vec![100; 10]);
    assert_eq!(limited.test.class_counts(10), vec![50; 10]);
}
