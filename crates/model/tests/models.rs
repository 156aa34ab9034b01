//! Shapes, names, parameter/MAC counts, determinism, weights I/O and gradient sanity of every
//! model variant: gradients against central finite differences of our own forward pass (the
//! comparison with PyTorch's is `golden.rs`).

use std::collections::HashMap;

use ablate_model::layers::DropoutMasks;
use ablate_model::{AttentionKind, Mode, ModelSpec, Net};
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod common;
use common::nets::{directional_derivative, input, values};

fn spec(s: &str) -> ModelSpec {
    s.parse().unwrap()
}

#[test]
fn parameter_counts_match_the_issue_and_pytorch() {
    let dev = Device::Cpu;
    // issue 3 / `sum(p.numel() for p in SeedCNN().parameters())`
    let base = Net::new(&ModelSpec::default(), 10, &dev, 0).unwrap();
    assert_eq!(base.param_count(), 1_147_914);
    let se = Net::new(&spec("attention=se,reduction=16"), 10, &dev, 0).unwrap();
    assert_eq!(se.param_count(), 1_150_602);
    // r = 4: hidden 8 / 16 / 32 -> 2 * (32*8 + 64*16 + 128*32) = 10,752 extra
    let se4 = Net::new(&spec("attention=se,reduction=4"), 10, &dev, 0).unwrap();
    assert_eq!(se4.param_count(), 1_147_914 + 10_752);
    // ECA: k = 3, 3, 5
    let eca = Net::new(&spec("attention=eca"), 10, &dev, 0).unwrap();
    assert_eq!(eca.param_count(), 1_147_914 + 11);
    // spatial: 2 * 7 * 7 per block
    let sp = Net::new(&spec("attention=spatial"), 10, &dev, 0).unwrap();
    assert_eq!(sp.param_count(), 1_147_914 + 3 * 98);
    // CBAM = SE MLP + spatial conv
    let cbam = Net::new(&spec("attention=cbam"), 10, &dev, 0).unwrap();
    assert_eq!(cbam.param_count(), 1_147_914 + 2_688 + 3 * 98);
    // biases: SE fc.0 (h) + fc.2 (C)
    let seb = Net::new(
        &spec("attention=se,blocks=1,attention_bias=true"),
        10,
        &dev,
        0,
    )
    .unwrap();
    assert_eq!(seb.param_count(), 1_147_914 + 128 + 2 + 32);
    // classes change fc2 only
    let c100 = Net::new(&ModelSpec::default(), 100, &dev, 0).unwrap();
    assert_eq!(c100.param_count(), 1_147_914 - 5_130 + 51_300);
}

#[test]
fn mac_counts() {
    let dev = Device::Cpu;
    // conv 884,736 + 4,718,592 + 4,718,592; fc 1,048,576 + 5,120
    let base = Net::new(&ModelSpec::default(), 10, &dev, 0).unwrap();
    assert_eq!(base.macs(), 11_375_616);
    let se = Net::new(&spec("attention=se"), 10, &dev, 0).unwrap();
    assert_eq!(se.macs(), 11_375_616 + 2_688);
    let se_max = Net::new(&spec("attention=se,squeeze=avg_max"), 10, &dev, 0).unwrap();
    assert_eq!(se_max.macs(), 11_375_616 + 2 * 2_688);
    let eca = Net::new(&spec("attention=eca"), 10, &dev, 0).unwrap();
    assert_eq!(eca.macs(), 11_375_616 + 32 * 3 + 64 * 3 + 128 * 5);
    // spatial at post_relu: 98 MACs per pixel on 32^2, 16^2, 8^2; at post_pool on the halves
    let sp = Net::new(&spec("attention=spatial"), 10, &dev, 0).unwrap();
    assert_eq!(sp.macs(), 11_375_616 + 98 * (1024 + 256 + 64));
    let spp = Net::new(&spec("attention=spatial,placement=post_pool"), 10, &dev, 0).unwrap();
    assert_eq!(spp.macs(), 11_375_616 + 98 * (256 + 64 + 16));
    let cbam = Net::new(&spec("attention=cbam"), 10, &dev, 0).unwrap();
    assert_eq!(cbam.macs(), 11_375_616 + 2 * 2_688 + 98 * (1024 + 256 + 64));
}

