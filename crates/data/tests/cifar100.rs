//! CIFAR-100's binary layout on a small fixture written here (records with known labels and
//! pixels, the two label-name files, also as a `.tar.gz`): parsing, fine against coarse
//! labels, class names, the config's `dataset = "cifar100"` and `labels`, and the errors for a
//! truncated file, an out-of-range label and a missing names file. No network.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use ablate_data::cifar100::{self, Labels, SplitToWrite};
use ablate_data::{DataConfig, DataError, DatasetKind, ImageSet};

/// Record `i`'s labels: fine `(7 * i + 3) % 100`, coarse its fine label `% 20`; its pixels:
/// all `i`, except R(0, 0) = 200 + i and B(31, 31) = 100 + i.
fn split(n: usize, offset: usize) -> (ImageSet, Vec<u8>) {
    let mut set = ImageSet::empty(32, 32);
    let mut coarse = Vec::new();
    for k in 0..n {
        let i = k + offset;
        let mut img = vec![i as u8; 3072];
        img[0] = 200 + i as u8;
        img[3071] = 100 + i as u8;
        let fine = ((7 * i + 3) % 100) as u8;
        set.images.extend_from_slice(&img);
        set.labels.push(fine);
        set.len += 1;
        coarse.push(fine % 20);
    }
    (set, coarse)
}

fn fine_names() -> Vec<String> {
    (0..100).map(|i| format!("fine_{i:02}")).collect()
}

fn coarse_names() -> Vec<String> {
    (0..20).map(|i| format!("coarse_{i:02}")).collect()
}

/// Writes 6 train and 3 test records into `dir`.
fn write_fixture(dir: &Path) {
    let (train, train_coarse) = split(6, 0);
    let (test, test_coarse) = split(3, 6);
    cifar100::write_dir(
        dir,
        SplitToWrite {
            images: &train,
            coarse: &train_coarse,
        },
        SplitToWrite {
            images: &test,
            coarse: &test_coarse,
        },
        &fine_names(),
        &coarse_names(),
    )
    .unwrap();
}

/// The fixture packed as `cifar-100-binary.tar.gz` (holding `cifar-100-binary/...`).
fn write_archive(root: &Path) -> PathBuf {
    let staging = root.join("staging");
    write_fixture(&staging.join(cifar100::DATA_DIR));
    let path = root.join(cifar100::ARCHIVE_NAME);
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        File::create(&path).unwrap(),
        flate2::Compression::fast(),
    ));
    b.append_dir_all(cifar100::DATA_DIR, staging.join(cifar100::DATA_DIR))
        .unwrap();
    b.into_inner().unwrap().finish().unwrap();
    path
}

#[test]
fn fine_labels_pixels_and_class_names() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    assert_eq!(
        fs::metadata(dir.path().join(cifar100::TRAIN_FILE))
            .unwrap()
            .len(),
        6 * 3074
    );
    let ds = cifar100::read_dir(dir.path(), Labels::Fine).unwrap();
    assert_eq!(ds.name, "cifar100");
    assert_eq!(ds.num_classes(), 100);
    assert_eq!(ds.classes[42], "fine_42");
    assert_eq!((ds.train.len, ds.test.len), (6, 3));
    assert_eq!(ds.train.labels, vec![3, 10, 17, 24, 31, 38]);
    assert_eq!(ds.test.labels, vec![45, 52, 59]);
    let img = ds.test.image(1); // record 7
    assert_eq!((img[0], img[1], img[1024], img[3071]), (207, 7, 7, 107));
    assert_eq!(
        (ds.train.height, ds.train.width, ds.train.channels),
        (32, 32, 3)
    );
}

#[test]
fn coarse_labels_are_the_first_byte() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    let ds = cifar100::read_dir(dir.path(), Labels::Coarse).unwrap();
    assert_eq!(ds.name, "cifar100-coarse");
    assert_eq!(ds.num_classes(), 20);
    assert_eq!(ds.classes[19], "coarse_19");
    assert_eq!(ds.train.labels, vec![3, 10, 17, 4, 11, 18]);
    // Same pixels whichever labels are kept.
    let fine = cifar100::read_dir(dir.path(), Labels::Fine).unwrap();
    assert_eq!(ds.train.images, fine.train.images);
}

