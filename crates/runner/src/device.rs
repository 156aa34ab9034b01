//! Devices as the command line names them (`cpu`, `cuda:N`): opening one, and recognizing the
//! errors that mean the device itself failed (out of memory, lost), so that a trial's failure
//! record says so. [`describe`] tells what a device is (name, memory) for `ablate devices` and
//! the trial records.

use anyhow::{anyhow, Context};
use candle_core::Device;

pub mod describe;

/// A device as the command line names it: where a trial runs, what a scheduler slot is on,
/// what a Slurm task asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceId {
    /// `cpu`.
    Cpu,
    /// `cuda:N`: the CUDA device of ordinal N (after `CUDA_VISIBLE_DEVICES`).
    Cuda(usize),
}

impl DeviceId {
    /// Reads `cpu` or `cuda:N`.
    pub fn parse(name: &str) -> anyhow::Result<DeviceId> {
        if name == "cpu" {
            return Ok(DeviceId::Cpu);
        }
        name.strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(DeviceId::Cuda)
            .ok_or_else(|| anyhow!("unknown device `{name}`; expected `cpu` or `cuda:N`"))
    }
}

impl std::fmt::Display for DeviceId {
    /// The name [`DeviceId::parse`] reads back: `cpu`, `cuda:N`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// Opens the device `name` (`cpu` or `cuda:N`). A build without the `cuda` feature refuses
/// `cuda:N` in one line that says how to get one.
pub fn open(name: &str) -> anyhow::Result<Device> {
    let ordinal = match DeviceId::parse(name)? {
        DeviceId::Cpu => return Ok(Device::Cpu),
        DeviceId::Cuda(ordinal) => ordinal,
    };
    if !cfg!(feature = "cuda") {
        anyhow::bail!(
            "device `{name}` needs CUDA, but this `ablate` was built without the `cuda` feature \
             (build one with `just build-cuda`, see docs/gpu.md)"
        );
    }
    Device::new_cuda(ordinal).with_context(|| format!("cannot open CUDA device {ordinal}"))
}

/// Checks, before a local sweep starts its trials, that this machine has the CUDA devices of
/// `ordinals` (`--devices cuda:N,...`): a machine without a usable driver or with fewer GPUs
/// fails at once, in one line, instead of every trial failing the same way.
pub fn check_cuda_ordinals(ordinals: &[usize]) -> anyhow::Result<()> {
    let Some(&highest) = ordinals.iter().max() else {
        return Ok(());
    };
    match describe::cuda_devices() {
        // Refused earlier, by the device list's parser, with the same advice as `open`.
        describe::CudaDevices::NotCompiled => Ok(()),
        describe::CudaDevices::Unusable(why) => anyhow::bail!(
            "device `cuda:{highest}`: no usable CUDA device on this machine: {why} \
             (`ablate devices` shows what it has)"
        ),
        describe::CudaDevices::Found { devices, .. } if highest >= devices.len() => {
            anyhow::bail!(
                "device `cuda:{highest}`: this machine has {} CUDA device{} (cuda:0 to cuda:{}; \
                 `ablate devices` lists them)",
                devices.len(),
                if devices.len() == 1 { "" } else { "s" },
                devices.len() - 1
            )
        }
        describe::CudaDevices::Found { .. } => Ok(()),
    }
}

/// A failure of the device itself, as opposed to the trial's configuration or data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceFailure {
    /// The device ran out of memory.
    OutOfMemory,
    /// The device stopped working (lost, reset, faulted, or gone from the machine).
    Lost,
}

impl DeviceFailure {
    /// Recognizes a device failure in an error's text (the CUDA driver's and runtime's error
    /// names and messages, as candle and cudarc print them).
    pub fn classify(text: &str) -> Option<DeviceFailure> {
        const OOM: [&str; 3] = [
            "CUDA_ERROR_OUT_OF_MEMORY",
            "cudaErrorMemoryAllocation",
            "out of memory",
        ];
        const LOST: [&str; 9] = [
            "CUDA_ERROR_LAUNCH_FAILED",
            "CUDA_ERROR_ILLEGAL_ADDRESS",
            "CUDA_ERROR_ECC_UNCORRECTABLE",
            "CUDA_ERROR_NO_DEVICE",
            "CUDA_ERROR_DEVICE_UNAVAILABLE",
            "CUDA_ERROR_DEVICE_NOT_LICENSED",
            "CUDA_ERROR_HARDWARE_STACK_ERROR",
            "CUDA_ERROR_UNKNOWN",
            "unspecified launch failure",
        ];
        if OOM.iter().any(|p| text.contains(p)) {
            Some(DeviceFailure::OutOfMemory)
        } else if LOST.iter().any(|p| text.contains(p)) {
            Some(DeviceFailure::Lost)
        } else {
            None
        }
    }

    /// The words a failure record starts with.
    pub fn label(self) -> &'static str {
        match self {
            DeviceFailure::OutOfMemory => "device out of memory",
            DeviceFailure::Lost => "device lost",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_the_cpu_and_refuses_cuda_without_the_feature() {
        assert!(matches!(open("cpu").unwrap(), Device::Cpu));
        let e = open("gpu0").unwrap_err().to_string();
        assert!(e.contains("expected `cpu` or `cuda:N`"), "{e}");
        assert_eq!(DeviceId::parse("cuda:3").unwrap(), DeviceId::Cuda(3));
        assert!(DeviceId::parse("cuda:x").is_err());
        assert!(DeviceId::parse("CPU").is_err());
        if !cfg!(feature = "cuda") {
            let e = open("cuda:0").unwrap_err().to_string();
            assert!(e.contains("without the `cuda` feature"), "{e}");
        }
    }

    /// Texts as candle 0.11 / cudarc 0.19 print them: `DriverError(CUDA_ERROR_..., "...")`.
    #[test]
    fn recognizes_device_failures() {
        let oom = "training failed: tensor operation failed: DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")";
        assert_eq!(
            DeviceFailure::classify(oom),
            Some(DeviceFailure::OutOfMemory)
        );
        let lost =
            "DriverError(CUDA_ERROR_ILLEGAL_ADDRESS, \"an illegal memory access was encountered\")";
        assert_eq!(DeviceFailure::classify(lost), Some(DeviceFailure::Lost));
        let no = "cannot open CUDA device 1: DriverError(CUDA_ERROR_NO_DEVICE, \"no CUDA-capable device is detected\")";
        assert_eq!(DeviceFailure::classify(no), Some(DeviceFailure::Lost));
        assert_eq!(DeviceFailure::classify("data.path: no such file"), None);
    }
}