#[test]
fn state_dict_names_follow_pytorch() {
    let dev = Device::Cpu;
    let net = Net::new(&spec("attention=cbam,blocks=2"), 10, &dev, 0).unwrap();
    let names: Vec<String> = net
        .state_dict()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let expect = [
        "conv1.weight",
        "conv1.bias",
        "bn1.weight",
        "bn1.bias",
        "bn1.running_mean",
        "bn1.running_var",
        "conv2.weight",
        "conv2.bias",
        "bn2.weight",
        "bn2.bias",
        "bn2.running_mean",
        "bn2.running_var",
        "ca2.fc.0.weight",
        "ca2.fc.2.weight",
        "sa2.conv.weight",
        "conv3.weight",
        "conv3.bias",
        "bn3.weight",
        "bn3.bias",
        "bn3.running_mean",
        "bn3.running_var",
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
    ];
    assert_eq!(names, expect);
    let trainable: Vec<String> = net.trainable().into_iter().map(|(k, _)| k).collect();
    assert_eq!(trainable.len(), expect.len() - 6);
    assert!(trainable.iter().all(|k| !k.contains("running")));
    let shapes: HashMap<String, Vec<usize>> = net
        .state_dict()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.dims().to_vec()))
        .collect();
    assert_eq!(shapes["ca2.fc.0.weight"], [4, 64]);
    assert_eq!(shapes["ca2.fc.2.weight"], [64, 4]);
    assert_eq!(shapes["sa2.conv.weight"], [1, 2, 7, 7]);
    let eca = Net::new(&spec("attention=eca,attention_bias=true"), 10, &dev, 0).unwrap();
    let shapes: HashMap<String, Vec<usize>> = eca
        .state_dict()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.dims().to_vec()))
        .collect();
    assert_eq!(shapes["ca1.conv.weight"], [1, 1, 3]);
    assert_eq!(shapes["ca3.conv.weight"], [1, 1, 5]);
    assert_eq!(shapes["ca3.conv.bias"], [1]);
}

#[test]
fn every_variant_runs_with_the_right_shapes_and_intermediates() {
    let dev = Device::Cpu;
    let x = input(2, 1);
    for kind in ["none", "se", "eca", "spatial", "cbam"] {
        for placement in ["post_conv", "post_bn", "post_relu", "post_pool"] {
            let s = spec(&format!(
                "attention={kind},placement={placement},blocks=1+3,squeeze=avg_max,gate=hard_sigmoid"
            ));
            let net = Net::new(&s, 7, &dev, 3).unwrap();
            let (logits, inter) = net
                .forward_inspect(
                    &x,
                    Mode::Train {
                        dropout: DropoutMasks::Keyed(5),
                    },
                )
                .unwrap();
            assert_eq!(logits.dims(), [2, 7], "{s}");
            assert!(values(&logits).iter().all(|v| v.is_finite()), "{s}");
            let names: Vec<&str> = inter.iter().map(|(k, _)| k.as_str()).collect();
            let kind = s.attention;
            for (i, c, side) in [(1usize, 32usize, 32usize), (2, 64, 16), (3, 128, 8)] {
                let conv = inter
                    .iter()
                    .find(|(k, _)| *k == format!("block{i}.conv"))
                    .unwrap();
                assert_eq!(conv.1.dims(), [2, c, side, side]);
                let attended = i != 2;
                let gate = inter.iter().find(|(k, _)| *k == format!("block{i}.gate"));
                assert_eq!(
                    gate.is_some(),
                    attended && kind.has_channel_gate(),
                    "{s} {names:?}"
                );
                if let Some((_, g)) = gate {
                    assert_eq!(g.dims(), [2, c]);
                    assert!(values(g).iter().all(|v| (0.0..=1.0).contains(v)));
                }
                let sg = inter
                    .iter()
                    .find(|(k, _)| *k == format!("block{i}.spatial_gate"));
                assert_eq!(
                    sg.is_some(),
                    attended && kind.has_spatial_gate(),
                    "{s} {names:?}"
                );
                if let Some((_, g)) = sg {
                    let hs = if s.placement == ablate_model::Placement::PostPool {
                        side / 2
                    } else {
                        side
                    };
                    assert_eq!(g.dims(), [2, 1, hs, hs]);
                }
            }
            let eval = net.forward(&x, Mode::Eval).unwrap();
            assert_eq!(eval.dims(), [2, 7]);
        }
    }
}