#[test]
fn archive_nested_folder_and_config_load_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = write_archive(tmp.path());
    let from_dir = cifar100::read_dir(
        &tmp.path().join("staging").join(cifar100::DATA_DIR),
        Labels::Fine,
    )
    .unwrap();
    let from_archive = cifar100::load(&archive, false, "", "", Labels::Fine).unwrap();
    assert_eq!(from_archive, from_dir);
    // A folder holding cifar-100-binary/, through the [data] table with coarse labels.
    let cfg: DataConfig = toml::from_str(&format!(
        "dataset = \"cifar100\"\npath = {:?}\nlabels = \"coarse\"\ndownload = false\n",
        tmp.path().join("staging")
    ))
    .unwrap();
    assert_eq!(cfg.dataset, DatasetKind::Cifar100);
    assert_eq!(ablate_data::known_classes(&cfg), Some(20));
    let ds = ablate_data::load(&cfg, 0).unwrap();
    assert_eq!(ds.num_classes(), 20);
    assert_eq!(ds.train.labels, vec![3, 10, 17, 4, 11, 18]);
}

#[test]
fn download_from_a_file_url_checks_the_md5() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = write_archive(tmp.path());
    let url = format!("file://{}", archive.display());
    let dest = tmp.path().join("data").join("cifar100");
    // Through the config the official MD5 is expected: the fixture's differs.
    let cfg = DataConfig {
        dataset: DatasetKind::Cifar100,
        path: Some(dest.clone()),
        url: url.clone(),
        ..DataConfig::default()
    };
    let msg = ablate_data::load(&cfg, 0).unwrap_err().to_string();
    assert!(
        msg.contains("checksum mismatch") && msg.contains(ablate_data::CIFAR100_MD5),
        "{msg}"
    );
    assert!(!dest.exists());
    let md5: String = {
        use md5::Digest;
        md5::Md5::digest(fs::read(&archive).unwrap())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let ds = cifar100::load(&dest, true, &url, &md5, Labels::Fine).unwrap();
    assert_eq!(ds.test.len, 3);
    assert!(dest.join(cifar100::DATA_DIR).join("test.bin").is_file());
}

#[test]
fn truncated_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    let p = dir.path().join(cifar100::TEST_FILE);
    let bytes = fs::read(&p).unwrap();
    fs::write(&p, &bytes[..bytes.len() - 1]).unwrap();
    let e = cifar100::read_dir(dir.path(), Labels::Fine).unwrap_err();
    assert!(matches!(e, DataError::BadBinSize { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("test.bin")
            && msg.contains("truncated or wrongly sized CIFAR-100 file")
            && msg.contains("not a positive multiple of 3074 (2 label bytes + 3072 pixel bytes)"),
        "{msg}"
    );
}

#[test]
fn out_of_range_labels_are_errors_whichever_labels_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    let p = dir.path().join(cifar100::TRAIN_FILE);
    let good = fs::read(&p).unwrap();
    let mut bad = good.clone();
    bad[2 * 3074 + 1] = 100; // record 2's fine label
    fs::write(&p, &bad).unwrap();
    for labels in [Labels::Fine, Labels::Coarse] {
        let msg = cifar100::read_dir(dir.path(), labels)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("train.bin")
                && msg.contains("record 2 has fine label 100, out of range for 100 classes"),
            "{msg}"
        );
    }
    let mut bad = good;
    bad[3074] = 20; // record 1's coarse label
    fs::write(&p, &bad).unwrap();
    let msg = cifar100::read_dir(dir.path(), Labels::Fine)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("record 1 has coarse label 20, out of range for 20 classes"),
        "{msg}"
    );
}

#[test]
fn missing_or_short_names_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    fs::remove_file(dir.path().join(cifar100::COARSE_NAMES_FILE)).unwrap();
    // The fine labels do not need the coarse names.
    cifar100::read_dir(dir.path(), Labels::Fine).unwrap();
    let msg = cifar100::read_dir(dir.path(), Labels::Coarse)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(
            "missing coarse_label_names.txt (the class names of data.labels = \"coarse\")"
        ),
        "{msg}"
    );
    fs::write(dir.path().join(cifar100::FINE_NAMES_FILE), "apple\npear\n").unwrap();
    let msg = cifar100::read_dir(dir.path(), Labels::Fine)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("fine_label_names.txt") && msg.contains("2 class names, CIFAR-100 has 100"),
        "{msg}"
    );
}

#[test]
fn missing_data_without_download_names_cifar100() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = DataConfig {
        dataset: DatasetKind::Cifar100,
        path: Some(tmp.path().join("nothing")),
        download: false,
        ..DataConfig::default()
    };
    let msg = ablate_data::load(&cfg, 0).unwrap_err().to_string();
    assert!(
        msg.contains("no CIFAR-100 data here") && msg.contains("cifar-100-binary.tar.gz"),
        "{msg}"
    );
}
