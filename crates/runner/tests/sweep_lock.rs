//! A second sweep on a locked results folder is refused, naming the holder.

mod sweep_common;

use ablate_runner::exec::lock::SweepLock;
use sweep_common::{explain, Sandbox};

#[test]
fn the_lock_refuses_a_second_sweep() {
    let sb = Sandbox::new("locked", &[0], false, 1, 1);
    std::fs::create_dir_all(sb.results()).unwrap();
    let held = SweepLock::acquire(&sb.results().join("sweep.lock")).unwrap();
    let out = sb.sweep(&[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("locked by another sweep"), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", std::process::id())),
        "{stderr}"
    );
    assert!(
        !sb.results()
            .join("trials")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some()),
        "nothing ran"
    );
    drop(held);
    let out = sb.sweep(&[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
}
