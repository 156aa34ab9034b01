//! The CIFAR ResNets (He et al. 2016, Sec. 4.2) and their attention integration points (Hu et
//! al., TPAMI 2019, Fig. 5): parameter counts against the paper and PyTorch, MAC counts,
//! `state_dict` names and shapes, intermediates, the option-A shortcut, every integration point
//! under every kernel choice against each other, and gradients against central finite
//! differences of our own forward pass. The comparison with PyTorch's numbers is `golden.rs`
//! (fixtures `golden_resnet*`). Small networks (ResNet-8, batch 2) keep it fast.

use std::collections::HashMap;

use ablate_model::layers::DropoutMasks;
use ablate_model::ops::kernels::Kernels;
use ablate_model::{Mode, ModelSpec, Net};
use candle_core::{Device, Tensor};

mod common;
use common::nets::{directional_derivative, input, values};

fn spec(s: &str) -> ModelSpec {
    format!("arch=resnet,{s}").parse().unwrap()
}

fn net(s: &str, seed: u64) -> Net {
    Net::new(&spec(s), 10, &Device::Cpu, seed).unwrap()
}

const TRAIN: Mode = Mode::Train {
    dropout: DropoutMasks::Off,
};

#[test]
fn parameter_counts_match_the_paper_and_pytorch() {
    // He et al. 2016, Table 6: ResNet-20 0.27 M, 56 0.85 M, 110 1.7 M; exact values are
    // `sum(p.numel() for p in ResNet(spec).parameters())` of scripts/golden.py's ResNet.
    assert_eq!(net("depth=20,attention=none", 0).param_count(), 269_722);
    assert_eq!(net("depth=56,attention=none", 0).param_count(), 853_018);
    assert_eq!(net("depth=110,attention=none", 0).param_count(), 1_727_962);
    // option B: the two projections, 16*32 + 2*32 and 32*64 + 2*64
    assert_eq!(
        net("depth=20,shortcut=b,attention=none", 0).param_count(),
        272_474
    );
    // SE r=16 in every unit: 2 * (3*16*1 + 3*32*2 + 3*64*4) = 2,016 extra
    assert_eq!(net("depth=20,attention=se", 0).param_count(), 271_738);
    assert_eq!(net("depth=56,attention=se", 0).param_count(), 859_066);
    // SE-PRE sees stage 1's 16 channels before stage 2's first unit: 2*16*1 there, not 2*32*2
    assert_eq!(
        net("depth=20,attention=se,integration=pre", 0).param_count(),
        271_738 - 2 * 32 * 2 - 2 * 64 * 4 + 2 * 16 + 2 * 32 * 2
    );
    // width 2: every convolution 4x (but conv1's input), fc 2x in
    let w2 = net("depth=8,width=2,attention=none", 0).param_count();
    let w1 = net("depth=8,attention=none", 0).param_count();
    assert!(w2 > 3 * w1, "{w2} vs {w1}");
    // classes change fc only
    let c100 = Net::new(&spec("attention=none"), 100, &Device::Cpu, 0).unwrap();
    assert_eq!(c100.param_count(), 269_722 - 650 + 6_500);
}

#[test]
fn mac_counts() {
    // ResNet-8 (one unit per stage): conv1 3->16 on 32^2: 442,368; unit 1: 2 x 16*16*9*1024;
    // unit 2: 32*16*9*256 + 32*32*9*256; unit 3: 64*32*9*64 + 64*64*9*64; fc 64*10.
    let base: u64 = 442_368 + 2 * 2_359_296 + 1_179_648 + 2_359_296 + 1_179_648 + 2_359_296 + 640;
    assert_eq!(net("depth=8,attention=none", 0).macs(), base);
    // ResNet-20: two more units per stage, each 2 x 2,359,296 (docs/models.md)
    assert_eq!(
        net("depth=20,attention=none", 0).macs(),
        base + 3 * 2 * 2 * 2_359_296
    );
    assert_eq!(net("depth=20,attention=none", 0).macs(), 40_551_040);
    // option B adds the projections: 32*16*256 and 64*32*64
    assert_eq!(
        net("depth=8,shortcut=b,attention=none", 0).macs(),
        base + 131_072 + 131_072
    );
    // spatial attention: 98 per pixel of the attended map; `pre` sees the unit's input
    let post = net("depth=8,attention=spatial,integration=post", 0).macs();
    assert_eq!(post, base + 98 * (1024 + 256 + 64));
    let pre = net("depth=8,attention=spatial,integration=pre", 0).macs();
    assert_eq!(pre, base + 98 * (1024 + 1024 + 256));
}

