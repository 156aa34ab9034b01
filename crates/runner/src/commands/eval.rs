//! `ablate eval`: saved weights evaluated on a dataset's test split.

use anyhow::Context;
use candle_core::Device;

use ablate_data::augment::Normalize;
use ablate_model::train::{evaluate, EvalResult};
use ablate_model::{ModelSpec, Net};

use crate::cli::{EvalArgs, EXIT_OK};

use super::data::source_config;
use super::CommandResult;

/// `ablate eval --weights FILE --model SPEC --data SOURCE [--json]`.
pub fn run(args: EvalArgs) -> CommandResult {
    let spec: ModelSpec = args
        .model
        .parse()
        .with_context(|| format!("invalid --model `{}`", args.model))?;
    let mut cfg = source_config(&args.data)?;
    cfg.test_limit = args.limit;
    if args.limit == Some(0) {
        anyhow::bail!("--limit must be at least 1");
    }
    let ds = ablate_data::load(&cfg, 0)
        .with_context(|| format!("cannot load data source `{}`", args.data))?;
    let device = Device::Cpu;
    // The initial weights are replaced by the file's: the seed does not matter.
    let mut net = Net::new(&spec, ds.classes.len(), &device, 0)
        .with_context(|| format!("cannot build the model `{spec}`"))?;
    net.load_safetensors(&args.weights).with_context(|| {
        format!(
            "cannot load the weights {} into `{spec}`",
            args.weights.display()
        )
    })?;
    let normalize = Normalize::from_config(&cfg);
    let result = evaluate(&net, &ds.test, &normalize, args.batch_size as usize)
        .with_context(|| format!("cannot evaluate on the test split of `{}`", args.data))?;
    if let Some(path) = &args.predictions {
        let text: String = result
            .predictions
            .iter()
            .map(|p| format!("{p}\n"))
            .collect();
        std::fs::write(path, text)
            .with_context(|| format!("cannot write the predictions to {}", path.display()))?;
    }
    if args.json {
        println!("{}", json_report(&args, &spec, &net, &ds.classes, &result));
    } else {
        print!("{}", text_report(&args, &spec, &net, &ds.classes, &result));
    }
    Ok(EXIT_OK)
}

fn totals(result: &EvalResult) -> (u64, u64) {
    let k = result.confusion.len();
    let correct = (0..k).map(|c| result.class_correct(c)).sum();
    let total = (0..k).map(|c| result.class_total(c)).sum();
    (correct, total)
}

/// The JSON object: `accuracy`, `loss`, `per_class` (one entry per class, in
/// class order), and what was evaluated.
pub fn json_report(
    args: &EvalArgs,
    spec: &ModelSpec,
    net: &Net,
    classes: &[String],
    result: &EvalResult,
) -> serde_json::Value {
    let (correct, total) = totals(result);
    let per_class: Vec<serde_json::Value> = classes
        .iter()
        .enumerate()
        .map(|(i, name)| {
            serde_json::json!({
                "class": name,
                "index": i,
                "accuracy": result.per_class.get(i).copied().unwrap_or(0.0),
                "correct": result.class_correct(i),
                "total": result.class_total(i),
            })
        })
        .collect();
    serde_json::json!({
        "accuracy": result.accuracy,
        "loss": result.loss,
        "per_class": per_class,
        "correct": correct,
        "images": total,
        "model": spec.to_string(),
        "params": net.param_count(),
        "weights": args.weights.display().to_string(),
        "data": args.data,
    })
}

/// The text report: totals, then a table of classes.
pub fn text_report(
    args: &EvalArgs,
    spec: &ModelSpec,
    net: &Net,
    classes: &[String],
    result: &EvalResult,
) -> String {
    let (correct, total) = totals(result);
    let mut s = String::new();
    s.push_str(&format!("weights   {}\n", args.weights.display()));
    s.push_str(&format!(
        "model     {spec} ({} parameters)\n",
        net.param_count()
    ));
    s.push_str(&format!(
        "data      {} (test split, {total} images)\n",
        args.data
    ));
    s.push_str(&format!("loss      {:.4}\n", result.loss));
    s.push_str(&format!(
        "accuracy  {:.4} ({correct}/{total})\n\n",
        result.accuracy
    ));
    let width = classes.iter().map(|c| c.len()).max().unwrap_or(5).max(5);
    s.push_str(&format!(
        "{:<width$}  {:>8}  {:>7}  {:>6}\n",
        "class", "accuracy", "correct", "total"
    ));
    for (i, name) in classes.iter().enumerate() {
        s.push_str(&format!(
            "{:<width$}  {:>8.4}  {:>7}  {:>6}\n",
            name,
            result.per_class.get(i).copied().unwrap_or(0.0),
            result.class_correct(i),
            result.class_total(i)
        ));
    }
    s
}
