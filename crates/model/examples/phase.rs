//! Where a training step's time goes: forward (with the loss), backward, optimizer, in ms per
//! step (mean of 30 steps after 10 warm-up steps), batch 64, random inputs.
//!
//! ```text
//! cargo run --release -p ablate-model --example phase -- [baseline|se_r16]
//! RAYON_NUM_THREADS=1 cargo run --release -p ablate-model --example phase -- se_r16
//! RAYON_NUM_THREADS=1 cargo run --release -p ablate-model --example phase -- blocks
//! ```
//!
//! `blocks` times each of the seed's three blocks alone (training mode, batch 64, forward and
//! forward + backward of `Σ out ⊙ r`, median of 15 after 3 warm-up runs, ms) in three
//! implementations: plain candle ops (`Kernels::Reference`: candle's conv2d, BatchNorm from
//! candle ops, ReLU, our argmax max-pool), the separate fast ops (`ops::conv`, `ops::bn_relu`,
//! `ops::maxpool`: the state before the fused block) and the fused block (`ops::block`).
//!
//! Used for the per-phase and per-layer tables in `docs/performance.md`.

use std::time::Instant;

use ablate_model::layers::{DropoutMasks, Mode};
use ablate_model::ops::block::{conv_bn_relu_reference, conv_bn_relu_train, BlockParams};
use ablate_model::ops::bn_relu::batch_norm_train;
use ablate_model::ops::conv::conv2d;
use ablate_model::ops::kernels::Kernels;
use ablate_model::ops::max_pool2x2;
use ablate_model::train::{cross_entropy, Optimizer, OptimizerParams, TrainConfig};
use ablate_model::{AttentionKind, ModelSpec, Net};
use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[global_allocator]
static GLOBAL: ablate_model::allocator::Allocator = ablate_model::allocator::Allocator;

const WARMUP: u64 = 10;
const STEPS: u64 = 30;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    ablate_model::allocator::configure();
    let model = std::env::args().nth(1).unwrap_or_else(|| "baseline".into());
    if model == "blocks" {
        return blocks();
    }
    let spec = match model.as_str() {
        "baseline" => ModelSpec::default(),
        "se_r16" => ModelSpec {
            attention: AttentionKind::Se,
            reduction: 16,
            ..ModelSpec::default()
        },
        other => return Err(format!("unknown model `{other}`: baseline or se_r16").into()),
    };
    let device = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let b = 64;
    let x: Vec<f32> = (0..b * 3 * 32 * 32)
        .map(|_| rng.random::<f32>() * 2.0 - 1.0)
        .collect();
    let y: Vec<u32> = (0..b).map(|_| rng.random_range(0..10)).collect();
    let x = Tensor::from_vec(x, (b, 3, 32, 32), &device)?;
    let y = Tensor::from_vec(y, b, &device)?;
    let net = Net::new(&spec, 10, &device, 0)?;
    let params = OptimizerParams::from_config(&TrainConfig::default());
    let mut opt = Optimizer::new(net.trainable(), params)?;
    let (mut fwd, mut bwd, mut upd) = (0.0, 0.0, 0.0);
    for i in 0..WARMUP + STEPS {
        let t0 = Instant::now();
        let mode = Mode::Train {
            dropout: DropoutMasks::Keyed(i),
        };
        let loss = cross_entropy(&net.forward(&x, mode)?, &y, 0.0)?;
        loss.to_scalar::<f32>()?;
        let t1 = Instant::now();
        let grads = loss.backward()?;
        let t2 = Instant::now();
        opt.step(&grads)?;
        drop(grads);
        let t3 = Instant::now();
        if i >= WARMUP {
            fwd += (t1 - t0).as_secs_f64();
            bwd += (t2 - t1).as_secs_f64();
            upd += (t3 - t2).as_secs_f64();
        }
    }
    let ms = |s: f64| s / STEPS as f64 * 1e3;
    println!(
        "{model}: forward {:.1} ms, backward {:.1} ms, optimizer {:.1} ms ({} rayon threads)",
        ms(fwd),
        ms(bwd),
        ms(upd),
        rayon::current_num_threads()
    );
    Ok(())
}

/// Median of `f`'s wall time over 15 runs after 3 warm-up runs, in ms.
fn median_ms(mut f: impl FnMut() -> candle_core::Result<()>) -> candle_core::Result<f64> {
    for _ in 0..3 {
        f()?;
    }
    let mut t: Vec<f64> = (0..15)
        .map(|_| {
            let t0 = Instant::now();
            f().map(|_| t0.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<candle_core::Result<_>>()?;
    t.sort_by(f64::total_cmp);
    Ok(t[t.len() / 2])
}

fn blocks() -> Result<(), Box<dyn std::error::Error>> {
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut rand = |dims: &[usize], scale: f32| -> candle_core::Result<Tensor> {
        let n: usize = dims.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| (rng.random::<f32>() * 2.0 - 1.0) * scale)
            .collect();
        Tensor::from_vec(v, dims, &dev)
    };
    println!("| block | impl | forward | forward + backward |");
    println!("| --- | --- | --- | --- |");
    for (i, (cin, cout, side)) in [(3, 32, 32), (32, 64, 16), (64, 128, 8)]
        .into_iter()
        .enumerate()
    {
        // Blocks 2 and 3 take an input that needs its gradient; block 1 takes data.
        let x = rand(&[64, cin, side, side], 1.0)?;
        let x = if i == 0 {
            Var::from_tensor(&x)?.as_tensor().detach()
        } else {
            Var::from_tensor(&x)?.as_tensor().clone()
        };
        let w = Var::from_tensor(&rand(&[cout, cin, 3, 3], 0.2)?)?;
        let b = Var::from_tensor(&rand(&[cout], 0.2)?)?;
        let gamma = Var::from_tensor(&Tensor::ones(cout, candle_core::DType::F32, &dev)?)?;
        let beta = Var::from_tensor(&Tensor::zeros(cout, candle_core::DType::F32, &dev)?)?;
        let r = rand(&[64, cout, side / 2, side / 2], 1.0)?;
        let p = BlockParams {
            weight: w.as_tensor(),
            bias: Some(b.as_tensor()),
            padding: 1,
            stride: 1,
            gamma: gamma.as_tensor(),
            beta: beta.as_tensor(),
            eps: 1e-5,
            pool: true,
            gate: None,
        };
        let impls: [(&str, &dyn Fn() -> candle_core::Result<Tensor>); 3] = [
            ("plain candle", &|| {
                conv_bn_relu_reference(&x, &p, None, Kernels::Reference).map(|r| r.0)
            }),
            ("separate fast ops", &|| {
                let y = conv2d(&x, w.as_tensor(), Some(b.as_tensor()), 1, Kernels::Fast)?;
                let (z, _) = batch_norm_train(
                    &y,
                    gamma.as_tensor(),
                    beta.as_tensor(),
                    1e-5,
                    true,
                    Kernels::Fast,
                )?;
                max_pool2x2(&z, Kernels::Fast)
            }),
            ("fused block", &|| conv_bn_relu_train(&x, &p).map(|r| r.0)),
        ];
        for (name, f) in impls {
            let fwd = median_ms(|| f().map(|_| ()))?;
            let both = median_ms(|| {
                let g = (f()? * &r)?.sum_all()?.backward()?;
                drop(g);
                Ok(())
            })?;
            println!(
                "| {} ({cin} -> {cout}, {side}x{side}) | {name} | {fwd:.1} | {both:.1} |",
                i + 1
            );
        }
    }
    Ok(())
}
