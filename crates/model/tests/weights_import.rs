//! Imported weights (`Net::load_safetensors`, what `ablate eval --weights` uses): a tensor with
//! NaN or infinite values, of an integer dtype, missing or extra, or of another shape is refused
//! with the tensor's name; half-precision and f64 files load.

use std::collections::HashMap;
use std::path::Path;

use ablate_model::{ModelSpec, Net, WeightsError};
use candle_core::{DType, Device, Tensor};

fn net() -> Net {
    Net::new(&ModelSpec::default(), 10, &Device::Cpu, 1).unwrap()
}

fn state_dict(net: &Net) -> HashMap<String, Tensor> {
    net.state_dict().unwrap().into_iter().collect()
}

fn save(path: &Path, tensors: &HashMap<String, Tensor>) {
    let list: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    ablate_model::weights::write_safetensors(&list, path).unwrap();
}

/// Replaces element `at` of tensor `key` (flattened) by `value`.
fn poke(tensors: &mut HashMap<String, Tensor>, key: &str, at: usize, value: f32) {
    let t = &tensors[key];
    let mut v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    v[at] = value;
    let shape = t.dims().to_vec();
    tensors.insert(
        key.to_string(),
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap(),
    );
}

fn import(tensors: &HashMap<String, Tensor>) -> Result<(), WeightsError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    save(&path, tensors);
    net().load_safetensors(&path)
}

#[test]
fn weights_with_nan_or_infinity_are_refused_naming_the_tensor() {
    let good = state_dict(&net());
    import(&good).unwrap();
    for (key, value) in [
        ("conv2.weight", f32::NAN),
        ("fc1.bias", f32::INFINITY),
        ("bn3.running_var", f32::NEG_INFINITY),
    ] {
        let mut bad = good.clone();
        poke(&mut bad, key, 3, value);
        let e = import(&bad).unwrap_err();
        assert!(
            matches!(&e, WeightsError::NonFinite { key: k, count: 1 } if k == key),
            "{e}"
        );
        let msg = e.to_string();
        assert!(msg.contains(&format!("`{key}`")), "{msg}");
        assert!(msg.contains("non-finite"), "{msg}");
    }
}

#[test]
fn weights_of_an_integer_dtype_are_refused_naming_the_tensor() {
    let mut bad = state_dict(&net());
    let t = bad["fc2.weight"].to_dtype(DType::U8).unwrap();
    bad.insert("fc2.weight".into(), t);
    let e = import(&bad).unwrap_err();
    assert!(
        matches!(&e, WeightsError::DType { key, dtype: DType::U8 } if key == "fc2.weight"),
        "{e}"
    );
    assert!(e.to_string().contains("`fc2.weight` has dtype U8"), "{e}");
    // PyTorch's i64 BatchNorm counters are ignored, not refused.
    let mut ok = state_dict(&net());
    ok.insert(
        "bn1.num_batches_tracked".into(),
        Tensor::new(7i64, &Device::Cpu).unwrap(),
    );
    import(&ok).unwrap();
}

#[test]
fn half_precision_and_f64_weights_load() {
    let good = state_dict(&net());
    for dtype in [DType::F16, DType::BF16, DType::F64] {
        let converted: HashMap<String, Tensor> = good
            .iter()
            .map(|(k, v)| (k.clone(), v.to_dtype(dtype).unwrap()))
            .collect();
        import(&converted).unwrap_or_else(|e| panic!("{dtype:?}: {e}"));
    }
}

#[test]
fn missing_extra_and_misshapen_tensors_are_refused_naming_the_tensor() {
    let good = state_dict(&net());
    let mut missing = good.clone();
    missing.remove("bn2.running_mean");
    let e = import(&missing).unwrap_err().to_string();
    assert!(e.starts_with("missing tensor `bn2.running_mean`"), "{e}");

    let mut extra = good.clone();
    extra.insert(
        "fc3.weight".into(),
        Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap(),
    );
    let e = import(&extra).unwrap_err().to_string();
    assert!(e.starts_with("unexpected tensor `fc3.weight`"), "{e}");

    let mut shape = good.clone();
    shape.insert(
        "fc1.bias".into(),
        Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
    );
    let e = import(&shape).unwrap_err().to_string();
    assert!(e.starts_with("tensor `fc1.bias` has shape [3]"), "{e}");
}

#[test]
fn a_file_that_is_not_safetensors_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("empty.safetensors", &b""[..]),
        ("text.safetensors", b"not a safetensors file at all"),
        ("huge-header.safetensors", &[0xff; 16][..]),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let e = net().load_safetensors(&path).unwrap_err().to_string();
        assert!(e.contains(name), "{e}");
    }
}
