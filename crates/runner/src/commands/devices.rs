//! `ablate devices`: what this binary can run trials on (the `--devices` values), one line per
//! device, then one line on CUDA: the driver, or why no CUDA device is usable, or that this
//! build has no CUDA and how to get one.

use crate::device::describe::{built_compute_capability, cpu, cuda_devices, gib, CudaDevices};

use super::CommandResult;

/// `ablate devices`.
pub fn run() -> CommandResult {
    print!("{}", listing());
    Ok(crate::cli::EXIT_OK)
}

/// The text `ablate devices` prints.
pub fn listing() -> String {
    let mut rows = vec![["device", "name", "memory", "details"].map(String::from)];
    let c = cpu();
    rows.push([
        "cpu".into(),
        c.model.unwrap_or_else(|| "(model name unknown)".into()),
        c.memory_bytes.map_or_else(|| "-".into(), gib),
        format!("{} logical cores", c.logical_cores),
    ]);
    let built = built_compute_capability();
    let cuda = cuda_devices();
    let note = match &cuda {
        CudaDevices::NotCompiled => "cuda: not compiled in: this `ablate` was built without the \
             `cuda` feature; build a CUDA binary with `just build-cuda [CAP]` \
             (scripts/build-cuda.sh, docs/gpu.md)"
            .to_string(),
        CudaDevices::Unusable(why) => format!("cuda: no usable device: {why}"),
        CudaDevices::Found {
            driver_version: (major, minor),
            devices,
        } => {
            let mut mismatched = Vec::new();
            for d in devices {
                let (cc_major, cc_minor) = d.compute_capability;
                if built.is_some_and(|b| !kernels_run_on(b, cc_major * 10 + cc_minor)) {
                    mismatched.push(format!("cuda:{}", d.index));
                }
                rows.push([
                    format!("cuda:{}", d.index),
                    d.name.clone(),
                    gib(d.memory_bytes),
                    format!("compute capability {cc_major}.{cc_minor}"),
                ]);
            }
            let mut note = format!("cuda: driver for CUDA {major}.{minor}");
            if let Some(b) = built {
                note.push_str(&format!("; kernels built for compute capability {b}"));
            }
            if !mismatched.is_empty() {
                note.push_str(&format!(
                    "; {} cannot run them (rebuild with `just build-cuda CAP`, CAP the \
                     device's capability without the dot)",
                    mismatched.join(", ")
                ));
            }
            note
        }
    };
    let mut out = table(&rows);
    out.push_str(&note);
    out.push('\n');
    out
}

/// Whether kernels built for compute capability `built` (`CUDA_COMPUTE_CAP`, e.g. `80`, `90`,
/// `90a`) load on a device of capability `device` (major * 10 + minor). candle's build
/// (cudaforge) compiles 90 and above as the architecture-specific `90a`, `100a`, ..., which
/// runs only on that architecture; below 90 it emits PTX that newer devices compile at load.
pub fn kernels_run_on(built: &str, device: u32) -> bool {
    let digits = built.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let Ok(base) = digits.parse::<u32>() else {
        return true;
    };
    if base >= 90 || digits.len() != built.len() {
        device == base
    } else {
        device >= base
    }
}

/// Rows as left-aligned columns separated by two spaces.
fn table(rows: &[[String; 4]]) -> String {
    let mut widths = [0usize; 4];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let rows = [
            ["a", "long name", "1", "x"].map(String::from),
            ["bbb", "n", "22", ""].map(String::from),
        ];
        assert_eq!(table(&rows), "a    long name  1   x\nbbb  n          22\n");
    }

    #[test]
    fn tells_which_devices_load_the_kernels() {
        // sm_90a kernels: Hopper only.
        assert!(kernels_run_on("90", 90));
        assert!(!kernels_run_on("90", 80));
        assert!(!kernels_run_on("90", 100));
        assert!(kernels_run_on("100a", 100));
        // compute_80 PTX: Ampere and newer.
        assert!(kernels_run_on("80", 80));
        assert!(kernels_run_on("80", 90));
        assert!(!kernels_run_on("80", 75));
        assert!(!kernels_run_on("86a", 89));
    }
}