#[test]
fn state_dict_names_follow_torchvision() {
    let n = net("depth=8,shortcut=b,attention=cbam,blocks=2", 0);
    let names: Vec<String> = n
        .state_dict()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let bn = |p: &str| {
        ["weight", "bias", "running_mean", "running_var"]
            .map(|w| format!("{p}.{w}"))
            .to_vec()
    };
    let mut expect = vec!["conv1.weight".to_string()];
    expect.extend(bn("bn1"));
    for s in 1..=3 {
        let p = format!("layer{s}.0");
        expect.push(format!("{p}.conv1.weight"));
        expect.extend(bn(&format!("{p}.bn1")));
        expect.push(format!("{p}.conv2.weight"));
        expect.extend(bn(&format!("{p}.bn2")));
        if s == 2 {
            expect.push(format!("{p}.ca.fc.0.weight"));
            expect.push(format!("{p}.ca.fc.2.weight"));
            expect.push(format!("{p}.sa.conv.weight"));
        }
        if s > 1 {
            expect.push(format!("{p}.downsample.0.weight"));
            expect.extend(bn(&format!("{p}.downsample.1")));
        }
    }
    expect.push("fc.weight".into());
    expect.push("fc.bias".into());
    assert_eq!(names, expect);
    let shapes: HashMap<String, Vec<usize>> = n
        .state_dict()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.dims().to_vec()))
        .collect();
    assert_eq!(shapes["layer2.0.conv1.weight"], [32, 16, 3, 3]);
    assert_eq!(shapes["layer3.0.downsample.0.weight"], [64, 32, 1, 1]);
    assert_eq!(shapes["layer2.0.ca.fc.0.weight"], [2, 32]);
    assert_eq!(shapes["fc.weight"], [10, 64]);
    assert_eq!(
        n.batch_norm_names(),
        [
            "bn1",
            "layer1.0.bn1",
            "layer1.0.bn2",
            "layer2.0.bn1",
            "layer2.0.bn2",
            "layer2.0.downsample.1",
            "layer3.0.bn1",
            "layer3.0.bn2",
            "layer3.0.downsample.1"
        ]
    );
    // option A has no shortcut parameters; the ECA kernel follows each module's channels
    let a = net("depth=8,attention=eca,integration=pre", 0);
    let shapes: HashMap<String, Vec<usize>> = a
        .state_dict()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.dims().to_vec()))
        .collect();
    assert!(!shapes.keys().any(|k| k.contains("downsample")));
    assert_eq!(shapes["layer1.0.ca.conv.weight"], [1, 1, 3]); // 16 channels
    assert_eq!(shapes["layer3.0.ca.conv.weight"], [1, 1, 3]); // pre: 32 channels
}

#[test]
fn intermediates_are_numbered_by_unit() {
    let n = net("depth=14,attention=cbam,integration=identity,blocks=1+3", 1);
    let (logits, inter) = n.forward_inspect(&input(2, 3), TRAIN).unwrap();
    assert_eq!(logits.dims(), [2, 10]);
    let get = |k: &str| inter.iter().find(|(n, _)| n == k).map(|(_, t)| t.dims());
    // two units per stage: units 1-2 on 32^2 (16 ch), 3-4 on 16^2, 5-6 on 8^2 (64 ch)
    for (u, c, side, attended) in [
        (1, 16, 32, true),
        (2, 16, 32, true),
        (3, 32, 16, false),
        (4, 32, 16, false),
        (5, 64, 8, true),
        (6, 64, 8, true),
    ] {
        assert_eq!(
            get(&format!("block{u}.conv")),
            Some(&[2, c, side, side][..])
        );
        let gate = get(&format!("block{u}.gate"));
        assert_eq!(gate, attended.then_some(&[2, c][..]), "unit {u}");
        let sg = get(&format!("block{u}.spatial_gate"));
        assert_eq!(sg, attended.then_some(&[2, 1, side, side][..]), "unit {u}");
    }
    assert!(get("block7.conv").is_none());
}

