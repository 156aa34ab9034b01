//! Where a training step's time goes: forward (with the loss), backward, optimizer, in ms per
//! step (mean of 30 steps after 10 warm-up steps), batch 64, random inputs.
//!
//! ```text
//! cargo run --release -p ablate-model --example phase -- [baseline|se_r16]
//! RAYON_NUM_THREADS=1 cargo run --release -p ablate-model --example phase -- se_r16
//! ```
//!
//! Used for the per-phase table in `docs/performance.md`.

use std::time::Instant;

use ablate_model::layers::Mode;
use ablate_model::train::{cross_entropy, Optimizer, OptimizerParams, TrainConfig};
use ablate_model::{AttentionKind, ModelSpec, Net};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[global_allocator]
static GLOBAL: ablate_model::allocator::Allocator = ablate_model::allocator::Allocator;

const WARMUP: u64 = 10;
const STEPS: u64 = 30;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    ablate_model::allocator::configure();
    let model = std::env::args().nth(1).unwrap_or_else(|| "baseline".into());
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
            dropout_seed: Some(i),
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
