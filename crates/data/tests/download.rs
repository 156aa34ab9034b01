//! The CIFAR-10 download path, against `file://` sources and an HTTP server
//! thread on 127.0.0.1 only (never the network): MD5 check, atomic unpack,
//! and the errors for a checksum mismatch, an unreachable URL and a missing folder.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::thread;

use ablate_data::{cifar, synthetic, DataConfig, DataError, DatasetKind};
use md5::{Digest, Md5};

/// A fake `cifar-10-binary.tar.gz` (synthetic data in the official layout) and its MD5.
fn fake_archive(dir: &Path) -> (PathBuf, String, ablate_data::Dataset) {
    let ds = synthetic::generate(15, 5, 9);
    let staging = dir.join("staging");
    cifar::export_cifar_bin(&ds, &staging.join(cifar::BATCHES_DIR)).unwrap();
    let path = dir.join(cifar::ARCHIVE_NAME);
    let f = File::create(&path).unwrap();
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        f,
        flate2::Compression::fast(),
    ));
    b.append_dir_all(cifar::BATCHES_DIR, staging.join(cifar::BATCHES_DIR))
        .unwrap();
    b.into_inner().unwrap().finish().unwrap();
    let md5: String = Md5::digest(fs::read(&path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (path, md5, ds)
}

/// Serves `body` with `status` to `n` requests on 127.0.0.1; returns the base URL.
fn serve(body: Vec<u8>, status: &'static str, n: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().take(n) {
            let Ok(mut s) = stream else { continue };
            let mut req = Vec::new();
            let mut byte = [0u8; 1];
            while !req.ends_with(b"\r\n\r\n") && s.read(&mut byte).map(|k| k == 1).unwrap_or(false)
            {
                req.push(byte[0]);
            }
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    format!("http://{addr}")
}

fn leftovers(parent: &Path) -> Vec<String> {
    fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".cifar10-download-"))
        .collect()
}

#[test]
fn file_url_download_checks_md5_and_unpacks() {
    let tmp = tempfile::tempdir().unwrap();
    let (archive, md5, ds) = fake_archive(tmp.path());
    let dest = tmp.path().join("data").join("cifar10");
    cifar::fetch(&format!("file://{}", archive.display()), &md5, &dest).unwrap();
    assert!(dest
        .join(cifar::BATCHES_DIR)
        .join(cifar::TEST_FILE)
        .is_file());
    assert!(leftovers(&tmp.path().join("data")).is_empty());
    let back = cifar::load(&dest, false, "", "").unwrap();
    assert_eq!(back.train, ds.train);
    assert_eq!(back.test, ds.test);
    assert_eq!(back.classes, ds.classes);
}

#[test]
fn http_download_from_a_local_server() {
    let tmp = tempfile::tempdir().unwrap();
    let (archive, md5, ds) = fake_archive(tmp.path());
    let base = serve(fs::read(&archive).unwrap(), "200 OK", 1);
    let dest = tmp.path().join("cifar");
    let got = cifar::load(&dest, true, &format!("{base}/cifar-10-binary.tar.gz"), &md5).unwrap();
    assert_eq!(got.train, ds.train);
    assert_eq!(got.test.len, 5);
    // The second load reads the unpacked folder (the server is gone).
    assert_eq!(
        cifar::load(&dest, true, "http://127.0.0.1:9/unused", &md5)
            .unwrap()
            .test,
        ds.test
    );
}

#[test]
fn checksum_mismatch_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let (archive, md5, _) = fake_archive(tmp.path());
    let dest = tmp.path().join("cifar");
    // Through the config: the official MD5 is expected, the fake archive differs.
    let cfg = DataConfig {
        dataset: DatasetKind::Cifar10,
        path: Some(dest.clone()),
        url: format!("file://{}", archive.display()),
        ..DataConfig::default()
    };
    let e = ablate_data::load(&cfg, 0).unwrap_err();
    assert!(matches!(e, DataError::Checksum { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&md5)
            && msg.contains(ablate_data::CIFAR10_MD5)
            && msg.contains("checksum mismatch"),
        "{msg}"
    );
    assert!(!dest.exists());
    assert!(leftovers(tmp.path()).is_empty());
}

#[test]
fn unreachable_url_error_names_it_and_the_local_fix() {
    // Bind then drop a listener: nothing listens on that port any more.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/cifar-10-binary.tar.gz");
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("cifar");
    let e = cifar::load(&dest, true, &url, ablate_data::CIFAR10_MD5).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DataError::Download { .. }), "{msg}");
    assert!(
        msg.contains(&url) && msg.contains("data.path") && msg.contains("file://"),
        "{msg}"
    );
    assert!(!dest.exists());
    // An HTTP error status is a download error too.
    let base = serve(b"no".to_vec(), "404 Not Found", 1);
    let msg = cifar::load(&dest, true, &format!("{base}/x.tar.gz"), "00")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("cannot download") && msg.contains("404"),
        "{msg}"
    );
    assert!(leftovers(tmp.path()).is_empty());
}

#[test]
fn missing_folder_without_download_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = DataConfig {
        path: Some(tmp.path().join("nothing")),
        download: false,
        ..DataConfig::default()
    };
    let msg = ablate_data::load(&cfg, 0).unwrap_err().to_string();
    assert!(
        msg.contains("nothing") && msg.contains("data.download = false"),
        "{msg}"
    );
}

#[test]
fn archive_is_read_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let (archive, _, ds) = fake_archive(tmp.path());
    // The archive itself, and a folder holding it.
    let a = cifar::load(&archive, false, "", "").unwrap();
    assert_eq!(a.train, ds.train);
    let holder = tmp.path().join("holder");
    fs::create_dir(&holder).unwrap();
    fs::copy(&archive, holder.join(cifar::ARCHIVE_NAME)).unwrap();
    assert_eq!(cifar::load(&holder, false, "", "").unwrap().test, ds.test);
}
