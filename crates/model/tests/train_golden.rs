//! Three Adam steps of `Trainer::step` on the golden batch against PyTorch.
//!
//! Reference: `train_golden_adam.json`, written by PyTorch 2.15.0 (CPU, 1 thread)
//! from `../shared/golden/golden_{baseline,se_r16}.safetensors`:
//!
//! ```python
//! m = SeedCNN(red); m.load_state_dict(params, strict=False); m.train(); m.dropout.p = 0.0
//! opt = torch.optim.Adam(m.parameters(), lr=1e-3)
//! for _ in range(3):
//!     opt.zero_grad(); loss = F.cross_entropy(m(x), y); loss.backward(); opt.step()
//! # recorded: each step's loss; per parameter ||p3 - p0|| and sum(p3 - p0);
//! # sum of each BatchNorm running statistic after the 3 forwards
//! ```
//!
//! (`SeedCNN` from `../shared/reference/torch_seed.py`; the script is reproduced
//! in docs/parity.md.) When `../shared/golden` is missing the test prints why and
//! passes.

use std::collections::HashMap;
use std::path::Path;

use ablate_model::train::{TrainConfig, Trainer};
use ablate_model::{AttentionKind, ModelSpec, Net};
use candle_core::{DType, Device, Tensor};

#[derive(serde::Deserialize)]
struct Reference {
    losses: Vec<f64>,
    delta: HashMap<String, [f64; 2]>,
    running_sums: HashMap<String, f64>,
}

fn golden_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/golden")
}

fn check(tag: &str, spec: ModelSpec) {
    let path = golden_dir().join(format!("golden_{tag}.safetensors"));
    if !path.is_file() {
        println!("skipped: {} is missing", path.display());
        return;
    }
    let refs: HashMap<String, Reference> =
        serde_json::from_str(include_str!("train_golden_adam.json")).unwrap();
    let want = &refs[tag];
    let dev = Device::Cpu;
    let g = candle_core::safetensors::load(&path, &dev).unwrap();
    let params: HashMap<String, Tensor> = g
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("param.").map(|n| (n.to_string(), v.clone())))
        .collect();
    let mut net = Net::new(
        &ModelSpec {
            dropout: 0.0,
            ..spec
        },
        10,
        &dev,
        0,
    )
    .unwrap();
    net.load_state_dict(&params).unwrap();
    let p0: HashMap<String, Vec<f32>> = net
        .trainable()
        .into_iter()
        .map(|(k, v)| (k, v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()))
        .collect();
    let x = &g["input"];
    let y = g["target"].to_dtype(DType::U32).unwrap();
    let mut trainer = Trainer::new(&net, &TrainConfig::default(), 0).unwrap();
    for (i, want_loss) in want.losses.iter().enumerate() {
        let out = trainer.step(&net, x, &y).unwrap();
        let rel = (f64::from(out.loss) - want_loss).abs() / want_loss.abs();
        println!(
            "{tag} step {}: loss {} (PyTorch {want_loss}, rel {rel:.1e})",
            i + 1,
            out.loss
        );
        assert!(
            rel < 1e-5,
            "{tag} step {}: loss {} vs PyTorch {want_loss}",
            i + 1,
            out.loss
        );
    }
    for (k, v) in net.trainable() {
        let p3: Vec<f32> = v.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let d: Vec<f64> = p3
            .iter()
            .zip(&p0[&k])
            .map(|(a, b)| f64::from(a - b))
            .collect();
        let norm = d.iter().map(|x| x * x).sum::<f64>().sqrt();
        let sum: f64 = d.iter().sum();
        let [wn, ws] = want.delta[&k];
        // A conv bias before BatchNorm has an analytically zero gradient: PyTorch's
        // and ours are rounding noise (~1e-9), which Adam scales up to about +-lr
        // per step in a random direction; only the size of the update is meaningful.
        if k.starts_with("conv") && k.ends_with(".bias") {
            let n = d.len() as f64;
            assert!(
                norm <= 3.0 * 1e-3 * n.sqrt() * 1.01,
                "{tag} {k}: update norm {norm}"
            );
            continue;
        }
        assert!(
            (norm - wn).abs() <= 0.02 * wn,
            "{tag} {k}: update norm {norm} vs PyTorch {wn}"
        );
        assert!(
            (sum - ws).abs() <= 0.02 * (ws.abs() + wn),
            "{tag} {k}: update sum {sum} vs PyTorch {ws}"
        );
    }
    let sd: HashMap<String, Tensor> = net.state_dict().unwrap().into_iter().collect();
    for (k, w) in &want.running_sums {
        let s = f64::from(sd[k].sum_all().unwrap().to_scalar::<f32>().unwrap());
        // Running means include the conv biases, whose updates are noise (above):
        // momentum 0.1 times at most 2 x 3 x lr of bias difference per channel.
        let slack = if k.ends_with("running_mean") {
            0.1 * 6e-3 * sd[k].elem_count() as f64
        } else {
            0.0
        };
        assert!(
            (s - w).abs() <= 1e-3 * w.abs().max(1.0) + slack,
            "{tag} {k}: {s} vs PyTorch {w}"
        );
    }
}

#[test]
fn train_three_adam_steps_match_pytorch_baseline() {
    check("baseline", ModelSpec::default());
}

#[test]
fn train_three_adam_steps_match_pytorch_se_r16() {
    check(
        "se_r16",
        ModelSpec {
            attention: AttentionKind::Se,
            reduction: 16,
            ..ModelSpec::default()
        },
    );
}
