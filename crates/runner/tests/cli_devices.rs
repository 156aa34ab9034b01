//! `ablate devices` run as a process: the CPU line, and the CUDA line of this build.

use std::process::Command;

use ablate_runner::device::describe::{cpu, gib};

fn devices() -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ablate"))
        .arg("devices")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn lists_the_cpu_with_its_cores_model_and_memory() {
    let (code, stdout, stderr) = devices();
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let mut lines = stdout.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("device  "), "{stdout}");
    let cpu_line = lines.next().unwrap();
    assert!(cpu_line.starts_with("cpu  "), "{stdout}");
    let c = cpu();
    assert!(
        cpu_line.ends_with(&format!("{} logical cores", c.logical_cores)),
        "{stdout}"
    );
    if let Some(model) = &c.model {
        assert!(cpu_line.contains(model.as_str()), "{stdout}");
    }
    if let Some(bytes) = c.memory_bytes {
        assert!(cpu_line.contains(&gib(bytes)), "{stdout}");
    }
    // The last line is about CUDA, whatever the build.
    assert!(
        stdout.lines().last().unwrap().starts_with("cuda: "),
        "{stdout}"
    );
}

#[cfg(not(feature = "cuda"))]
#[test]
fn says_cuda_is_not_compiled_in_and_how_to_build_it() {
    let (code, stdout, _) = devices();
    assert_eq!(code, 0);
    // Header, the CPU, the CUDA line: no CUDA device rows.
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    let last = stdout.lines().last().unwrap();
    assert!(last.starts_with("cuda: not compiled in"), "{stdout}");
    assert!(last.contains("just build-cuda"), "{stdout}");
    assert!(last.contains("docs/gpu.md"), "{stdout}");
}
