//! Training-step and inference throughput of the seed CNN and SE r=16, printed as one JSON line
//! per model in the same form as `../shared/reference/torch_seed.py bench`, so that
//! `scripts/bench-vs-torch.sh` can put both side by side.
//!
//! ```text
//! cargo run --release -p ablate-model --example bench -- [--batch 64] [--steps 30] [--warmup 5]
//!     [--models baseline,se_r16]
//! ```
//!
//! Besides `baseline` and `se_r16`, a model may be any spec in the `key=value,...` form of
//! `ablate eval --model` (then separated by `;`: `--models 'attention=eca;attention=cbam'`).
//!
//! The kernels are the ones `Net::new` picks (`ABLATE_KERNELS=reference` in the environment
//! selects plain candle ops where the layers support the switch).
//!
//! A training step is what `Trainer::step` does: train-mode forward (dropout on), cross-entropy,
//! backward, Adam update (lr 1e-3, as the PyTorch side). Inference is an eval-mode forward.
//! Inputs are random (seeded); the throughput does not depend on the pixel values. Threads:
//! rayon's default (one per core) unless `RAYON_NUM_THREADS` says otherwise. The global
//! allocator is mimalloc, as in the `ablate` binary.

use std::time::Instant;

use ablate_model::layers::Mode;
use ablate_model::train::{TrainConfig, Trainer};
use ablate_model::{AttentionKind, ModelSpec, Net};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[global_allocator]
static GLOBAL: ablate_model::allocator::Allocator = ablate_model::allocator::Allocator;

struct Args {
    batch: usize,
    steps: usize,
    warmup: usize,
    models: Vec<String>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        batch: 64,
        steps: 30,
        warmup: 5,
        models: vec!["baseline".into(), "se_r16".into()],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || {
            it.next()
                .ok_or_else(|| format!("missing value after {flag}"))
        };
        let num = |v: String| {
            v.parse::<usize>()
                .map_err(|e| format!("bad {flag} `{v}`: {e}"))
        };
        match flag.as_str() {
            "--batch" => a.batch = num(val()?)?,
            "--steps" => a.steps = num(val()?)?,
            "--warmup" => a.warmup = num(val()?)?,
            "--models" => {
                let v = val()?;
                let sep = if v.contains('=') { ';' } else { ',' };
                a.models = v.split(sep).map(str::to_string).collect();
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if a.batch == 0 || a.steps == 0 {
        return Err("--batch and --steps must be positive".into());
    }
    Ok(a)
}

fn spec(name: &str) -> Result<ModelSpec, String> {
    match name {
        "baseline" => Ok(ModelSpec::default()),
        "se_r16" => Ok(ModelSpec {
            attention: AttentionKind::Se,
            reduction: 16,
            ..ModelSpec::default()
        }),
        // Any other spec in the `key=value,...` form of `ablate eval --model`.
        other => other
            .parse::<ModelSpec>()
            .map_err(|e| format!("unknown model `{other}`: baseline, se_r16 or a spec: {e}")),
    }
}

fn run(a: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let device = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let n = a.batch * 3 * 32 * 32;
    let x: Vec<f32> = (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
    let y: Vec<u32> = (0..a.batch).map(|_| rng.random_range(0..10)).collect();
    let x = Tensor::from_vec(x, (a.batch, 3, 32, 32), &device)?;
    let y = Tensor::from_vec(y, a.batch, &device)?;
    for name in &a.models {
        let net = Net::new(&spec(name)?, 10, &device, 0)?;
        let mut trainer = Trainer::new(&net, &TrainConfig::default(), 0)?;
        for _ in 0..a.warmup {
            trainer.step(&net, &x, &y)?;
        }
        let t0 = Instant::now();
        for _ in 0..a.steps {
            trainer.step(&net, &x, &y)?;
        }
        let train = t0.elapsed().as_secs_f64();
        for _ in 0..a.warmup {
            net.forward(&x, Mode::Eval)?;
        }
        let t1 = Instant::now();
        for _ in 0..a.steps {
            net.forward(&x, Mode::Eval)?;
        }
        let infer = t1.elapsed().as_secs_f64();
        let imgs = (a.batch * a.steps) as f64;
        println!(
            "{{\"model\": \"{name}\", \"params\": {}, \"batch\": {}, \"train_img_s\": {:.1}, \"infer_img_s\": {:.1}, \"kernels\": \"{}\", \"threads\": {}}}",
            net.param_count(),
            a.batch,
            imgs / train,
            imgs / infer,
            std::env::var("ABLATE_KERNELS").unwrap_or_else(|_| "default".into()),
            rayon::current_num_threads(),
        );
    }
    Ok(())
}

fn main() {
    ablate_model::allocator::configure();
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}
