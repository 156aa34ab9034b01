//! Expansion of experiment files into trials: counts, labels, ids, dedupe,
//! `--set`, and the shipped experiments.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ablate_runner::config::{load_experiment, Experiment, Override};

fn parse(text: &str) -> Experiment {
    parse_with(text, &[])
}

fn parse_with(text: &str, sets: &[&str]) -> Experiment {
    let overrides: Vec<Override> = sets.iter().map(|s| s.parse().unwrap()).collect();
    Experiment::parse(Path::new("exp.toml"), text, &overrides).unwrap_or_else(|e| panic!("{e}"))
}

fn labels(e: &Experiment) -> Vec<String> {
    e.variants().iter().map(|v| v.label.clone()).collect()
}

fn experiments_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments")
}

const SE: &str = r#"
name = "se"
seeds = [0, 1]

[model]
attention = "none"

[[grid]]

[[grid]]
"model.attention" = ["se"]
"model.reduction" = [4, 16]
"model.placement" = ["post_bn", "post_relu"]
"#;

#[test]
fn cartesian_product_inside_a_grid_and_union_of_grids() {
    let e = parse(SE);
    assert_eq!(e.name(), "se");
    assert_eq!(e.seeds(), &[0, 1]);
    assert_eq!(e.grid_count(), 2);
    assert_eq!(
        labels(&e),
        vec![
            "baseline",
            "attention=se reduction=4 placement=post_bn",
            "attention=se reduction=4 placement=post_relu",
            "attention=se reduction=16 placement=post_bn",
            "attention=se reduction=16 placement=post_relu",
        ]
    );
    assert_eq!(
        e.axis_keys(),
        vec!["model.attention", "model.reduction", "model.placement"]
    );
    let trials = e.trials();
    assert_eq!(trials.len(), 10);
    assert_eq!(e.trial_count(), 10);
    // Seed-major order.
    assert!(trials[..5].iter().all(|t| t.seed == 0));
    assert!(trials[5..].iter().all(|t| t.seed == 1));
    assert_eq!(trials[0].variant, trials[5].variant);
    // Typed values reach the resolved config.
    let t = &trials[3];
    assert_eq!(t.config.model.reduction, 16);
    assert_eq!(t.config.model.attention, ablate_model::AttentionKind::Se);
    assert_eq!(t.config.model.placement, ablate_model::Placement::PostBn);
    assert_eq!(
        t.axes,
        vec![
            (
                "model.attention".to_string(),
                toml::Value::String("se".into())
            ),
            ("model.reduction".to_string(), toml::Value::Integer(16)),
            (
                "model.placement".to_string(),
                toml::Value::String("post_bn".into())
            ),
        ]
    );
    // The baseline trial has the swept keys of its (empty) grid: none.
    assert!(trials[0].axes.is_empty());
}

#[test]
fn ids_are_distinct_hex_and_stable() {
    let e = parse(SE);
    let trials = e.trials();
    let ids: HashSet<&str> = trials.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids.len(), trials.len(), "trial ids are distinct");
    let variant_ids: HashSet<&str> = trials.iter().map(|t| t.variant_id.as_str()).collect();
    assert_eq!(variant_ids.len(), 5);
    for t in &trials {
        assert_eq!(t.id.as_str().len(), 12);
        assert!(t
            .id
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(t.id, t.config.trial_id(t.seed));
        assert_eq!(t.variant_id, t.config.variant_id());
    }
    // Same file, same ids; and the layout of the file does not matter.
    let again = parse(SE).trials();
    assert_eq!(trials, again);
    let relaid = parse(
        r#"
seeds = [0, 1]
name = "se"
model = { attention = "none" }
[[grid]]
[[grid]]
"model.placement" = ["post_bn", "post_relu"]
"model.attention" = ["se"]
"model.reduction" = [4, 16]
"#,
    );
    let a: HashSet<_> = trials
        .iter()
        .map(|t| (t.id.clone(), t.variant.clone()))
        .collect();
    let ids_b: HashSet<_> = relaid.trials().iter().map(|t| t.id.clone()).collect();
    assert_eq!(
        a.iter().map(|(i, _)| i.clone()).collect::<HashSet<_>>(),
        ids_b
    );
    // Writing the defaults explicitly changes nothing either.
    let explicit =
        parse("[model]\nattention = \"none\"\nreduction = 16\n[train]\nepochs = 50\nlr = 0.001\n");
    let implicit = parse("name = \"exp\"\n");
    assert_eq!(explicit.trials()[0].id, implicit.trials()[0].id);
    // But any value does.
    let other = parse("[train]\nepochs = 49\n");
    assert_ne!(other.trials()[0].id, implicit.trials()[0].id);
}

