//! `evaluate`, `class_gates` and `feature_maps` against direct computations on
//! the network's own forward pass (f64 cross-entropy from the logits).

use ablate_data::{DataConfig, Normalize};
use ablate_model::train::{class_gates, evaluate, feature_maps};
use ablate_model::{AttentionKind, Mode, ModelSpec, Net};
use candle_core::{Device, Tensor};

fn set_and_norm(n: usize) -> (ablate_data::ImageSet, Normalize) {
    let ds = ablate_data::synthetic::generate(4, n, 3);
    (ds.test, Normalize::from_config(&DataConfig::default()))
}

/// The whole set as one normalized batch, computed independently of the crate:
/// `(x / 255 - mean) / std`.
fn all_images(set: &ablate_data::ImageSet, norm: &Normalize) -> Tensor {
    let plane = set.height * set.width;
    let v: Vec<f32> = set
        .images
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let c = (i / plane) % 3;
            (p as f32 / 255.0 - norm.mean[c]) / norm.std[c]
        })
        .collect();
    Tensor::from_vec(v, (set.len, 3, set.height, set.width), &Device::Cpu).unwrap()
}

#[test]
fn evaluate_matches_direct_computation_and_ignores_batch_size() {
    let (set, norm) = set_and_norm(23);
    let net = Net::new(&ModelSpec::default(), 10, &Device::Cpu, 4).unwrap();
    let logits = net
        .forward(&all_images(&set, &norm), Mode::Eval)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let mut loss = 0f64;
    let mut correct = 0;
    let mut preds = Vec::new();
    for (row, &label) in logits.iter().zip(&set.labels) {
        let m = row.iter().cloned().fold(f32::MIN, f32::max) as f64;
        let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
        loss += lse - row[label as usize] as f64;
        let p = (0..row.len()).fold(0, |b, k| if row[k] > row[b] { k } else { b });
        preds.push(p as u32);
        correct += usize::from(p == label as usize);
    }
    loss /= set.len as f64;

    for bs in [500, 7, 1] {
        let r = evaluate(&net, &set, &norm, bs).unwrap();
        assert!(
            (r.loss - loss).abs() < 1e-5 * loss,
            "bs {bs}: {} vs {loss}",
            r.loss
        );
        assert_eq!(r.predictions, preds, "bs {bs}");
        assert_eq!(r.accuracy, correct as f64 / set.len as f64);
        assert_eq!(r.confusion.len(), 10);
        for (c, row) in r.confusion.iter().enumerate() {
            let total = set.labels.iter().filter(|&&l| l as usize == c).count() as u64;
            assert_eq!(row.iter().sum::<u64>(), total);
            assert_eq!(r.class_total(c), total);
            let want = preds
                .iter()
                .zip(&set.labels)
                .filter(|(&p, &l)| l as usize == c && p as usize == c)
                .count() as u64;
            assert_eq!(r.class_correct(c), want);
            let acc = if total == 0 {
                0.0
            } else {
                want as f64 / total as f64
            };
            assert_eq!(r.per_class[c], acc);
        }
    }
    // Evaluation leaves the BatchNorm statistics alone.
    let before = net.buffers();
    evaluate(&net, &set, &norm, 5).unwrap();
    for ((k, a), (_, b)) in before.iter().zip(net.buffers()) {
        assert_eq!(
            a.to_vec1::<f32>().unwrap(),
            b.to_vec1::<f32>().unwrap(),
            "{k}"
        );
    }
    let empty = ablate_data::ImageSet::empty(32, 32);
    assert!(evaluate(&net, &empty, &norm, 5).is_err());
}

#[test]
fn class_gates_average_each_class_and_channel() {
    let (set, norm) = set_and_norm(20);
    let spec = ModelSpec {
        attention: AttentionKind::Se,
        ..ModelSpec::default()
    };
    let net = Net::new(&spec, 10, &Device::Cpu, 4).unwrap();
    let stats = class_gates(&net, &set, &norm, 10).unwrap();
    // 20 images cycle through the 10 classes: every class present.
    assert_eq!(stats.len(), 10 * (32 + 64 + 128));
    assert!(stats.iter().all(|s| s.mean_gate > 0.0 && s.mean_gate < 1.0));
    // Direct: block 2's gate of class 3 is the mean over images 3 and 13.
    let (_, inter) = net
        .forward_inspect(&all_images(&set, &norm), Mode::Eval)
        .unwrap();
    let g = inter
        .iter()
        .find(|(n, _)| n == "block2.gate")
        .unwrap()
        .1
        .to_vec2::<f32>()
        .unwrap();
    let idx: Vec<usize> = (0..20).filter(|&i| set.labels[i] == 3).collect();
    assert_eq!(idx.len(), 2);
    for ch in [0usize, 17, 63] {
        let want = idx.iter().map(|&i| g[i][ch] as f64).sum::<f64>() / 2.0;
        let got = stats
            .iter()
            .find(|s| s.block == 2 && s.class_index == 3 && s.channel == ch as u32)
            .unwrap()
            .mean_gate;
        assert!((got - want).abs() < 1e-6, "channel {ch}: {got} vs {want}");
    }
    // Sorted by block, class, channel.
    let keys: Vec<(u32, u32, u32)> = stats
        .iter()
        .map(|s| (s.block, s.class_index, s.channel))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    // The seed CNN has no gates.
    let base = Net::new(&ModelSpec::default(), 10, &Device::Cpu, 4).unwrap();
    assert!(class_gates(&base, &set, &norm, 10).unwrap().is_empty());
}

#[test]
fn feature_maps_are_the_conv_outputs_with_predictions() {
    let (set, norm) = set_and_norm(12);
    let net = Net::new(&ModelSpec::default(), 10, &Device::Cpu, 4).unwrap();
    let fm = feature_maps(&net, &set, &[5, 2], &norm, 4).unwrap();
    assert_eq!(fm.maps.len(), 2 * 3 * 4);
    let sides: Vec<u32> = fm
        .maps
        .iter()
        .filter(|m| m.sample == 0 && m.channel == 0)
        .map(|m| m.height)
        .collect();
    assert_eq!(sides, vec![32, 16, 8]);
    let (logits, inter) = net
        .forward_inspect(&all_images(&set, &norm), Mode::Eval)
        .unwrap();
    let conv2 = &inter.iter().find(|(n, _)| n == "block2.conv").unwrap().1;
    let want = conv2
        .get(2)
        .unwrap()
        .get(3)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let got = fm
        .maps
        .iter()
        .find(|m| m.sample == 1 && m.block == 2 && m.channel == 3)
        .unwrap();
    assert_eq!((got.height, got.width), (16, 16));
    for (a, b) in got.values.iter().zip(&want) {
        assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{a} vs {b}");
    }
    let preds = logits.argmax(1).unwrap().to_vec1::<u32>().unwrap();
    assert_eq!(fm.samples.len(), 2);
    assert_eq!(
        (fm.samples[0].index, fm.samples[0].predicted),
        (5, preds[5])
    );
    assert_eq!(
        (fm.samples[1].index, fm.samples[1].predicted),
        (2, preds[2])
    );
    assert_eq!(fm.samples[1].class_index, set.labels[2] as u32);
    assert!(feature_maps(&net, &set, &[12], &norm, 4).is_err());
}