#[test]
fn option_a_subsamples_and_pads_with_zero_channels() {
    // the fast op and candle's composition (generic and reference)
    for kernels in Kernels::ALL {
        option_a(kernels);
    }
}

fn option_a(kernels: Kernels) {
    // x[:, :, ::2, ::2], then (32 - 16) / 2 = 8 zero channels before and 8 after (PyTorch:
    // F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 8, 8)))
    let x = input(2, 5)
        .narrow(1, 0, 2)
        .unwrap()
        .repeat((1, 8, 1, 1))
        .unwrap();
    let x = (x.clone()
        + Tensor::arange(0f32, 16.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 16, 1, 1))
            .unwrap()
            .broadcast_as(x.dims())
            .unwrap())
    .unwrap();
    let y = ablate_model::ops::shortcut::subsample_zero_pad(&x, 32, kernels).unwrap();
    assert_eq!(y.dims(), [2, 32, 16, 16]);
    let (xv, yv) = (values(&x), values(&y));
    for b in 0..2 {
        for c in 0..32 {
            for i in 0..16 {
                for j in 0..16 {
                    let got = yv[((b * 32 + c) * 16 + i) * 16 + j];
                    let want = if (8..24).contains(&c) {
                        xv[((b * 16 + c - 8) * 32 + 2 * i) * 32 + 2 * j]
                    } else {
                        0.0
                    };
                    assert_eq!(got, want, "b {b} c {c} ({i}, {j})");
                }
            }
        }
    }
    // odd sides keep the last row and column, as x[:, :, ::2, ::2]; an odd channel gap puts
    // the extra zero channel after
    let odd = Tensor::arange(0f32, 2.0 * 5.0 * 7.0, &Device::Cpu)
        .unwrap()
        .reshape((1, 2, 5, 7))
        .unwrap();
    let y = ablate_model::ops::shortcut::subsample_zero_pad(&odd, 3, kernels).unwrap();
    assert_eq!(y.dims(), [1, 3, 3, 4]);
    let v = values(&y);
    assert_eq!(
        &v[..12],
        &[0., 2., 4., 6., 14., 16., 18., 20., 28., 30., 32., 34.]
    );
    assert_eq!(v[12], 35.0);
    assert!(v[24..].iter().all(|&v| v == 0.0));
    // the gradient reaches the kept positions only, once each
    let var = candle_core::Var::from_tensor(&odd).unwrap();
    let g = ablate_model::ops::shortcut::subsample_zero_pad(var.as_tensor(), 3, kernels)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let gv = values(g.get(&var).unwrap());
    for (k, v) in gv.iter().enumerate() {
        let (i, j) = ((k / 7) % 5, k % 7);
        assert_eq!(*v, if i % 2 == 0 && j % 2 == 0 { 1.0 } else { 0.0 }, "{k}");
    }
}

/// Logits, every gradient and the running statistics of one train-mode step, per kernel.
fn step(n: &Net, x: &Tensor, kernels: Kernels) -> Vec<(String, Vec<f32>)> {
    let mut n = n.clone();
    n.set_kernels(kernels);
    // fresh running statistics for each run (the clone shares the Vars)
    let sd: HashMap<String, Tensor> = n
        .state_dict()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.copy().unwrap()))
        .collect();
    let mut own = Net::new(n.spec(), 10, &Device::Cpu, 0).unwrap();
    own.load_state_dict(&sd).unwrap();
    own.set_kernels(kernels);
    let logits = own.forward(x, TRAIN).unwrap();
    let target = Tensor::new(&[3u32, 7], &Device::Cpu).unwrap();
    let loss = ablate_model::train::cross_entropy(&logits, &target, 0.0).unwrap();
    let grads = loss.backward().unwrap();
    let mut out = vec![("logits".to_string(), values(&logits))];
    for (k, v) in own.trainable() {
        out.push((format!("grad.{k}"), values(grads.get(&v).expect(&k))));
    }
    for (k, v) in own.buffers() {
        out.push((k, values(&v)));
    }
    out.push(("eval".into(), values(&own.forward(x, Mode::Eval).unwrap())));
    out
}