#[test]
fn no_grid_is_the_base_and_an_empty_grid_too() {
    let e = parse("seeds = [3]\n[train]\nepochs = 2\n");
    assert_eq!(labels(&e), vec!["baseline"]);
    assert_eq!(e.trials().len(), 1);
    assert_eq!(e.trials()[0].config.train.epochs, 2);
    assert_eq!(e.trials()[0].seed, 3);
    assert!(e.axis_keys().is_empty());
    let e2 = parse("seeds = [3]\n[train]\nepochs = 2\n[[grid]]\n");
    assert_eq!(e2.trials(), e.trials());
    // Defaults: seed 0, name from the file.
    let e3 = parse("description = \"defaults\"\n");
    assert_eq!(e3.seeds(), &[0]);
    assert_eq!(e3.name(), "exp");
}

#[test]
fn identical_trials_are_merged() {
    // The empty grid and `attention = "none"` are the same variant; `reduction`
    // has no effect without attention, so none x {4, 8} is the baseline too;
    // the third grid repeats a variant of the second.
    let e = parse(
        r#"
[[grid]]
[[grid]]
"model.attention" = ["none", "se"]
"model.reduction" = [4, 8]
[[grid]]
"model.attention" = ["se"]
"model.reduction" = [8]
"#,
    );
    assert_eq!(
        labels(&e),
        vec![
            "baseline",
            "attention=se reduction=4",
            "attention=se reduction=8"
        ]
    );
    assert_eq!(e.trials().len(), 3);
}

#[test]
fn keys_without_effect_leave_labels_and_axes() {
    // ECA has no MLP: reduction does not change it.
    let e = parse(
        r#"
[[grid]]
"model.attention" = ["eca", "se"]
"model.reduction" = [4, 8]
"#,
    );
    assert_eq!(
        labels(&e),
        vec![
            "attention=eca",
            "attention=se reduction=4",
            "attention=se reduction=8"
        ]
    );
    assert_eq!(
        e.variants()[0].axes,
        vec![(
            "model.attention".to_string(),
            toml::Value::String("eca".into())
        )]
    );
}

#[test]
fn labels_of_lists_floats_and_several_grids() {
    let e = parse(
        r#"
[model]
attention = "se"
[[grid]]
"model.blocks" = [[1, 3], [2]]
"train.lr" = [1e-3, 3e-4]
"data.augment" = [["crop", "flip"]]
"#,
    );
    assert_eq!(
        labels(&e),
        vec![
            "blocks=1+3 lr=0.001 augment=crop+flip",
            "blocks=1+3 lr=0.0003 augment=crop+flip",
            "blocks=2 lr=0.001 augment=crop+flip",
            "blocks=2 lr=0.0003 augment=crop+flip",
        ]
    );
    // Each variant is labelled by the keys its own grid sweeps.
    let e = parse(
        r#"
[[grid]]
"train.epochs" = [1, 2]
[[grid]]
"data.synthetic_seed" = [5]
"#,
    );
    assert_eq!(labels(&e), vec!["epochs=1", "epochs=2", "synthetic_seed=5"]);
}

#[test]
fn integers_are_accepted_for_floats() {
    let e = parse("[train]\nlr = 1\n[[grid]]\n\"model.dropout\" = [0, 0.25]\n");
    let t = e.trials();
    assert_eq!(t[0].config.train.lr, 1.0);
    assert_eq!(t[0].config.model.dropout, 0.0);
    assert_eq!(t[1].config.model.dropout, 0.25);
}

#[test]
fn set_overrides_keys_and_pins_swept_keys() {
    let e = parse_with(SE, &["train.epochs=2", "seeds=[0]"]);
    assert_eq!(e.trials().len(), 5);
    assert!(e.trials().iter().all(|t| t.config.train.epochs == 2));
    // Ids follow the values, not where they were written.
    let in_file =
        parse(&format!("{SE}\n[train]\nepochs = 2\n").replace("seeds = [0, 1]", "seeds = [0]"));
    assert_eq!(in_file.trials(), e.trials());

    // A swept key given with --set is no longer swept.
    let pinned = parse_with(SE, &["model.reduction=8"]);
    assert_eq!(
        labels(&pinned),
        vec![
            "baseline",
            "attention=se placement=post_bn",
            "attention=se placement=post_relu",
        ]
    );
    assert_eq!(
        pinned.axis_keys(),
        vec!["model.attention", "model.placement"]
    );
    assert!(pinned.variants()[1..]
        .iter()
        .all(|v| v.config.model.reduction == 8));

    // Bare words are strings; later --set wins.
    let e = parse_with(
        SE,
        &["model.attention=cbam", "model.attention=eca", "name=other"],
    );
    assert_eq!(e.base().model.attention, ablate_model::AttentionKind::Eca);
    assert_eq!(e.name(), "other");
    // The experiment as run keeps the overrides.
    let text = parse_with(SE, &["train.epochs=2", "model.reduction=8"])
        .to_toml_string()
        .unwrap();
    let back: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(back["train"]["epochs"].as_integer(), Some(2));
    assert_eq!(back["model"]["reduction"].as_integer(), Some(8));
    let grid1 = back["grid"][1].as_table().unwrap();
    assert!(grid1.contains_key("model.placement") && !grid1.contains_key("model.reduction"));
}

