//! Command-line parsing, and `ablate sweep --dry-run` run as a process.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;

use ablate_runner::cli::{Cli, Command as Sub, DataCommand, ExportFormat};

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("ablate").chain(args.iter().copied()))
}

#[test]
fn sweep_options() {
    let cli = parse(&[
        "sweep",
        "exp.toml",
        "--devices",
        "cuda:0,cuda:1",
        "--jobs-per-device",
        "2",
        "--retries",
        "1",
        "--dry-run",
        "--set",
        "train.epochs=2",
        "--set",
        "seeds=[0]",
        "--out",
        "out",
        "--no-report",
    ])
    .unwrap();
    let Sub::Sweep(a) = cli.command else {
        panic!("not sweep")
    };
    assert_eq!(a.file, PathBuf::from("exp.toml"));
    assert_eq!(a.devices, "cuda:0,cuda:1");
    assert_eq!(a.jobs_per_device, 2);
    assert_eq!(a.retries, 1);
    assert!(a.dry_run && a.no_report);
    assert_eq!(a.out, PathBuf::from("out"));
    let keys: Vec<String> = a.overrides.iter().map(|o| o.dotted_key()).collect();
    assert_eq!(keys, vec!["train.epochs", "seeds"]);

    let Sub::Sweep(d) = parse(&["sweep", "exp.toml"]).unwrap().command else {
        panic!()
    };
    assert_eq!(d.devices, "cpu");
    assert_eq!(d.jobs_per_device, 1);
    assert_eq!(d.retries, 0);
    assert_eq!(d.out, PathBuf::from("results"));
    assert!(!d.dry_run && !d.no_report && d.overrides.is_empty());
}

#[test]
fn bad_arguments_are_usage_errors() {
    let e = parse(&["sweep", "exp.toml", "--set", "epochs"]).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("expected KEY=VALUE"), "{e}");
    assert_eq!(
        parse(&["sweep", "exp.toml", "--jobs-per-device", "0"])
            .unwrap_err()
            .exit_code(),
        2
    );
    assert_eq!(parse(&["sweep"]).unwrap_err().exit_code(), 2);
    assert_eq!(parse(&["frobnicate"]).unwrap_err().exit_code(), 2);
    assert_eq!(
        parse(&["data", "export", "synthetic", "--format", "png", "out"])
            .unwrap_err()
            .exit_code(),
        2
    );
}

#[test]
fn other_subcommands() {
    let Sub::Trial(t) = parse(&["trial", "results/x/trials/0123456789ab"])
        .unwrap()
        .command
    else {
        panic!()
    };
    assert_eq!(t.dir, PathBuf::from("results/x/trials/0123456789ab"));

    let Sub::Report(r) = parse(&["report", "results/x", "--feature-maps", "4"])
        .unwrap()
        .command
    else {
        panic!()
    };
    assert_eq!(r.dir, PathBuf::from("results/x"));
    assert_eq!(r.feature_maps, Some(4));

    let Sub::Eval(e) = parse(&[
        "eval",
        "--weights",
        "w.safetensors",
        "--model",
        "attention=se,reduction=8",
        "--data",
        "synthetic",
        "--json",
    ])
    .unwrap()
    .command
    else {
        panic!()
    };
    assert_eq!(e.weights, PathBuf::from("w.safetensors"));
    assert_eq!(e.model, "attention=se,reduction=8");
    assert_eq!(e.data, "synthetic");
    assert!(e.json);
    assert_eq!(e.batch_size, 500);

    let Sub::Data(DataCommand::Info(i)) = parse(&["data", "info", "synthetic"]).unwrap().command
    else {
        panic!()
    };
    assert_eq!(i.source, "synthetic");
    let Sub::Data(DataCommand::Export(x)) = parse(&[
        "data",
        "export",
        "imgs.tar.gz",
        "--format",
        "cifar-bin",
        "out",
    ])
    .unwrap()
    .command
    else {
        panic!()
    };
    assert_eq!(
        (x.source.as_str(), x.format, x.out.as_path()),
        ("imgs.tar.gz", ExportFormat::CifarBin, Path::new("out"))
    );
}

#[test]
fn help_documents_exit_codes() {
    let e = parse(&["--help"]).unwrap_err();
    assert_eq!(e.exit_code(), 0);
    let help = e.to_string();
    assert!(help.contains("Exit codes:"), "{help}");
    for cmd in ["sweep", "trial", "report", "eval", "data"] {
        assert!(help.contains(cmd), "{cmd} missing from:\n{help}");
    }
}

// ---- the binary ----

fn ablate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ablate"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .output()
        .unwrap()
}

#[test]
fn dry_run_prints_the_plan_and_what_is_done() {
    let out = tempfile::tempdir().unwrap();
    let out_s = out.path().to_str().unwrap();
    let run = ablate(&[
        "sweep",
        "experiments/smoke.toml",
        "--dry-run",
        "--out",
        out_s,
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("trials      4 (2 variants x 2 seeds): 4 pending; 4 to run"),
        "{stdout}"
    );
    let lines: Vec<&str> = stdout.lines().filter(|l| l.contains(" pending ")).collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    // each trial's parameter count: the seed CNN, and with SE r=8 (2 * (32*4 + 64*8 + 128*16))
    assert!(
        lines[0].contains(" 1,147,914  baseline") && lines[1].contains(" 1,153,290  attention=se"),
        "{stdout}"
    );
    // Nothing was written.
    assert!(std::fs::read_dir(out.path()).unwrap().next().is_none());

    // Mark the first trial completed: the plan sees it.
    let id = lines[0].split_whitespace().next().unwrap();
    let dir = out.path().join("smoke/trials").join(id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("status.json"),
        r#"{"status": "completed", "epochs_done": 2}"#,
    )
    .unwrap();
    let run = ablate(&[
        "sweep",
        "experiments/smoke.toml",
        "--dry-run",
        "--out",
        out_s,
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("1 completed, 3 pending; 3 to run"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(id) && l.contains("completed") && l.contains("2/2")),
        "{stdout}"
    );

    // --set changes the plan.
    let run = ablate(&[
        "sweep",
        "experiments/smoke.toml",
        "--dry-run",
        "--out",
        out_s,
        "--set",
        "seeds=[5]",
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("trials      2 (2 variants x 1 seed): 2 pending"),
        "{stdout}"
    );
}

#[test]
fn errors_exit_non_zero_with_the_location() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "name = \"bad\"\n[train]\nepochs = 0\n").unwrap();
    let run = ablate(&["sweep", file.to_str().unwrap(), "--dry-run"]);
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: {}:3:1: `train.epochs`: must be at least 1",
            file.display()
        )
    );

    let run = ablate(&["sweep", "--bogus"]);
    assert_eq!(run.status.code(), Some(2));
    let run = ablate(&["sweep", "/no/such/file.toml", "--dry-run"]);
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.starts_with("error: cannot read /no/such/file.toml: "),
        "{stderr}"
    );
}
