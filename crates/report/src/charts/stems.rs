//! The file stem of each chart kind (`<stem>.svg`, `<stem>.png`): what a report writes and what
//! its tests look for.

/// Training loss per iteration.
pub const LOSS_ITERATIONS: &str = "loss_iterations";
/// Per-epoch train and test curves.
pub const EPOCHS: &str = "epochs";
/// Final test accuracy per variant.
pub const FINAL_ACCURACY: &str = "final_accuracy";
/// Final test accuracy against a swept numeric key: `axis_<key>`, the key made identifier-safe.
pub const AXIS_PREFIX: &str = "axis_";
/// Cost and benefit.
pub const COST_BENEFIT: &str = "cost_benefit";
/// Per-class test accuracy.
pub const PER_CLASS: &str = "per_class";
/// Confusion matrix of the best variant.
pub const CONFUSION: &str = "confusion";
/// Feature maps.
pub const FEATURE_MAPS: &str = "feature_maps";
/// What the channel attention learned (gates).
pub const GATES: &str = "gates";

/// Every chart of fixed name, in the order a report shows them (the `axis_<key>` charts come
/// after [`FINAL_ACCURACY`]).
pub const FIXED: [&str; 8] = [
    LOSS_ITERATIONS,
    EPOCHS,
    FINAL_ACCURACY,
    COST_BENEFIT,
    PER_CLASS,
    CONFUSION,
    FEATURE_MAPS,
    GATES,
];

/// The stem of the chart against swept key `key`.
pub fn axis(key: &str) -> String {
    let safe: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{AXIS_PREFIX}{safe}")
}