#[test]
fn init_is_seeded_and_shared_across_variants() {
    let dev = Device::Cpu;
    let a = Net::new(&ModelSpec::default(), 10, &dev, 42).unwrap();
    let b = Net::new(&ModelSpec::default(), 10, &dev, 42).unwrap();
    let c = Net::new(&ModelSpec::default(), 10, &dev, 43).unwrap();
    let se = Net::new(&spec("attention=se"), 10, &dev, 42).unwrap();
    let sd = |n: &Net| -> HashMap<String, Vec<f32>> {
        n.state_dict()
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, values(&v)))
            .collect()
    };
    let (sa, sb, sc, sse) = (sd(&a), sd(&b), sd(&c), sd(&se));
    assert_eq!(sa, sb);
    assert_ne!(sa["conv1.weight"], sc["conv1.weight"]);
    for (k, v) in &sa {
        assert_eq!(
            &sse[k], v,
            "{k} differs between baseline and SE of one seed"
        );
    }
    // PyTorch's default bounds: conv1 1/sqrt(27), fc1 1/sqrt(2048); BN 1 / 0 / 0 / 1
    let max_abs = |v: &[f32]| v.iter().fold(0f32, |m, x| m.max(x.abs()));
    assert!(max_abs(&sa["conv1.weight"]) <= 1.0 / 27f32.sqrt());
    assert!(max_abs(&sa["conv1.weight"]) > 0.9 / 27f32.sqrt());
    assert!(max_abs(&sa["fc1.bias"]) <= 1.0 / 2048f32.sqrt());
    assert!(max_abs(&sse["ca1.fc.2.weight"]) <= 1.0 / 2f32.sqrt());
    assert!(sa["bn2.weight"].iter().all(|&v| v == 1.0));
    assert!(sa["bn2.bias"].iter().all(|&v| v == 0.0));
    assert!(sa["bn2.running_mean"].iter().all(|&v| v == 0.0));
    assert!(sa["bn2.running_var"].iter().all(|&v| v == 1.0));
}

#[test]
fn train_mode_updates_running_stats_and_dropout_is_seeded() {
    let dev = Device::Cpu;
    let net = Net::new(&ModelSpec::default(), 10, &dev, 0).unwrap();
    let x = input(4, 2);
    let before = values(&net.buffers()[0].1);
    let e1 = values(&net.forward(&x, Mode::Eval).unwrap());
    assert_eq!(
        values(&net.buffers()[0].1),
        before,
        "eval changed running stats"
    );
    let d1 = values(
        &net.forward(
            &x,
            Mode::Train {
                dropout: DropoutMasks::Keyed(1),
            },
        )
        .unwrap(),
    );
    let after = values(&net.buffers()[0].1);
    assert_ne!(after, before);
    let d1b = values(
        &net.forward(
            &x,
            Mode::Train {
                dropout: DropoutMasks::Keyed(1),
            },
        )
        .unwrap(),
    );
    let d2 = values(
        &net.forward(
            &x,
            Mode::Train {
                dropout: DropoutMasks::Keyed(2),
            },
        )
        .unwrap(),
    );
    let nd = values(
        &net.forward(
            &x,
            Mode::Train {
                dropout: DropoutMasks::Off,
            },
        )
        .unwrap(),
    );
    assert_eq!(d1, d1b, "same dropout seed, same logits");
    assert_ne!(d1, d2);
    assert_ne!(d1, nd);
    let e2 = values(&net.forward(&x, Mode::Eval).unwrap());
    assert_ne!(e1, e2, "eval uses the updated running stats");
}

