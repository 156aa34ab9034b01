//! `ablate bench`: training and inference throughput of models on a device
//! (`ablate_model::bench`), as a table or as JSON lines in the form of PyTorch's reference
//! script (`torch_seed.py bench`), so that both can be put side by side
//! (`scripts/bench-vs-torch.sh`, `scripts/gpu-check.sh`).

use anyhow::Context;

use ablate_model::bench::{throughput, BenchConfig, Phase};
use ablate_model::ops::kernels::Kernels;
use ablate_model::ModelSpec;

use crate::cli::{BenchArgs, BenchPhase, EXIT_OK};

use super::CommandResult;

/// The models measured when none is named: the seed CNN and SE r=16.
const DEFAULT_MODELS: [(&str, &str); 2] = [
    ("baseline", "attention=none"),
    ("se_r16", "attention=se,reduction=16"),
];

/// `ablate bench [--device D] [--batch N,...] [--model SPEC]... [--phase P] [--json]`.
pub fn run(args: BenchArgs) -> CommandResult {
    let device = crate::device::open(&args.device)?;
    let kernels = match &args.kernels {
        Some(k) => Kernels::parse(k).with_context(|| {
            format!("invalid --kernels `{k}`: expected `fast`, `generic` or `reference`")
        })?,
        None => Kernels::from_env()?,
    };
    let models: Vec<(String, String)> = if args.models.is_empty() {
        DEFAULT_MODELS
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect()
    } else {
        args.models.iter().map(|s| (s.clone(), s.clone())).collect()
    };
    if !args.json {
        println!(
            "device {}, kernels {}, {} timed steps after {} warm-up steps",
            args.device,
            kernels.name(),
            args.steps,
            args.warmup
        );
        println!("| model | batch | params | train images/s | inference images/s |");
        println!("| --- | ---: | ---: | ---: | ---: |");
    }
    for (name, text) in &models {
        let spec: ModelSpec = text
            .parse()
            .with_context(|| format!("invalid --model `{text}`"))?;
        for &batch in &args.batch {
            let cfg = BenchConfig {
                batch: batch as usize,
                steps: args.steps as usize,
                warmup: args.warmup as usize,
                phase: match args.phase {
                    BenchPhase::Both => Phase::Both,
                    BenchPhase::Train => Phase::Train,
                    BenchPhase::Infer => Phase::Infer,
                },
            };
            let t = throughput(&spec, &device, kernels, &cfg)
                .with_context(|| format!("cannot measure `{spec}` at batch {batch}"))?;
            if args.json {
                let line = serde_json::json!({
                    "model": name, "params": t.params, "batch": batch,
                    "train_img_s": t.train_img_s, "infer_img_s": t.infer_img_s,
                    "device": args.device, "kernels": kernels.name(),
                    "threads": rayon::current_num_threads(),
                });
                println!("{line}");
            } else {
                let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
                println!(
                    "| {name} | {batch} | {} | {} | {} |",
                    t.params,
                    cell(t.train_img_s),
                    cell(t.infer_img_s)
                );
            }
        }
    }
    Ok(EXIT_OK)
}
