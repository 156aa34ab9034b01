//! Names, labels and trial ids cannot make the runner write outside the results folder: an
//! experiment name is one plain folder name (no `..`, no separator, no absolute path, no NUL or
//! control character, at most 100 characters), a trial folder is named by its 12-hex id
//! whatever the labels and values hold, and a trial config whose id is not one is refused.

mod sweep_common;

use std::path::{Component, Path};

use ablate_runner::config::{parse_trial_config, raw::RawDoc, Experiment, Override, TrialFile};

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

const BAD_NAMES: &[&str] = &[
    "..",
    ".",
    "../escape",
    "a/../../b",
    "a/b",
    "/etc",
    "/",
    "a\\b",
    "C:\\x",
    "x\0y",
    "x\ny",
    "x\ty",
    "bell\u{7}",
    "del\u{7f}",
    ".hidden",
    "",
    "é",
    "sp ace",
];

#[test]
fn experiment_names_that_leave_the_folder_are_refused_naming_the_key() {
    let long = "x".repeat(10_000);
    let names = BAD_NAMES
        .iter()
        .copied()
        .chain([long.as_str(), &long[..101]]);
    for bad in names {
        let text = format!("name = {}\n", toml_str(bad));
        let e = Experiment::parse(Path::new("exp.toml"), &text, &[])
            .expect_err(bad)
            .to_string();
        assert!(e.starts_with("exp.toml:1:1: `name`: "), "{bad:?}: {e}");
        assert!(e.contains("is not a usable folder name"), "{e}");
        assert!(e.len() < 300, "one readable line, got {} bytes", e.len());
        assert!(!e.contains('\n') && !e.contains('\0'), "{e:?}");
        // From the command line too.
        let o: Override = format!("name={}", toml_str(bad)).parse().expect("override");
        let e = Experiment::parse(Path::new("exp.toml"), "seeds = [0]\n", &[o])
            .expect_err(bad)
            .to_string();
        assert!(e.starts_with("--set name="), "{e}");
    }
    // The longest name allowed, and the usual ones.
    for ok in ["a", "se_ablation", "run-2.v3", &"y".repeat(100)] {
        let e = Experiment::parse(
            Path::new("exp.toml"),
            &format!("name = {}\n", toml_str(ok)),
            &[],
        )
        .unwrap();
        assert_eq!(e.name(), ok);
    }
}

#[test]
fn trial_folders_are_named_by_id_whatever_the_labels_hold() {
    // Values that look like paths end up in labels and axis columns, never in a path.
    let text = r#"
name = "labels"
description = "../../../etc/passwd"
[data]
dataset = "image-folder"
path = "images"
[[grid]]
"data.path" = ["../../escape", "/etc", "a/b/../../..", "x\u0000y"]
"#;
    let e = Experiment::parse(Path::new("exp.toml"), text, &[]).unwrap();
    assert_eq!(e.trials().len(), 4);
    let out = Path::new("results");
    for t in e.trials() {
        assert!(t.variant.contains("path="), "{}", t.variant);
        let dir = out.join(e.name()).join("trials").join(t.id.as_str());
        assert!(dir.components().all(|c| matches!(c, Component::Normal(_))));
        assert!(dir.starts_with("results/labels/trials"));
        assert!(ablate_runner::config::ids::is_id(t.id.as_str()));
    }
}

#[test]
fn a_trial_config_whose_id_is_a_path_is_refused() {
    let e = Experiment::parse(Path::new("exp.toml"), "name = \"t\"\n", &[]).unwrap();
    let good = TrialFile::new("t", &e.trials()[0])
        .to_toml_string()
        .unwrap();
    let id = e.trials()[0].id.to_string();
    for bad in [
        "../../../tmp/x",
        "/etc/passwd",
        "0123456789a/",
        "ABCDEF012345",
        "",
        "a\u{0}",
    ] {
        let text = good.replace(
            &format!("trial_id = \"{id}\""),
            &format!("trial_id = {}", toml_str(bad)),
        );
        assert_ne!(text, good);
        let raw = RawDoc::parse(Path::new("config.toml"), text).unwrap();
        let err = parse_trial_config(raw).expect_err(bad).to_string();
        assert!(err.contains("trial_id"), "{err}");
        assert!(err.contains("is not a trial id"), "{err}");
    }
}

/// `ablate trial DIR` on a folder whose config names its experiment and variant with paths
/// (and a control character, which the header comment escapes): every file it writes is inside
/// DIR.
#[test]
fn a_trial_writes_only_inside_its_folder() {
    let exp = Experiment::parse(
        Path::new("exp.toml"),
        "name = \"t\"\n[data]\ndataset = \"synthetic\"\nsynthetic_train = 16\nsynthetic_test = 8\n\
         augment = []\n[train]\nepochs = 1\nbatch_size = 8\neval_batch_size = 8\n",
        &[],
    )
    .unwrap();
    let mut tf = TrialFile::new("t", &exp.trials()[0]);
    tf.experiment = "../../escaped".into();
    tf.variant = "/tmp/../../escaped\u{1}".into();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("a").join("b").join(tf.trial_id.as_str());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), tf.to_toml_string().unwrap()).unwrap();
    let out = sweep_common::ablate()
        .current_dir(root.path().join("a"))
        .arg("trial")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        sweep_common::explain(&out)
    );
    let mut outside = Vec::new();
    let mut stack = vec![root.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.starts_with(&dir) {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                outside.push(p);
            }
        }
    }
    assert!(
        outside.is_empty(),
        "written outside the trial folder: {outside:?}"
    );
    assert!(dir.join("final.json").is_file());
}
