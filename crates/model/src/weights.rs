//! Reading and writing weights as safetensors with PyTorch `state_dict` names.
//!
//! A PyTorch `state_dict` saved with `safetensors.torch.save_file` loads directly (its
//! `*.num_batches_tracked` counters are ignored); ours loads in PyTorch with
//! `model.load_state_dict(safetensors.torch.load_file(path))` (PyTorch fills the missing
//! `num_batches_tracked` with 0).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

/// An error reading, writing or matching weights; names the file or tensor at fault.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// A tensor the model needs is absent.
    #[error("missing tensor `{key}` for model `{model}`")]
    Missing {
        /// The state_dict name.
        key: String,
        /// The model's SPEC string.
        model: String,
    },
    /// A tensor the model does not have (other than `num_batches_tracked`).
    #[error("unexpected tensor `{key}` for model `{model}` (weights of another model spec?)")]
    Unexpected {
        /// The state_dict name.
        key: String,
        /// The model's SPEC string.
        model: String,
    },
    /// A tensor with the wrong shape.
    #[error("tensor `{key}` has shape {got:?}, the model expects {expected:?}")]
    Shape {
        /// The state_dict name.
        key: String,
        /// The model's shape.
        expected: Vec<usize>,
        /// The file's shape.
        got: Vec<usize>,
    },
    /// A tensor whose values cannot be converted or copied.
    #[error("cannot load tensor `{key}`")]
    Tensor {
        /// The state_dict name.
        key: String,
        /// The cause.
        #[source]
        source: candle_core::Error,
    },
    /// A tensor of a non-floating-point dtype (the model's values are floats).
    #[error("tensor `{key}` has dtype {dtype:?}; the model needs floating-point values (f32, f16, bf16 or f64)")]
    DType {
        /// The state_dict name.
        key: String,
        /// The file's dtype.
        dtype: DType,
    },
    /// A tensor holding NaN or infinite values.
    #[error("tensor `{key}` holds {count} non-finite value{} (NaN or infinite); refusing weights that cannot be trained or evaluated", if *count == 1 { "" } else { "s" })]
    NonFinite {
        /// The state_dict name.
        key: String,
        /// How many of its values are NaN or infinite.
        count: usize,
    },
    /// The file cannot be read or parsed as safetensors.
    #[error("cannot read weights from {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: candle_core::Error,
    },
    /// The file cannot be written.
    #[error("cannot write weights to {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The tensors cannot be serialized.
    #[error("cannot serialize weights for {}", path.display())]
    Serialize {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: candle_core::Error,
    },
}

/// Whether `key` is a PyTorch buffer we deliberately ignore when loading.
pub fn is_ignored_key(key: &str) -> bool {
    key.ends_with("num_batches_tracked")
}

/// Reads every tensor of a safetensors file onto `device`.
pub fn read_safetensors(
    path: &Path,
    device: &Device,
) -> Result<HashMap<String, Tensor>, WeightsError> {
    candle_core::safetensors::load(path, device).map_err(|source| WeightsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses the bytes of a safetensors file onto `device`.
pub fn read_safetensors_bytes(
    data: &[u8],
    device: &Device,
) -> candle_core::Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load_buffer(data, device)
}

/// Checks imported weights before they are loaded: every tensor (other than the ignored
/// `num_batches_tracked` counters) is f32, f16, bf16 or f64 and holds only finite values. Names (missing
/// or extra tensors) and shapes are checked by `Net::load_state_dict`. Errors name the first
/// tensor at fault in name order.
pub fn check_imported(tensors: &HashMap<String, Tensor>) -> Result<(), WeightsError> {
    let mut keys: Vec<&String> = tensors.keys().filter(|k| !is_ignored_key(k)).collect();
    keys.sort();
    for key in keys {
        let t = &tensors[key];
        if !matches!(
            t.dtype(),
            DType::F16 | DType::BF16 | DType::F32 | DType::F64
        ) {
            return Err(WeightsError::DType {
                key: key.clone(),
                dtype: t.dtype(),
            });
        }
        let values = t
            .to_dtype(DType::F64)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f64>())
            .map_err(|source| WeightsError::Tensor {
                key: key.clone(),
                source,
            })?;
        let count = values.iter().filter(|v| !v.is_finite()).count();
        if count > 0 {
            return Err(WeightsError::NonFinite {
                key: key.clone(),
                count,
            });
        }
    }
    Ok(())
}

/// Writes `tensors` to `path` atomically (a temporary file in the same folder, synced, then
/// renamed). Weights and checkpoints both go through here.
pub fn write_safetensors(tensors: &[(String, Tensor)], path: &Path) -> Result<(), WeightsError> {
    let data = safetensors_bytes(tensors).map_err(|source| WeightsError::Serialize {
        path: path.to_path_buf(),
        source,
    })?;
    write_file_atomic(path, &data).map_err(|source| WeightsError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// `tensors` as the bytes of a safetensors file.
pub fn safetensors_bytes(tensors: &[(String, Tensor)]) -> candle_core::Result<Vec<u8>> {
    // candle's `save` writes straight to the final path; serialize in memory instead
    let mut cpu = Vec::with_capacity(tensors.len());
    for (k, t) in tensors {
        cpu.push((k.as_str(), t.to_device(&Device::Cpu)?.contiguous()?));
    }
    safetensors::serialize(cpu.iter().map(|(k, t)| (*k, t)), None).map_err(candle_core::Error::wrap)
}

/// Writes `data` to `path` atomically: a temporary file in the same folder, synced before the
/// rename (so a crash never leaves a renamed but empty file). The temporary file is removed
/// when anything fails (a full disk leaves no partial file behind).
pub fn write_file_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "weights".into());
    let tmp_name = format!(".{file_name}.tmp{}", std::process::id());
    let tmp = match dir {
        Some(d) => d.join(tmp_name),
        None => PathBuf::from(tmp_name),
    };
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, data)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Converts a loaded tensor to the model's dtype (f32) and device.
pub(crate) fn to_model(t: &Tensor, device: &Device) -> candle_core::Result<Tensor> {
    t.to_dtype(DType::F32)?.to_device(device)
}
