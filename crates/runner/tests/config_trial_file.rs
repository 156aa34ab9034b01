//! A trial's `config.toml`: written by the sweep, read back by `ablate trial`.

use std::path::Path;

use ablate_runner::config::{read_trial_config, write_trial_config, Experiment, TrialFile};

const EXP: &str = r#"
name = "tf"
seeds = [7]
[data]
dataset = "synthetic"
synthetic_train = 64
[model]
attention = "se"
[[grid]]
"model.reduction" = [4]
"model.blocks" = [[1, 3]]
"train.lr" = [3e-4]
"#;

#[test]
fn round_trip_keeps_identity_and_config() {
    let e = Experiment::parse(Path::new("tf.toml"), EXP, &[]).unwrap();
    let trial = e.trials().remove(0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir
        .path()
        .join("trials")
        .join(trial.id.as_str())
        .join("config.toml");
    write_trial_config(&path, e.name(), &trial).unwrap();

    let back = read_trial_config(&path).unwrap();
    assert_eq!(back, TrialFile::new("tf", &trial));
    assert_eq!(back.experiment, "tf");
    assert_eq!(back.seed, 7);
    assert_eq!(back.trial_id, trial.id);
    assert_eq!(back.variant_id, trial.variant_id);
    assert_eq!(back.variant, "reduction=4 blocks=1+3 lr=0.0003");
    assert_eq!(back.config(), trial.config);
    // The id is a function of what the file holds.
    assert_eq!(back.recomputed_id(), trial.id);
    assert_eq!(back.axes["model.reduction"], toml::Value::Integer(4));
    assert_eq!(
        back.axes["model.blocks"],
        toml::Value::Array(vec![1.into(), 3.into()])
    );

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with(&format!("# Trial {} of experiment \"tf\"", trial.id)),
        "{text}"
    );
    // Every key of every table is written, defaults included.
    for key in [
        "dataset",
        "augment",
        "attention",
        "reduction",
        "epochs",
        "lr",
        "scheduler",
    ] {
        assert!(
            text.contains(&format!("\n{key} = ")),
            "{key} missing in:\n{text}"
        );
    }
}

#[test]
fn edited_files_report_line_and_key() {
    let e = Experiment::parse(Path::new("tf.toml"), EXP, &[]).unwrap();
    let trial = e.trials().remove(0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    write_trial_config(&path, e.name(), &trial).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();

    let line_of =
        |text: &str, prefix: &str| text.lines().position(|l| l.starts_with(prefix)).unwrap() + 1;

    // An impossible value.
    let bad = text.replace("epochs = 50", "epochs = 0");
    std::fs::write(&path, &bad).unwrap();
    let msg = read_trial_config(&path).unwrap_err().to_string();
    let want = format!(
        "{}:{}:1: `train.epochs`: must be at least 1",
        path.display(),
        line_of(&bad, "epochs = 0")
    );
    assert_eq!(msg, want);

    // An unknown key in a table.
    let bad = text.replace("epochs = 50", "epoch = 50");
    std::fs::write(&path, &bad).unwrap();
    let msg = read_trial_config(&path).unwrap_err().to_string();
    let want = format!(
        "{}:{}:1: unknown key `train.epoch`; did you mean `epochs`?",
        path.display(),
        line_of(&bad, "epoch = 50")
    );
    assert_eq!(msg, want);

    // A header key of the wrong type.
    let bad = text.replace("seed = 7", "seed = \"seven\"");
    std::fs::write(&path, &bad).unwrap();
    let msg = read_trial_config(&path).unwrap_err().to_string();
    let want = format!(
        "{}:{}:1: `seed`: invalid type: string \"seven\", expected u64",
        path.display(),
        line_of(&bad, "seed = ")
    );
    assert_eq!(msg, want);

    // A missing table.
    let cut = text.find("\n[train]").unwrap();
    std::fs::write(&path, &text[..cut]).unwrap();
    let msg = read_trial_config(&path).unwrap_err().to_string();
    assert!(msg.contains("missing field `train`"), "{msg}");

    // A missing file.
    let msg = read_trial_config(&dir.path().join("nope.toml"))
        .unwrap_err()
        .to_string();
    assert!(msg.starts_with("cannot read "), "{msg}");
}
