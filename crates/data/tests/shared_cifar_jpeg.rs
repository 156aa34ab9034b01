//! The real CIFAR-10 as JPEG class folders (`../shared/data/cifar10-jpeg.tar.gz`
//! next to the workspace) loads as an image-folder dataset with the right
//! counts, and the second load comes from the decode cache. Needs that file, so
//! it is `#[ignore]`d; CI (which has `../shared`) runs it with
//! `cargo test -p ablate-data --test shared_cifar_jpeg -- --ignored`.

use std::path::PathBuf;

use ablate_data::{folder, info, CacheUse, DataConfig, DatasetKind};

fn shared_archive() -> PathBuf {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/cifar10-jpeg.tar.gz");
    assert!(
        p.is_file(),
        "{} is missing: this test needs the shared CIFAR-10 JPEG archive in ../shared/data \
         next to the workspace",
        p.display()
    );
    p
}

#[test]
#[ignore = "needs ../shared/data/cifar10-jpeg.tar.gz"]
fn shared_cifar10_jpeg_loads_with_the_right_counts() {
    let archive = shared_archive();
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
