//! docs/experiments.md documents every key of every table (the library
//! structs are the source of truth: a new key fails this test until it is
//! documented).

use ablate_data::DataConfig;
use ablate_model::train::TrainConfig;
use ablate_model::ModelSpec;
use ablate_runner::config::de::struct_fields;
use ablate_runner::config::experiment::TOP_KEYS;

fn docs() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/experiments.md");
    std::fs::read_to_string(path).unwrap()
}

fn section<'a>(docs: &'a str, heading: &str) -> &'a str {
    let start = docs
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading} in docs/experiments.md"));
    let rest = &docs[start + heading.len()..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

#[test]
fn every_key_is_documented_in_its_table() {
    let docs = docs();
    for (heading, fields) in [
        ("## `[data]`", struct_fields::<DataConfig>()),
        ("## `[model]`", struct_fields::<ModelSpec>()),
        ("## `[train]`", struct_fields::<TrainConfig>()),
    ] {
        assert!(fields.len() >= 5, "{heading}: {fields:?}");
        let text = section(&docs, heading);
        for f in fields {
            assert!(
                text.contains(&format!("| `{f}` |")),
                "{heading}: key `{f}` is not documented"
            );
        }
    }
    let top = section(&docs, "## Top-level keys");
    for k in TOP_KEYS {
        assert!(
            top.contains(&format!("| `{k}` |"))
                || top.contains(&format!("| `[{k}]` |"))
                || top.contains(&format!("| `[[{k}]]` |")),
            "top-level key `{k}` is not documented"
        );
    }
}
