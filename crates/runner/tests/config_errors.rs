//! Every class of experiment-file error names the file, line, column and key.
//! The assertions compare whole messages: they are what users read.

use std::path::Path;

use ablate_runner::config::{ConfigError, Experiment, Location, Override};

fn err_with(text: &str, sets: &[&str]) -> ConfigError {
    let overrides: Vec<Override> = sets.iter().map(|s| s.parse().unwrap()).collect();
    match Experiment::parse(Path::new("exp.toml"), text, &overrides) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

fn err(text: &str) -> String {
    err_with(text, &[]).to_string()
}

#[test]
fn syntax_errors_have_a_position() {
    let e = err_with("name = \"x\"\nseeds = [0,\n", &[]);
    assert!(matches!(e, ConfigError::Syntax { .. }), "{e:?}");
    assert!(e.to_string().starts_with("exp.toml:2:"), "{e}");
    assert!(e.to_string().contains("invalid toml"), "{e}");
}

#[test]
fn unknown_keys_suggest_the_closest() {
    assert_eq!(
        err("name = \"x\"\nseed = [0]\n"),
        "exp.toml:2:1: unknown key `seed`; did you mean `seeds`?"
    );
    assert_eq!(
        err("[data]\ndataset = \"synthetic\"\naugmnt = [\"crop\"]\n"),
        "exp.toml:3:1: unknown key `data.augmnt`; did you mean `augment`?"
    );
    assert_eq!(
        err("model.reductoin = 4\n"),
        "exp.toml:1:7: unknown key `model.reductoin`; did you mean `reduction`?"
    );
    // Nothing close: the accepted keys are listed.
    let e = err("[train]\ncolour = 1\n");
    assert!(
        e.starts_with(
            "exp.toml:2:1: unknown key `train.colour`; expected one of `epochs`, `batch_size`"
        ),
        "{e}"
    );
    match err_with("[data]\nflip_probability = 0.5\n", &[]) {
        ConfigError::UnknownKey {
            key,
            suggestion,
            location,
            ..
        } => {
            assert_eq!(key, "data.flip_probability");
            assert_eq!(suggestion.as_deref(), Some("flip_prob"));
            assert_eq!(
                location,
                Location::File {
                    path: "exp.toml".into(),
                    line: 2,
                    column: 1
                }
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrong_types_and_unknown_values() {
    assert_eq!(
        err("[train]\nepochs = \"ten\"\n"),
        "exp.toml:2:1: `train.epochs`: invalid type: string \"ten\", expected u32"
    );
    assert_eq!(
        err("[model]\nattention = \"sse\"\n"),
        "exp.toml:2:1: `model.attention`: unknown value `sse`; did you mean `se`? \
         (expected one of `none`, `se`, `eca`, `spatial`, `cbam`)"
    );
    assert_eq!(
        err("[data]\naugment = [\"crop\", \"zoom\"]\n"),
        "exp.toml:2:20: `data.augment[1]`: unknown value `zoom`, expected one of \
         `crop`, `flip`, `color_jitter`, `rotate`"
    );
    assert_eq!(
        err("[data]\ndataset = 3\n"),
        "exp.toml:2:1: `data.dataset`: expected one of `cifar10`, `cifar100`, `image-folder`, `synthetic`, found integer 3"
    );
    assert_eq!(
        err("name = 3\n"),
        "exp.toml:1:1: `name`: expected a string, found integer 3"
    );
    assert_eq!(
        err("model = 3\n"),
        "exp.toml:1:1: `model`: invalid type: integer `3`, expected struct ModelSpec"
    );
}

#[test]
fn impossible_values_name_the_key() {
    assert_eq!(
        err("[model]\nattention = \"se\"\nreduction = 0\n"),
        "exp.toml:3:1: `model.reduction`: must be between 1 and 32 \
         (the narrowest attended block's channels), got 0"
    );
    assert_eq!(
        err("[model]\nattention = \"se\"\nblocks = []\n"),
        "exp.toml:3:1: `model.blocks`: the block list is empty: give at least one of 1, 2, 3"
    );
    assert_eq!(
        err("[train]\nepochs = 0\n"),
        "exp.toml:2:1: `train.epochs`: must be at least 1"
    );
    assert_eq!(
        err("[data]\ncolor_jitter = [0.2, 0.2, 0.2, 0.7]\n"),
        "exp.toml:2:32: `data.color_jitter[3]`: (hue) must be in [0, 0.5], got 0.7"
    );
    // A default that a set value makes impossible points at the table.
    assert_eq!(
        err("[data]\ndataset = \"image-folder\"\n"),
        "exp.toml:1:2: `data.path`: is required for dataset = \"image-folder\" (a folder or a .tar.gz)"
    );
}

#[test]
fn grid_errors_point_at_the_grid() {
    assert_eq!(
        err("[[grid]]\n\"model.reduction\" = []\n"),
        "exp.toml:2:1: grid axis `model.reduction` is empty; give it at least one value"
    );
    assert_eq!(
        err("[[grid]]\n\"modle.reduction\" = [2]\n"),
        "exp.toml:2:1: unknown key `modle.reduction`; did you mean `model.reduction`?"
    );
    assert_eq!(
        err("[[grid]]\n\"model.reducton\" = [2]\n"),
        "exp.toml:2:21: unknown key `model.reducton`; did you mean `reduction`?"
    );
    assert_eq!(
        err("[[grid]]\n\"model.reduction\" = 4\n"),
        "exp.toml:2:1: `model.reduction`: a grid axis is an array of values (e.g. [4]), found integer 4"
    );
    assert_eq!(
        err("[[grid]]\nreduction = [4]\n"),
        "exp.toml:2:1: `reduction`: a grid key is a dotted path to one value, e.g. \"model.reduction\""
    );
    // The value of the faulty combination, not the base.
    assert_eq!(
        err("[model]\nattention = \"se\"\n[[grid]]\n\"model.reduction\" = [16, 64]\n"),
        "exp.toml:4:26: `model.reduction`: must be between 1 and 32 \
         (the narrowest attended block's channels), got 64"
    );
    // A combination that is only impossible together: blocks 2+3 allow r=64.
    let ok = Experiment::parse(
        Path::new("exp.toml"),
        "[model]\nattention = \"se\"\n[[grid]]\n\"model.blocks\" = [[2, 3]]\n\"model.reduction\" = [64]\n",
        &[],
    );
    assert!(ok.is_ok());
    assert_eq!(
        err("[model]\nattention = \"se\"\n[[grid]]\n\"model.blocks\" = [[2, 3], [1]]\n\"model.reduction\" = [64]\n"),
        "exp.toml:5:22: `model.reduction`: must be between 1 and 32 \
         (the narrowest attended block's channels), got 64"
    );
    assert_eq!(
        err("grid = 3\n"),
        "exp.toml:1:1: `grid`: expected `[[grid]]` tables of `\"table.key\" = [values]`"
    );
}

#[test]
fn seeds_and_name() {
    assert_eq!(
        err("seeds = []\n"),
        "exp.toml:1:1: `seeds`: the list is empty: give at least one seed"
    );
    assert_eq!(
        err("seeds = [0, -1]\n"),
        "exp.toml:1:13: `seeds[1]`: expected an integer >= 0, found integer -1"
    );
    assert_eq!(
        err("seeds = [1, 1]\n"),
        "exp.toml:1:13: `seeds[1]`: seed 1 is listed twice"
    );
    assert_eq!(
        err("seeds = \"0\"\n"),
        "exp.toml:1:1: `seeds`: expected a list of integers such as [0, 1, 2] or a [seeds] table, found string \"0\""
    );
    assert_eq!(
        err("[seeds]\nstart = 3\nmax = 2\nci_half_width = 0.3\n"),
        "exp.toml:3:1: `seeds.max`: must be at least seeds.start (3), got 2"
    );
    assert_eq!(
        err("[seeds]\nstart = 3\n"),
        "exp.toml:1:2: `seeds.ci_half_width`: is required in a [seeds] table: the target \
         half-width of the 95% interval of the difference with the baseline, in points (e.g. \
         0.3); a fixed list is `seeds = [0, 1, 2]`"
    );
    assert_eq!(
        err("[seeds]\nstrat = 3\nci_half_width = 0.3\n"),
        "exp.toml:2:1: unknown key `seeds.strat`; did you mean `start`?"
    );
    assert_eq!(
        err("name = \"a b\"\n"),
        "exp.toml:1:1: `name`: \"a b\" is not a usable folder name: use 1 to 100 letters, \
         digits, `_`, `-` or `.`, not starting with `.`"
    );
}

#[test]
fn override_errors_name_the_override() {
    assert_eq!(
        err_with("name = \"x\"\n", &["train.epochs=0"]).to_string(),
        "--set train.epochs=0: `train.epochs`: must be at least 1"
    );
    assert_eq!(
        err_with("name = \"x\"\n", &["train.epoch=3"]).to_string(),
        "--set train.epoch=3: unknown key `train.epoch`; did you mean `epochs`?"
    );
    assert_eq!(
        err_with("name = \"x\"\n", &["seed=[1]"]).to_string(),
        "--set seed=[1]: unknown key `seed`; did you mean `seeds`?"
    );
    assert_eq!(
        err_with("[model]\nattention = \"se\"\n", &["model.reduction=99"]).to_string(),
        "--set model.reduction=99: `model.reduction`: must be between 1 and 32 \
         (the narrowest attended block's channels), got 99"
    );
    let e = err_with("name = \"x\"\n", &["grid=[]"]).to_string();
    assert!(
        e.starts_with("invalid override `--set grid=[]`: grids cannot be set"),
        "{e}"
    );
    let e = err_with("[train]\nepochs = 3\n", &["train.epochs.x=1"]).to_string();
    assert_eq!(
        e,
        "invalid override `--set train.epochs.x=1`: `train.epochs` is not a table"
    );
    // Malformed overrides never get this far: parsing them fails.
    let e = "train.epochs".parse::<Override>().unwrap_err().to_string();
    assert_eq!(
        e,
        "invalid override `--set train.epochs`: expected KEY=VALUE, e.g. `train.epochs=2`"
    );
}

#[test]
fn missing_file_is_named() {
    let e =
        ablate_runner::config::load_experiment(Path::new("/no/such/exp.toml"), &[]).unwrap_err();
    assert_eq!(e.to_string(), "cannot read /no/such/exp.toml");
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn pytorch_streams_with_other_augmentations_point_at_the_key() {
    // The default [data] augments with all four ops; PyTorch's streams draw crop and flip only.
    let e = err("name = \"x\"\n[train]\nepochs = 1\nrandom_streams = \"pytorch\"\n");
    assert!(
        e.starts_with(
            "exp.toml:4:1: `train.random_streams`: data.augment must be [\"crop\", \"flip\"] or [] \
             with train.random_streams = \"pytorch\""
        ),
        "{e}"
    );
    // From a grid axis too.
    let e = err(
        "name = \"x\"\n[data]\naugment = [\"crop\", \"rotate\"]\n[[grid]]\n\
         \"train.random_streams\" = [\"ablate\", \"pytorch\"]\n",
    );
    assert!(e.contains("train.random_streams"), "{e}");
    assert!(e.contains("\"rotate\""), "{e}");
    // The reference's augmentation is accepted; so is a typo's suggestion.
    let ok = "name = \"x\"\n[data]\naugment = [\"crop\", \"flip\"]\n[train]\nrandom_streams = \"pytorch\"\n";
    assert!(Experiment::parse(Path::new("exp.toml"), ok, &[]).is_ok());
    let e = err("name = \"x\"\n[train]\nrandom_streams = \"torch\"\n");
    assert!(e.contains("expected one of `ablate`, `pytorch`"), "{e}");
}

#[test]
fn seed_source_keys_name_the_key() {
    assert_eq!(
        err("[train]\nseed_varies = \"sample\"\n"),
        "exp.toml:2:1: `train.seed_varies`: \"sample\" needs data.resample = \"bootstrap\" \
         or \"subsample\" (there is no sample to vary)"
    );
    assert_eq!(
        err("[data]\nresample = \"bootstrap\"\nresample_fraction = 0.5\n"),
        "exp.toml:3:1: `data.resample_fraction`: is only used with resample = \"subsample\""
    );
    assert_eq!(
        err("[data]\nresample = \"subsample\"\nresample_fraction = 1.5\n"),
        "exp.toml:3:1: `data.resample_fraction`: must be in (0, 1], got 1.5"
    );
    assert_eq!(
        err("[data]\naugment = [\"crop\", \"flip\"]\n[train]\nrandom_streams = \"pytorch\"\nseed_varies = \"init\"\n"),
        "exp.toml:5:1: `train.seed_varies`: must be \"all\" with train.random_streams = \
         \"pytorch\" (PyTorch's generator draws the weights and the dropout masks from one \
         stream)"
    );
    assert_eq!(
        err("[data]\ndataset = \"synthetic\"\nlabels = \"coarse\"\n"),
        "exp.toml:3:1: `data.labels`: is only used with dataset = \"cifar100\", not \"synthetic\""
    );
    assert_eq!(
        err("[data]\ndataset = \"cifar100\"\nlabels = \"superclass\"\n"),
        "exp.toml:3:1: `data.labels`: unknown value `superclass`, expected one of `fine`, `coarse`"
    );
    assert_eq!(
        err("[train]\nseed_varies = \"weights\"\n"),
        "exp.toml:2:1: `train.seed_varies`: unknown value `weights`, expected one of `all`, \
         `init`, `order`, `sample`"
    );
}

#[test]
fn empty_or_meaningless_files_are_refused_saying_so() {
    for (text, what) in [
        ("", "is empty"),
        ("  \n\t\n", "holds only whitespace"),
        ("# only a comment\n", "sets nothing"),
        ("[data]\n[model]\n\n[train]\n", "sets nothing"),
        ("[[grid]]\n[[grid]]\n", "sets nothing"),
        ("[model.attention_options]\n", "sets nothing"),
    ] {
        let e = err(text);
        assert!(
            e.starts_with(&format!("exp.toml: the experiment file {what}")),
            "{text:?}: {e}"
        );
        assert!(e.ends_with("write one line: `name = \"defaults\"`"), "{e}");
    }
    // --set does not make an empty file meaningful (a clobbered file under a real command).
    let e = err_with("", &["train.epochs=1"]).to_string();
    assert!(
        e.starts_with("exp.toml: the experiment file is empty"),
        "{e}"
    );
    // A deliberate default run.
    let ok = Experiment::parse(Path::new("exp.toml"), "name = \"defaults\"\n", &[]).unwrap();
    assert_eq!(ok.name(), "defaults");
    assert_eq!(ok.trial_count(), 1);
    let ok = Experiment::parse(Path::new("exp.toml"), "description = \"x\"\n", &[]).unwrap();
    assert_eq!(ok.name(), "exp");
}

#[test]
fn a_grid_of_a_trillion_trials_is_refused_before_expansion() {
    // 10 axes of 16 values: 16^10 = 1,099,511,627,776 combinations. Expanding them would take
    // the memory of the machine; the check comes first, so this test ends at once.
    let keys = [
        "train.lr",
        "train.weight_decay",
        "train.momentum",
        "train.batch_size",
        "train.label_smoothing",
        "train.epochs",
        "train.eval_batch_size",
        "model.reduction",
        "data.train_limit",
        "data.test_limit",
    ];
    let mut text = String::from("name = \"huge\"\n[[grid]]\n");
    for k in keys {
        let values: Vec<String> = (1..=16).map(|v| v.to_string()).collect();
        text.push_str(&format!("\"{k}\" = [{}]\n", values.join(", ")));
    }
    let e = err(&text);
    assert_eq!(
        e,
        "exp.toml:2:1: `grid`: the experiment plans 1099511627776 trials (1099511627776 \
         combinations x 1 seed), more than the limit of 100000; split it into several \
         experiments or sweep fewer values"
    );
    // Seeds count too.
    let seeds: Vec<String> = (0..60_000).map(|s| s.to_string()).collect();
    let e = err(&format!(
        "seeds = [{}]\n[[grid]]\n\"model.reduction\" = [2, 4]\n",
        seeds.join(", ")
    ));
    assert!(
        e.starts_with(
            "exp.toml:2:1: `grid`: the experiment plans 120000 trials (2 combinations x 60000 seeds)"
        ),
        "{e}"
    );
    let seeds: Vec<String> = (0..=100_000).map(|s| s.to_string()).collect();
    let e = err(&format!("seeds = [{}]\n", seeds.join(", ")));
    assert!(
        e.starts_with(
            "exp.toml:1:1: `seeds`: the experiment plans 100001 trials (1 combination x 100001 seeds)"
        ),
        "{e}"
    );
}
