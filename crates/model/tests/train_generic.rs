//! The training loop on the device-generic path (`Kernels::Generic`: the ops and the deferred
//! read-back of losses that a CUDA device runs), on the CPU: it trains as the fast path does,
//! interrupts and resumes bit-exactly, and reports a diverged loss.

use std::collections::HashMap;

use ablate_data::{AugmentKind, DataConfig, Dataset};
use ablate_model::ops::kernels::Kernels;
use ablate_model::train::{fit, MemorySink, TrainConfig, TrainOutcome};
use ablate_model::{AttentionKind, ModelSpec, Net};

mod common;
use candle_core::{Device, Tensor};
use common::sinks::{Stop, StopSink};

fn data() -> (Dataset, DataConfig) {
    let ds = ablate_data::synthetic::generate(48, 20, 7);
    let cfg = DataConfig {
        augment: vec![AugmentKind::Crop, AugmentKind::Flip],
        ..DataConfig::synthetic(48, 20)
    };
    (ds, cfg)
}

fn cfg() -> TrainConfig {
    TrainConfig {
        epochs: 2,
        batch_size: 8,
        eval_batch_size: 16,
        max_steps_per_epoch: Some(3),
        ..TrainConfig::default()
    }
}

fn net(kernels: Kernels) -> Net {
    let spec = ModelSpec {
        attention: AttentionKind::Se,
        ..ModelSpec::default()
    };
    let mut n = Net::new(&spec, 10, &Device::Cpu, 3).unwrap();
    n.set_kernels(kernels);
    n
}

fn weights(net: &Net) -> HashMap<String, Vec<f32>> {
    net.state_dict()
        .unwrap()
        .into_iter()
        .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect()
}

#[test]
fn generic_path_trains_as_the_fast_path_does() {
    let (ds, dcfg) = data();
    let mut runs = Vec::new();
    for kernels in [Kernels::Fast, Kernels::Generic] {
        let mut sink = MemorySink::default();
        let mut n = net(kernels);
        let out = fit(&mut n, &ds, &dcfg, &cfg(), 11, None, &mut sink).unwrap();
        assert_eq!(out, TrainOutcome::Completed { epochs: 2 });
        runs.push(sink);
    }
    let (fast, generic) = (&runs[0], &runs[1]);
    let meta = |s: &MemorySink| -> Vec<(u32, u32, u64)> {
        s.iterations
            .iter()
            .map(|r| (r.epoch, r.step, r.iteration))
            .collect()
    };
    assert_eq!(meta(generic), meta(fast));
    // Same batches, dropout masks and initial weights; other kernels: the losses agree to
    // rounding at first and stay close over six Adam steps.
    for (a, b) in fast.iterations.iter().zip(&generic.iterations) {
        let rel = (f64::from(a.loss) - f64::from(b.loss)).abs() / f64::from(a.loss).abs();
        assert!(
            rel < 1e-3,
            "step {}: fast {} generic {}",
            a.iteration,
            a.loss,
            b.loss
        );
    }
    let rel0 =
        (fast.iterations[0].loss - generic.iterations[0].loss).abs() / fast.iterations[0].loss;
    assert!(rel0 < 1e-5, "first step: {rel0:e}");
    for (a, b) in fast.epochs.iter().zip(&generic.epochs) {
        assert!((a.train_loss - b.train_loss).abs() / a.train_loss < 1e-3);
        assert!((a.test_loss - b.test_loss).abs() / a.test_loss < 1e-3);
    }
}

#[test]
fn generic_path_interrupts_and_resumes_bit_exactly() {
    let (ds, dcfg) = data();
    let mut straight = MemorySink::default();
    let mut ns = net(Kernels::Generic);
    fit(&mut ns, &ds, &dcfg, &cfg(), 11, None, &mut straight).unwrap();

    // Stop before step 2 of epoch 1, and before step 1 of epoch 2.
    for stop_at in [2usize, 4] {
        let dir = tempfile::tempdir().unwrap();
        let mut first = StopSink::new(Stop::AtPoll(stop_at));
        let mut n1 = net(Kernels::Generic);
        let out = fit(
            &mut n1,
            &ds,
            &dcfg,
            &cfg(),
            11,
            Some(dir.path()),
            &mut first,
        )
        .unwrap();
        assert!(matches!(out, TrainOutcome::Interrupted { .. }), "{out:?}");
        // Every step trained before the stop was read back and recorded.
        assert_eq!(first.mem.iterations.len(), stop_at);
        let mut second = MemorySink::default();
        let mut n2 = net(Kernels::Generic);
        let out = fit(
            &mut n2,
            &ds,
            &dcfg,
            &cfg(),
            11,
            Some(dir.path()),
            &mut second,
        )
        .unwrap();
        assert_eq!(out, TrainOutcome::Completed { epochs: 2 });
        let mut all = first.mem.iterations.clone();
        all.extend(second.iterations);
        assert_eq!(all, straight.iterations, "stop at poll {stop_at}");
        assert_eq!(weights(&n2), weights(&ns), "stop at poll {stop_at}");
        let (a, b) = (
            second.epochs.last().unwrap(),
            straight.epochs.last().unwrap(),
        );
        assert_eq!(
            (a.train_loss, a.test_loss, a.test_acc),
            (b.train_loss, b.test_loss, b.test_acc)
        );
    }
}

#[test]
fn generic_path_reports_a_diverged_loss() {
    let (ds, dcfg) = data();
    let mut n = net(Kernels::Generic);
    let mut sd: HashMap<String, Tensor> = n.state_dict().unwrap().into_iter().collect();
    let w = sd["fc2.bias"].ones_like().unwrap();
    sd.insert("fc2.bias".into(), (w * f64::NAN).unwrap());
    n.load_state_dict(&sd).unwrap();
    let mut sink = MemorySink::default();
    let out = fit(&mut n, &ds, &dcfg, &cfg(), 11, None, &mut sink).unwrap();
    assert_eq!(out, TrainOutcome::Diverged { epoch: 1, step: 0 });
    // The diverged step is recorded, the later queued ones are not.
    assert_eq!(sink.iterations.len(), 1);
    assert!(sink.iterations[0].loss.is_nan());
    assert!(sink.epochs.is_empty() && sink.finished.is_none());
}
