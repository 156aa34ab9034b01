//! What this binary can compute on: the CPU (cores, model name, memory) and, in a build with
//! the `cuda` feature, each CUDA device the driver reports (name, memory, compute capability),
//! or why none is usable. `ablate devices` prints it; a trial records its device's human name
//! with [`device_name`].
//!
//! CUDA devices are read through the driver API (`cuInit`, `cuDeviceGet*`) of the `cudarc`
//! that candle re-exports, without creating a context: listing takes no GPU memory.

use std::path::Path;

use super::DeviceId;

/// The CPU as this process sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuInfo {
    /// Logical cores this process may run on (affinity and cgroup limits applied).
    pub logical_cores: usize,
    /// `model name` of /proc/cpuinfo, when there is one.
    pub model: Option<String>,
    /// `MemTotal` of /proc/meminfo in bytes, when readable.
    pub memory_bytes: Option<u64>,
}

/// One CUDA device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaDevice {
    /// Ordinal, as in `cuda:N` (after `CUDA_VISIBLE_DEVICES`).
    pub index: usize,
    /// The driver's name for it, e.g. `NVIDIA H200`.
    pub name: String,
    /// Total memory in bytes.
    pub memory_bytes: u64,
    /// Compute capability (major, minor), e.g. (9, 0).
    pub compute_capability: (u32, u32),
}

/// What CUDA offers this binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CudaDevices {
    /// Built without the `cuda` feature.
    NotCompiled,
    /// Built with it, but the driver cannot be used or reports no device: the reason.
    Unusable(String),
    /// The devices the driver reports (at least one), and the driver's CUDA version
    /// (major, minor).
    Found {
        /// CUDA version the driver supports.
        driver_version: (u32, u32),
        /// The devices, by ordinal.
        devices: Vec<CudaDevice>,
    },
}

/// The compute capability this binary's CUDA kernels were compiled for (`CUDA_COMPUTE_CAP` of
/// `scripts/build-cuda.sh`, e.g. `90`), when the build recorded it.
pub fn built_compute_capability() -> Option<&'static str> {
    if cfg!(feature = "cuda") {
        option_env!("CUDA_COMPUTE_CAP")
    } else {
        None
    }
}

/// The CPU: logical cores, model name and memory.
pub fn cpu() -> CpuInfo {
    CpuInfo {
        logical_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        model: read_proc(Path::new("/proc/cpuinfo")).and_then(|t| cpu_model(&t)),
        memory_bytes: read_proc(Path::new("/proc/meminfo")).and_then(|t| mem_total(&t)),
    }
}

/// The CUDA devices, or why there are none.
pub fn cuda_devices() -> CudaDevices {
    #[cfg(feature = "cuda")]
    {
        cuda::devices()
    }
    #[cfg(not(feature = "cuda"))]
    {
        CudaDevices::NotCompiled
    }
}

/// A device string (`cpu`, `cuda:N`, as [`super::open`] takes it) as a human name: the CPU's
/// model name, the GPU's name. `None` when it cannot be told (no model name in /proc/cpuinfo,
/// a CUDA device this binary cannot see, a string that names no device).
pub fn device_name(device: &str) -> Option<String> {
    match DeviceId::parse(device).ok()? {
        DeviceId::Cpu => read_proc(Path::new("/proc/cpuinfo")).and_then(|t| cpu_model(&t)),
        #[cfg(feature = "cuda")]
        DeviceId::Cuda(index) => cuda::name(index),
        #[cfg(not(feature = "cuda"))]
        DeviceId::Cuda(_) => None,
    }
}

/// The first `model name` of a /proc/cpuinfo text (x86; on other machines the field may be
/// missing).
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        let value = value.trim();
        (key.trim() == "model name" && !value.is_empty()).then(|| value.to_string())
    })
}

/// `MemTotal` of a /proc/meminfo text, in bytes.
pub fn mem_total(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix("MemTotal:")?;
        let kib: u64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
        kib.checked_mul(1024)
    })
}

/// Bytes as GiB with one decimal, e.g. `139.8 GiB`.
pub fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