#[test]
fn every_integration_point_agrees_across_kernels() {
    let x = input(2, 11);
    for (i, s) in [
        "depth=8,attention=se,integration=standard",
        "depth=8,attention=se,integration=pre,squeeze=max",
        "depth=8,attention=eca,integration=post,gate=hard_sigmoid",
        "depth=8,attention=cbam,integration=identity,shortcut=b,reduction=4",
        "depth=8,attention=spatial,integration=pre,shortcut=b,blocks=2+3",
        "depth=8,attention=none,width=2",
    ]
    .iter()
    .enumerate()
    {
        let n = net(s, 20 + i as u64);
        let fast = step(&n, &x, Kernels::Fast);
        for kernels in [Kernels::Generic, Kernels::Reference] {
            let other = step(&n, &x, kernels);
            for ((k, a), (_, b)) in fast.iter().zip(&other) {
                let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
                let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                assert!(
                    diff / scale < 2e-4,
                    "{s} {kernels:?} {k}: {} relative",
                    diff / scale
                );
            }
        }
    }
}

/// Directional finite-difference check of the train-mode loss gradient, as `models.rs` does for
/// the CNN: `(L(p + h d) - L(p - h d)) / 2h` against `g . d`, here along the gradient itself
/// (`d = g / |g|`, so `g . d = |g|`, the largest directional derivative: a wrong factor or a
/// missing path shows, rounding and ReLU switches stay small against it).
#[test]
fn gradients_match_finite_differences() {
    let n = net(
        "depth=8,shortcut=b,attention=se,integration=identity,reduction=4",
        4,
    );
    let x = input(4, 6);
    let target = Tensor::new(&[1u32, 8, 0, 5], &Device::Cpu).unwrap();
    let loss_of = |n: &Net| -> f64 {
        let logits = n.forward(&x, TRAIN).unwrap();
        let l = ablate_model::train::cross_entropy(&logits, &target, 0.0).unwrap();
        f64::from(l.to_scalar::<f32>().unwrap())
    };
    let logits = n.forward(&x, TRAIN).unwrap();
    let grads = ablate_model::train::cross_entropy(&logits, &target, 0.0)
        .unwrap()
        .backward()
        .unwrap();
    let trainable: HashMap<String, candle_core::Var> = n.trainable().into_iter().collect();
    for name in [
        "layer2.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer2.0.ca.fc.0.weight",
        "layer3.0.bn2.weight",
        "conv1.weight",
    ] {
        let var = &trainable[name];
        let gv = values(grads.get(var).unwrap());
        assert!(gv.iter().any(|v| *v != 0.0), "{name}: all-zero gradient");
        let norm = gv.iter().map(|v| v * v).sum::<f32>().sqrt();
        let d: Vec<f32> = gv.iter().map(|v| v / norm).collect();
        let analytic: f64 = gv.iter().zip(&d).map(|(a, b)| f64::from(a * b)).sum();
        // small steps for large gradients (curvature), larger ones for small gradients, so
        // that the f32 loss moves by hundreds of its rounding steps (3e-3: the SE MLP's
        // gradient of 1e-3 gives 30 steps and a 6% quantization error; 2e-2: 0.3%)
        let h = (3e-5 / analytic.abs()).clamp(3e-3, 3e-2);
        let (analytic, numeric) = directional_derivative(var, &gv, &d, h, || loss_of(&n));
        let err = (numeric - analytic).abs() / analytic.abs();
        // piecewise smooth and in f32: a few percent; a missing path is far off
        assert!(
            err < 5e-2,
            "{name}: analytic {analytic} vs numeric {numeric}"
        );
    }
}