#[test]
fn weights_round_trip_through_safetensors() {
    let dev = Device::Cpu;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let s = spec("attention=cbam,attention_bias=true");
    let a = Net::new(&s, 10, &dev, 1).unwrap();
    // give the buffers non-default values
    a.forward(
        &input(3, 4),
        Mode::Train {
            dropout: DropoutMasks::Off,
        },
    )
    .unwrap();
    a.save_safetensors(&path).unwrap();
    let mut b = Net::new(&s, 10, &dev, 2).unwrap();
    b.load_safetensors(&path).unwrap();
    let x = input(2, 9);
    assert_eq!(
        values(&a.forward(&x, Mode::Eval).unwrap()),
        values(&b.forward(&x, Mode::Eval).unwrap())
    );
    // the file holds exactly the state_dict
    let file = candle_core::safetensors::load(&path, &dev).unwrap();
    assert_eq!(file.len(), a.state_dict().unwrap().len());

    // extra num_batches_tracked is ignored; a missing or unexpected key is named
    let mut tensors: HashMap<String, Tensor> = file.clone();
    tensors.insert(
        "bn1.num_batches_tracked".into(),
        Tensor::new(3i64, &dev).unwrap(),
    );
    b.load_state_dict(&tensors).unwrap();
    let mut missing = tensors.clone();
    missing.remove("sa2.conv.bias");
    let e = b.load_state_dict(&missing).unwrap_err().to_string();
    assert!(e.starts_with("missing tensor `sa2.conv.bias`"), "{e}");
    let mut extra = tensors.clone();
    extra.insert(
        "head.weight".into(),
        Tensor::zeros(3, DType::F32, &dev).unwrap(),
    );
    let e = b.load_state_dict(&extra).unwrap_err().to_string();
    assert!(e.starts_with("unexpected tensor `head.weight`"), "{e}");
    // f64 and f16 inputs are converted
    let f64s: HashMap<String, Tensor> = file
        .iter()
        .map(|(k, v)| (k.clone(), v.to_dtype(DType::F64).unwrap()))
        .collect();
    b.load_state_dict(&f64s).unwrap();
    let e = b
        .load_safetensors(&dir.path().join("absent.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("absent.safetensors"), "{e}");
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let dev = Device::Cpu;
    let net = Net::new(&ModelSpec::default(), 10, &dev, 0).unwrap();
    let e = net
        .forward(
            &Tensor::zeros((1, 3, 28, 28), DType::F32, &dev).unwrap(),
            Mode::Eval,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("[B, 3, 32, 32]"), "{e}");
    let e = net
        .forward(
            &Tensor::zeros((1, 3, 32, 32), DType::F64, &dev).unwrap(),
            Mode::Eval,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("f32"), "{e}");
    let bad = ModelSpec {
        attention: AttentionKind::Se,
        reduction: 0,
        ..ModelSpec::default()
    };
    let e = Net::new(&bad, 10, &dev, 0).unwrap_err().to_string();
    assert!(e.contains("model.reduction"), "{e}");
}

/// Directional finite-difference check of the train-mode loss gradient (dropout off) with
/// respect to the named parameters, in f32: `(L(p + h d) - L(p - h d)) / 2h` against `g . d`
/// for a random direction `d` of unit norm.
fn check_gradients(s: &str, names: &[&str]) {
    let dev = Device::Cpu;
    let net = Net::new(&spec(s), 10, &dev, 11).unwrap();
    let x = input(4, 12);
    let target = Tensor::new(&[1u32, 4, 7, 9], &dev).unwrap();
    let mode = Mode::Train {
        dropout: DropoutMasks::Off,
    };
    let loss_of = |net: &Net| -> f64 {
        let logits = net.forward(&x, mode).unwrap();
        candle_nn::loss::cross_entropy(&logits, &target)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let logits = net.forward(&x, mode).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &target).unwrap();
    let grads = loss.backward().unwrap();
    let trainable: HashMap<String, candle_core::Var> = net.trainable().into_iter().collect();
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for name in names {
        let var = &trainable[*name];
        let g = grads
            .get(var)
            .unwrap_or_else(|| panic!("{s}: no gradient for {name}"));
        let gv = values(g);
        assert!(gv.iter().all(|v| v.is_finite()), "{s}: {name}");
        assert!(
            gv.iter().any(|v| *v != 0.0),
            "{s}: {name} has an all-zero gradient"
        );
        // random signs, unit norm: every element moves by h / sqrt(n)
        let unit = 1.0 / (gv.len() as f32).sqrt();
        let d: Vec<f32> = (0..gv.len())
            .map(|_| if rng.random::<bool>() { unit } else { -unit })
            .collect();
        let (analytic, numeric) = directional_derivative(var, &gv, &d, 3e-3, || loss_of(&net));
        let err = (numeric - analytic).abs() / analytic.abs().max(1e-2);
        println!("{s} {name}: analytic {analytic:.6e} numeric {numeric:.6e} rel {err:.2e}");
        // The loss is only piecewise smooth (ReLU, max-pool and max reductions switch under
        // the perturbation) and computed in f32, so agreement is to a few percent; real bugs
        // (a missing path, a wrong factor such as candle's 1/4 max-pool gradient) are far off.
        assert!(
            err < 1e-1,
            "{s} {name}: analytic {analytic} vs numeric {numeric}"
        );
    }
}

#[test]
fn eca_gradients_match_finite_differences() {
    check_gradients(
        "attention=eca",
        &["ca1.conv.weight", "ca3.conv.weight", "conv2.bias"],
    );
    check_gradients(
        "attention=eca,squeeze=avg_max,attention_bias=true,placement=post_bn",
        &["ca2.conv.weight", "ca2.conv.bias"],
    );
}

#[test]
fn spatial_gradients_match_finite_differences() {
    check_gradients(
        "attention=spatial",
        &["sa1.conv.weight", "sa3.conv.weight", "bn1.weight"],
    );
    check_gradients(
        "attention=spatial,placement=post_pool,spatial_kernel=3,attention_bias=true",
        &["sa2.conv.weight", "sa2.conv.bias"],
    );
}

#[test]
fn cbam_gradients_match_finite_differences() {
    check_gradients(
        "attention=cbam",
        &[
            "ca1.fc.0.weight",
            "ca2.fc.2.weight",
            "sa3.conv.weight",
            "conv1.weight",
        ],
    );
}

#[test]
fn se_variants_gradients_match_finite_differences() {
    check_gradients(
        "attention=se,squeeze=max,gate=hard_sigmoid,placement=post_conv,reduction=8",
        &["ca1.fc.0.weight", "ca3.fc.2.weight"],
    );
}
