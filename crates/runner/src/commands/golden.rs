//! `ablate golden FILE...`: the model checked against reference values PyTorch wrote
//! (`ablate_model::golden`), on any device and kernels; prints the largest errors per file.

use std::path::Path;

use anyhow::Context;
use candle_core::{DType, Device};

use ablate_model::golden::{
    compare_adam, compare_step, Case, Comparison, Fixture, Reference, FORMAT,
};
use ablate_model::ops::kernels::Kernels;
use ablate_model::{ModelSpec, Net};

use crate::cli::{GoldenArgs, EXIT_OK};

use super::CommandResult;

/// Exit code when a comparison is out of tolerance.
pub const EXIT_OUT_OF_TOLERANCE: i32 = 3;

/// `ablate golden FILE... [--device D] [--kernels K] [--model SPEC] [--json]`.
pub fn run(args: GoldenArgs) -> CommandResult {
    let device = crate::device::open(&args.device)?;
    let kernels = match &args.kernels {
        Some(k) => Kernels::parse(k).with_context(|| {
            format!("invalid --kernels `{k}`: expected `fast`, `generic` or `reference`")
        })?,
        None => Kernels::from_env()?,
    };
    let mut all_ok = true;
    for file in &args.files {
        let results = check_file(file, &args, kernels, &device)
            .with_context(|| format!("cannot check {}", file.display()))?;
        let ok = results.iter().all(|c| c.ok);
        all_ok &= ok;
        print_file(file, &args, kernels, &results);
    }
    Ok(if all_ok {
        EXIT_OK
    } else {
        EXIT_OUT_OF_TOLERANCE
    })
}

/// Every comparison of one file.
fn check_file(
    file: &Path,
    args: &GoldenArgs,
    kernels: Kernels,
    device: &Device,
) -> anyhow::Result<Vec<Comparison>> {
    let reference = Reference::read(file)?;
    if reference.meta("format").ok() == Some(FORMAT) {
        let fx = Fixture::load(file)?;
        let case = fx.build(kernels, device)?;
        let mut results = compare_step(&fx.reference, &case)?;
        results.extend(compare_adam(&fx, kernels, device)?);
        return Ok(results);
    }
    // torch_seed.py golden's format: the weights and the input are in the file.
    let text = args.model.as_deref().with_context(|| {
        format!(
            "{} does not name its model (not a `{FORMAT}` fixture): give it with --model",
            reference.label
        )
    })?;
    let spec: ModelSpec = text
        .parse()
        .with_context(|| format!("invalid --model `{text}`"))?;
    let spec = ModelSpec {
        dropout: 0.0,
        ..spec
    };
    let classes = reference.get("eval.logits")?.dim(1)?;
    let mut net = Net::new(&spec, classes, device, 0)?;
    net.load_state_dict(&reference.with_prefix("param."))
        .with_context(|| format!("the weights of {} do not fit `{text}`", reference.label))?;
    net.set_kernels(kernels);
    let case = Case {
        net,
        input: reference.get("input")?.to_device(device)?,
        target: reference
            .get("target")?
            .to_dtype(DType::U32)?
            .to_device(device)?,
    };
    Ok(compare_step(&reference, &case)?)
}

fn print_file(file: &Path, args: &GoldenArgs, kernels: Kernels, results: &[Comparison]) {
    let mut sorted: Vec<&Comparison> = results.iter().collect();
    // Closest to (or beyond) its tolerance first.
    sorted.sort_by(|a, b| b.margin().total_cmp(&a.margin()));
    let shown = if args.all {
        sorted.len()
    } else {
        args.top.min(sorted.len())
    };
    let failed = results.iter().filter(|c| !c.ok).count();
    if args.json {
        let worst: Vec<serde_json::Value> = sorted[..shown]
            .iter()
            .map(|c| {
                serde_json::json!({"key": c.key, "error": c.error, "tolerance": c.tolerance,
                                   "ok": c.ok, "detail": c.detail})
            })
            .collect();
        let line = serde_json::json!({
            "file": file.display().to_string(), "device": args.device, "kernels": kernels.name(),
            "comparisons": results.len(), "failed": failed, "ok": failed == 0,
            "max_margin": sorted.first().map(|c| c.margin()), "worst": worst,
        });
        println!("{line}");
        return;
    }
    println!(
        "{}: {} comparisons on {} with {} kernels, {}",
        file.display(),
        results.len(),
        args.device,
        kernels.name(),
        if failed == 0 {
            "all within tolerance".to_string()
        } else {
            format!("{failed} OUT OF TOLERANCE")
        }
    );
    for c in &sorted[..shown] {
        let detail = c
            .detail
            .as_deref()
            .map_or(String::new(), |d| format!("  {d}"));
        println!(
            "  {:<34} {:.3e} (tolerance {:.0e}) {}{detail}",
            c.key,
            c.error,
            c.tolerance,
            if c.ok { "ok" } else { "FAIL" }
        );
    }
}