#[test]
fn shipped_experiments_parse_and_expand() {
    let se = load_experiment(&experiments_dir().join("se_ablation.toml"), &[]).unwrap();
    assert_eq!(se.name(), "se_ablation");
    assert_eq!(se.variants().len(), 16);
    assert_eq!(se.seeds(), &[0, 1, 2, 3, 4]);
    let trials = se.trials();
    assert_eq!(trials.len(), 80);
    assert_eq!(trials.iter().filter(|t| t.variant == "baseline").count(), 5);
    assert!(trials
        .iter()
        .any(|t| t.variant == "attention=se reduction=16 placement=post_relu"));
    assert_eq!(
        trials
            .iter()
            .map(|t| t.id.clone())
            .collect::<HashSet<_>>()
            .len(),
        80
    );
    for t in &trials {
        assert_eq!(t.config.train.epochs, 50);
        assert_eq!(t.config.data.augment.len(), 4);
        assert_eq!(
            t.config.train.scheduler,
            ablate_model::train::SchedulerKind::Plateau
        );
    }

    let modules = load_experiment(&experiments_dir().join("modules.toml"), &[]).unwrap();
    assert_eq!(
        labels(&modules),
        vec![
            "baseline",
            "attention=se",
            "attention=eca",
            "attention=spatial",
            "attention=cbam"
        ]
    );
    assert_eq!(modules.trials().len(), 25);

    let quick = load_experiment(&experiments_dir().join("quick.toml"), &[]).unwrap();
    assert_eq!(quick.trials().len(), 6);
    assert_eq!(
        quick.base().data.dataset,
        ablate_data::DatasetKind::ImageFolder
    );

    let smoke = load_experiment(&experiments_dir().join("smoke.toml"), &[]).unwrap();
    assert_eq!(smoke.trials().len(), 4);
    assert_eq!(
        smoke.base().data.dataset,
        ablate_data::DatasetKind::Synthetic
    );
    assert!(smoke.base().train.epochs <= 2);
    assert!(smoke.base().train.max_steps_per_epoch.is_some());
}

#[test]
fn every_file_in_experiments_loads() {
    let mut n = 0;
    for entry in std::fs::read_dir(experiments_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let e = load_experiment(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
            assert!(!e.trials().is_empty());
            n += 1;
        }
    }
    assert!(n >= 4);
}

/// The seed-source keys keep today's trial ids when absent or at values without effect, and
/// make new trials otherwise.
#[test]
fn seed_source_keys_keep_ids_unless_they_change_something() {
    let plain = parse("seeds = [0, 1]\n[train]\nepochs = 2\n");
    for same in [
        "seeds = [0, 1]\n[train]\nepochs = 2\nseed_varies = \"all\"\n",
        // fixed_seed has no effect while the seed drives every source.
        "seeds = [0, 1]\n[train]\nepochs = 2\nfixed_seed = 7\n",
        "seeds = [0, 1]\n[data]\nresample = \"none\"\n[train]\nepochs = 2\n",
    ] {
        assert_eq!(parse(same).trials(), plain.trials(), "{same}");
    }
    let init = parse("seeds = [0, 1]\n[train]\nepochs = 2\nseed_varies = \"init\"\n");
    assert_ne!(init.trials()[0].id, plain.trials()[0].id);
    let fixed =
        parse("seeds = [0, 1]\n[train]\nepochs = 2\nseed_varies = \"init\"\nfixed_seed = 7\n");
    assert_ne!(fixed.trials()[0].id, init.trials()[0].id);
    let boot = parse("seeds = [0, 1]\n[data]\nresample = \"bootstrap\"\n[train]\nepochs = 2\n");
    assert_ne!(boot.trials()[0].id, plain.trials()[0].id);
}

/// Seeds by precision: the first round is `0..start` for every variant; assigned counts
/// give each variant its own seeds, with the ids of a fixed list.
#[test]
fn seeds_by_precision_expand_like_a_list() {
    let text = "[seeds]\nstart = 2\nmax = 5\nci_half_width = 0.3\n[[grid]]\n\"model.attention\" = [\"none\", \"se\"]\n";
    let mut e = parse(text);
    assert_eq!(e.seeds(), &[0, 1]);
    assert_eq!(e.trials().len(), 4);
    e.set_assigned(vec![4, 2]);
    let trials = e.trials();
    assert_eq!(trials.len(), 6);
    let fixed = parse(&text.replace(
        "[seeds]\nstart = 2\nmax = 5\nci_half_width = 0.3\n",
        "seeds = [0, 1, 2, 3]\n",
    ));
    let fixed_ids: HashSet<String> = fixed.trials().iter().map(|t| t.id.to_string()).collect();
    assert!(trials.iter().all(|t| fixed_ids.contains(t.id.as_str())));
    // Seed-major: both variants' seeds 0 and 1 come before the baseline's seeds 2 and 3.
    let seeds: Vec<u64> = trials.iter().map(|t| t.seed).collect();
    assert_eq!(seeds, vec![0, 0, 1, 1, 2, 3]);
}
