//! A full disk during a sweep, on a small tmpfs mounted as the results folder: the sweep stops
//! with one message naming the folder, the Parquet files of the sweep before stay as they were,
//! and once space is freed the same command completes. Needs root (mount); `.ci/run` runs it
//! when it is root.

#![cfg(target_os = "linux")]

mod sweep_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use sweep_common::{explain, Sandbox};

/// A tmpfs mounted for the test's lifetime.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(out.status.success(), "mount failed: {}", explain(&out));
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` with `dir/filler`, leaving about `leave` bytes free.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let path = dir.join("filler");
    let stat = nix_statvfs(dir);
    let size = stat.saturating_sub(leave);
    let f = std::fs::File::create(&path).expect("filler");
    // Written, not only sized: a tmpfs allocates pages when they are written.
    let chunk = vec![0xa5u8; 1 << 20];
    let mut left = size;
    let mut w = std::io::BufWriter::new(f);
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        if std::io::Write::write_all(&mut w, &chunk[..n]).is_err() {
            break;
        }
        left -= n as u64;
    }
    let _ = std::io::Write::flush(&mut w);
    path
}

/// Free bytes of the file system holding `dir`.
fn nix_statvfs(dir: &Path) -> u64 {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).expect("path");
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: statvfs(3) with a valid C string and a zeroed struct it fills.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    assert_eq!(rc, 0, "statvfs");
    s.f_bavail as u64 * s.f_frsize as u64
}

fn parquet_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("results")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".parquet"))
        .map(|n| {
            let b = std::fs::read(dir.join(&n)).expect("parquet");
            (n, b)
        })
        .collect();
    v.sort();
    v
}

#[test]
#[ignore = "needs root to mount a tmpfs"]
fn a_full_disk_stops_the_sweep_with_one_message_and_a_rerun_completes() {
    let sb = Sandbox::new("full", &[0], false, 2, 2);
    let _mount = Tmpfs::mount(&sb.dir.path().join("results"), "160m");
    let out = sb.sweep(&[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let before = parquet_files(&sb.results());
    assert_eq!(before.len(), 7, "{before:?}");

    // Two more seeds, with about 1 MB left: the new trials cannot write their checkpoints.
    let text = std::fs::read_to_string(sb.dir.path().join("exp.toml")).unwrap();
    std::fs::write(
        sb.dir.path().join("exp.toml"),
        text.replace("seeds = [0]", "seeds = [0, 1, 2]"),
    )
    .unwrap();
    let filler = fill(&sb.dir.path().join("results"), 1 << 20);
    let out = sb.sweep(&[], &[]);
    eprintln!("the sweep on a full disk:\n{}", explain(&out));
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{}", explain(&out));
    let msg = errors[0];
    assert!(msg.contains("no space left on device"), "{msg}");
    // The folder as the user named it (`--out results`).
    assert!(msg.contains("in results/full/trials/"), "{msg}");
    assert!(msg.contains("free space"), "{msg}");
    // The Parquet files of the first sweep are untouched, and no temporary file is left.
    assert_eq!(parquet_files(&sb.results()), before);
    let stray: Vec<String> = std::fs::read_dir(sb.results())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");

    // Space freed: the same command completes every trial.
    std::fs::remove_file(filler).unwrap();
    let out = sb.sweep(&[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    for t in sb.trials() {
        assert_eq!(t.status()["status"], "completed", "{}", t.dir.display());
        t.assert_complete_records(2, 2);
    }
    let after = sweep_common::read_parquet(&sb.results().join("trials.parquet"));
    assert_eq!(after.height(), 3);
}
