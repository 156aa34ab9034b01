//! [`Reference`]: the tensors and metadata of one safetensors file of reference values.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::GoldenError;

/// The tensors (on the CPU) and metadata of one file of reference values.
pub struct Reference {
    /// The file's name, for messages.
    pub label: String,
    tensors: HashMap<String, Tensor>,
    meta: HashMap<String, String>,
}

impl Reference {
    /// Reads `path`.
    pub fn read(path: &Path) -> Result<Reference, GoldenError> {
        let bytes = std::fs::read(path).map_err(|source| GoldenError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let label = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let format = |what: String| GoldenError::Format {
            file: label.clone(),
            what,
        };
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| format(format!("not a safetensors file: {e}")))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| format(format!("not a safetensors file: {e}")))?;
        Ok(Reference {
            tensors,
            meta: meta.metadata().clone().unwrap_or_default(),
            label,
        })
    }

    /// The tensor `key`.
    pub fn get(&self, key: &str) -> Result<&Tensor, GoldenError> {
        self.tensors.get(key).ok_or_else(|| GoldenError::Format {
            file: self.label.clone(),
            what: format!("no tensor `{key}`"),
        })
    }

    /// Whether the file has the tensor `key`.
    pub fn has(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }

    /// The metadata value `key`.
    pub fn meta(&self, key: &str) -> Result<&str, GoldenError> {
        self.meta
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| GoldenError::Format {
                file: self.label.clone(),
                what: format!("no metadata `{key}`"),
            })
    }

    /// The tensors whose key starts with `prefix`, by the rest of the key.
    pub fn with_prefix(&self, prefix: &str) -> HashMap<String, Tensor> {
        self.tensors
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|n| (n.to_string(), v.clone())))
            .collect()
    }

    /// The values of tensor `key` as f64, flattened.
    pub fn f64s(&self, key: &str) -> Result<Vec<f64>, GoldenError> {
        f64s(self.get(key)?).map_err(|e| GoldenError::Format {
            file: self.label.clone(),
            what: format!("tensor `{key}`: {e}"),
        })
    }
}

/// The elements of `t` (on any device) as f64, flattened.
pub(super) fn f64s(t: &Tensor) -> candle_core::Result<Vec<f64>> {
    t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()
}
