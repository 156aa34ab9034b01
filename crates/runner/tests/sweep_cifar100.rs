//! A tiny sweep on a CIFAR-100 fixture in the official binary layout (written here with
//! `ablate_data::cifar100::write_dir`): the trials train 100-class models and record 100
//! classes with the fixture's names; `ablate data info` reads the folder as CIFAR-100;
//! `--dry-run` counts the parameters for the data's classes (100 fine, 20 coarse) without
//! reading the data. No network.

mod sweep_common;

use std::path::Path;

use ablate_data::cifar100::{self, SplitToWrite};
use ablate_data::ImageSet;
use ablate_schema::tables;
use sweep_common::{ablate, explain, read_parquet, Sandbox};

const TRAIN: usize = 40;
const TEST: usize = 12;

/// `n` records whose fine label is `(first + i) % 100` (coarse: fine % 20) and pixels a
/// pattern of the label.
fn split(n: usize, first: usize) -> (ImageSet, Vec<u8>) {
    let mut set = ImageSet::empty(32, 32);
    for i in 0..n {
        let fine = ((first + i) % 100) as u8;
        set.images
            .extend((0..3072).map(|p| (p as u8).wrapping_mul(fine).wrapping_add(fine)));
        set.labels.push(fine);
        set.len += 1;
    }
    let coarse = set.labels.iter().map(|f| f % 20).collect();
    (set, coarse)
}

/// Writes the fixture into `dir/cifar-100-binary/`.
fn write_fixture(dir: &Path) {
    let (train, train_coarse) = split(TRAIN, 0);
    let (test, test_coarse) = split(TEST, 50);
    let fine: Vec<String> = (0..100).map(|i| format!("fine{i}")).collect();
    let coarse: Vec<String> = (0..20).map(|i| format!("super{i}")).collect();
    cifar100::write_dir(
        &dir.join(cifar100::DATA_DIR),
        SplitToWrite {
            images: &train,
            coarse: &train_coarse,
        },
        SplitToWrite {
            images: &test,
            coarse: &test_coarse,
        },
        &fine,
        &coarse,
    )
    .unwrap();
}

fn sandbox() -> Sandbox {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(&dir.path().join("c100"));
    let text = "name = \"c100\"\nseeds = [0]\n\n\
                [data]\ndataset = \"cifar100\"\npath = \"c100\"\ndownload = false\n\
                augment = [\"crop\", \"flip\"]\n\n\
                [train]\nepochs = 1\nbatch_size = 8\neval_batch_size = 12\nmax_steps_per_epoch = 2\n\n\
                [model]\nattention = \"none\"\n\n\
                [[grid]]\n\n[[grid]]\n\"model.attention\" = [\"se\"]\n\"model.reduction\" = [8]\n";
    std::fs::write(dir.path().join("exp.toml"), text).unwrap();
    Sandbox {
        dir,
        name: "c100".into(),
    }
}

/// The parameter count of each variant in a `--dry-run` plan's trial lines (`trial seed status
/// epochs params variant...`), by variant label.
fn plan_params(plan: &str) -> Vec<(String, u64)> {
    plan.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let params = f.get(4)?.replace(',', "").parse().ok()?;
            Some((f[5..].join(" "), params))
        })
        .collect()
}

fn dry_run(sb: &Sandbox, sets: &[&str]) -> String {
    let mut c = ablate();
    c.current_dir(sb.dir.path())
        .args(["sweep", "exp.toml", "--out", "results", "--dry-run"]);
    for s in sets {
        c.args(["--set", s]);
    }
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn sweep_on_cifar100_records_100_classes_and_dry_run_counts_them() {
    let sb = sandbox();
    let out = sb.sweep(&[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let trials = sb.trials();
    assert_eq!(trials.len(), 2);
    for t in &trials {
        assert_eq!(t.status()["status"], "completed", "{:?}", t.dir);
        t.assert_complete_records(1, 2);
    }
    let results = sb.results();
    let classes = ablate_schema::classes_from_frame(&read_parquet(
        &results.join(tables::CLASSES.file_name()),
    ))
    .unwrap();
    assert_eq!(classes.len(), 2 * 100, "100 classes per trial");
    for (_, c) in &classes {
        assert_eq!(c.class, format!("fine{}", c.class_index));
        assert_eq!(c.confusion.len(), 100);
    }
    // Test labels 50..61: those classes have one image each, the others none.
    let counted: u64 = classes.iter().map(|(_, c)| c.total).sum();
    assert_eq!(counted, 2 * TEST as u64);
    assert!(classes
        .iter()
        .all(|(_, c)| c.total == u64::from((50..62).contains(&c.class_index))));

    // The dry run prints the trials' parameter counts (100 classes), without a footnote.
    let rows =
        ablate_schema::trials_from_frame(&read_parquet(&results.join(tables::TRIALS.file_name())))
            .unwrap();
    let plan = dry_run(&sb, &[]);
    assert!(!plan.contains("counted for 10 classes"), "{plan}");
    let fine = plan_params(&plan);
    assert_eq!(fine.len(), 2, "{plan}");
    for r in &rows {
        assert!(
            fine.contains(&(r.variant.clone(), r.params.unwrap())),
            "{} with {:?} params in\n{plan}",
            r.variant,
            r.params
        );
    }
    // `ablate data info` reads the same folder as CIFAR-100 (fine labels).
    let out = ablate()
        .current_dir(sb.dir.path())
        .args(["data", "info", "c100", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["name"], "cifar100");
    assert_eq!(info["classes"].as_array().unwrap().len(), 100);
    assert_eq!(info["splits"][0]["count"], TRAIN);
    assert_eq!(info["splits"][1]["count"], TEST);

    // Coarse labels: 20 outputs (a dry run reads no data: remove it). The last layer loses 80
    // outputs, 80 x (its inputs + 1) parameters, whatever the attention.
    std::fs::remove_dir_all(sb.dir.path().join("c100")).unwrap();
    let coarse = plan_params(&dry_run(&sb, &["data.labels=coarse"]));
    assert_eq!(coarse.len(), 2);
    let fewer: Vec<u64> = fine
        .iter()
        .zip(&coarse)
        .map(|((fv, fp), (cv, cp))| {
            assert_eq!(fv, cv);
            fp - cp
        })
        .collect();
    assert!(fewer[0] > 0 && fewer[0].is_multiple_of(80), "{fewer:?}");
    assert_eq!(fewer[0], fewer[1]);
}