fn read_proc(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

#[cfg(feature = "cuda")]
mod cuda {
    //! The driver API calls (no context is created).

    use candle_core::cuda_backend::cudarc::driver::{result, sys};

    use super::{CudaDevice, CudaDevices};

    /// `NAME: description` of a driver error.
    fn describe(e: result::DriverError) -> String {
        let name = e.error_name().map(|s| s.to_string_lossy().into_owned());
        let text = e.error_string().map(|s| s.to_string_lossy().into_owned());
        match (name, text) {
            (Ok(n), Ok(t)) => format!("{n}: {t}"),
            (Ok(n), Err(_)) => n,
            _ => format!("CUDA error {:?}", e.0),
        }
    }

    pub(super) fn devices() -> CudaDevices {
        if let Err(e) = result::init() {
            return CudaDevices::Unusable(format!(
                "the CUDA driver did not initialize ({})",
                describe(e)
            ));
        }
        let mut version: std::ffi::c_int = 0;
        // SAFETY: cuDriverGetVersion writes one int through a valid pointer.
        let driver_version = match unsafe { sys::cuDriverGetVersion(&mut version) }.result() {
            Ok(()) => ((version / 1000) as u32, ((version % 1000) / 10) as u32),
            Err(e) => {
                return CudaDevices::Unusable(format!(
                    "cannot read the driver version ({})",
                    describe(e)
                ))
            }
        };
        let count = match result::device::get_count() {
            Ok(n) => n,
            Err(e) => {
                return CudaDevices::Unusable(format!("cannot count devices ({})", describe(e)))
            }
        };
        if count <= 0 {
            return CudaDevices::Unusable("the CUDA driver reports no device".into());
        }
        let mut devices = Vec::new();
        for i in 0..count {
            match device(i) {
                Ok(d) => devices.push(d),
                Err(e) => {
                    return CudaDevices::Unusable(format!(
                        "cannot read device {i} ({})",
                        describe(e)
                    ))
                }
            }
        }
        CudaDevices::Found {
            driver_version,
            devices,
        }
    }

    fn device(ordinal: i32) -> Result<CudaDevice, result::DriverError> {
        use sys::CUdevice_attribute::{
            CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR as MAJOR,
            CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR as MINOR,
        };
        let dev = result::device::get(ordinal)?;
        let name = result::device::get_name(dev)?;
        // SAFETY: `dev` was returned by cuDeviceGet above.
        let (memory, major, minor) = unsafe {
            (
                result::device::total_mem(dev)?,
                result::device::get_attribute(dev, MAJOR)?,
                result::device::get_attribute(dev, MINOR)?,
            )
        };
        Ok(CudaDevice {
            index: ordinal as usize,
            name,
            memory_bytes: memory as u64,
            compute_capability: (major.max(0) as u32, minor.max(0) as u32),
        })
    }

    pub(super) fn name(index: usize) -> Option<String> {
        result::init().ok()?;
        let dev = result::device::get(i32::try_from(index).ok()?).ok()?;
        result::device::get_name(dev).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cpu_model_name_of_proc_cpuinfo() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 143\n\
                    model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz\n\
                    processor\t: 1\nmodel name\t: other\n";
        assert_eq!(
            cpu_model(text).as_deref(),
            Some("Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz")
        );
        // An arm64 /proc/cpuinfo has no model name.
        assert_eq!(
            cpu_model("processor\t: 0\nBogoMIPS\t: 50.00\nCPU part\t: 0xd0c\n"),
            None
        );
        assert_eq!(cpu_model("model name\t:   \n"), None);
    }

    #[test]
    fn reads_mem_total_of_proc_meminfo() {
        let text = "MemTotal:       131891232 kB\nMemFree:        1000 kB\n";
        assert_eq!(mem_total(text), Some(131_891_232 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(gib(150 * (1 << 30) + (1 << 29)), "150.5 GiB");
    }

    #[test]
    fn names_the_cpu_as_proc_cpuinfo_does() {
        let from_proc = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| cpu_model(&t));
        assert_eq!(device_name("cpu"), from_proc);
        assert_eq!(cpu().model, from_proc);
        if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            assert!(from_proc.is_some_and(|m| !m.is_empty()));
        }
    }

    #[test]
    fn names_nothing_for_unknown_strings() {
        assert_eq!(device_name("tpu:0"), None);
        assert_eq!(device_name("CPU"), None);
        assert_eq!(device_name("cuda:x"), None);
        assert_eq!(device_name(""), None);
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn without_the_cuda_feature_there_are_no_cuda_devices() {
        assert_eq!(cuda_devices(), CudaDevices::NotCompiled);
        assert_eq!(device_name("cuda:0"), None);
        assert_eq!(built_compute_capability(), None);
    }
}
