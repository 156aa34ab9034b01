//! Imported weights (`ablate eval --weights FILE`): any bytes load into the network or give a
//! `WeightsError` naming the file or the tensor; weights with NaN or infinite values are never
//! loaded.
#![no_main]

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use ablate_model::{ModelSpec, Net};
use candle_core::Device;
use libfuzzer_sys::fuzz_target;

fn net() -> &'static Mutex<Net> {
    static NET: OnceLock<Mutex<Net>> = OnceLock::new();
    NET.get_or_init(|| {
        let spec: ModelSpec = "attention=se,reduction=16".parse().expect("spec");
        Mutex::new(Net::new(&spec, 10, &Device::Cpu, 0).expect("net"))
    })
}

fuzz_target!(|data: &[u8]| {
    let mut net = net().lock().unwrap_or_else(|p| p.into_inner());
    if net
        .load_safetensors_bytes(data, Path::new("fuzz.safetensors"))
        .is_ok()
    {
        for (name, t) in net.state_dict().expect("state dict") {
            let v = t.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("f32");
            assert!(v.iter().all(|x| x.is_finite()), "{name} loaded non-finite values");
        }
    }
});
