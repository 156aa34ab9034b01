#!/usr/bin/env python3
"""Paired parity with the PyTorch reference (docs/parity.md).

  run       runs `../shared/reference/torch_seed.py train` unchanged, recording every training
            iteration's loss as well (by wrapping the `F.cross_entropy` it calls), and writes
            JSON lines: {"iteration": i, "loss": x} then the script's own epoch records.
            With --model SPEC the reference's loop trains that model of scripts/golden.py
            instead of its seed CNN (e.g. `arch=resnet,depth=20,attention=se`), built at the
            same point, after `torch.manual_seed(seed)`, so that its initial weights are those
            of our `Net::init_like_torch(seed)`; --optimizer sgd (with --lr, --momentum,
            --weight-decay, --nesterov) replaces its Adam, and --scheduler none or cosine
            (CosineAnnealingLR over the epochs, as ours) its plateau schedule. Everything else (data, batch order, crops, flips, evaluation) is the
            reference's own code.
  compare   pairs the trials of an `ablate sweep` made with `random_streams = "pytorch"` with
            such runs (same model, same seed) and prints, per pair, the final test accuracies,
            how far the per-iteration losses agree, and the 2-seed means

  python scripts/parity-paired.py run --data data/parity --reduction 0 --seed 0 \
      --threads 2 --out torch/r0_s0.jsonl
  python scripts/parity-paired.py compare --sweep results/parity_paired --torch torch/
  python scripts/parity-paired.py run --data data/parity --model arch=resnet,depth=20 \
      --batch 128 --optimizer sgd --lr 0.1 --momentum 0.9 --weight-decay 1e-4 \
      --scheduler cosine --seed 0 --threads 2 --out torch_resnet/none-s0.jsonl
  python scripts/parity-paired.py compare --sweep results/parity_resnet --torch torch_resnet/

Needs what torch_seed.py needs (torch, numpy); reads our trials' JSON files only.
"""
import argparse
import glob
import json
import math
import os
import sys
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(ROOT, "..", "shared", "reference")


def run(args):
    sys.path.insert(0, REFERENCE)
    import torch.nn.functional as F
    import torch_seed

    out = open(args.out, "w")
    count = [0]

    def cross_entropy(input, target, *a, **kw):
        loss = F.cross_entropy(input, target, *a, **kw)
        if not kw and not a and input.requires_grad:  # the training step's mean loss
            out.write(json.dumps({"iteration": count[0], "loss": loss.item()}) + "\n")
            count[0] += 1
        return loss

    proxy = types.SimpleNamespace(**{k: getattr(F, k) for k in dir(F) if not k.startswith("__")})
    proxy.cross_entropy = cross_entropy
    torch_seed.F = proxy
    swap_model_and_optimizer(torch_seed, args)

    class Tee:
        def write(self, s):
            out.write(s)
            sys.__stdout__.write(s)

        def flush(self):
            out.flush()

    ns = argparse.Namespace(data=args.data, epochs=args.epochs, batch=args.batch,
                            reduction=args.reduction, seed=args.seed, train_limit=0, test_limit=0,
                            threads=args.threads)
    old, sys.stdout = sys.stdout, Tee()
    try:
        torch_seed.train(ns)
    finally:
        sys.stdout = old
        out.close()


def swap_model_and_optimizer(torch_seed, args):
    """--model, --optimizer and --scheduler: the reference's loop with another model, SGD and
    a constant rate (the reference builds `SeedCNN(reduction)`, `torch.optim.Adam(params,
    lr=1e-3)` and `ReduceLROnPlateau`, looked up when `train` runs)."""
    import torch
    if args.model:
        sys.path.insert(0, os.path.join(ROOT, "scripts"))
        import golden
        spec = golden.parse_spec(args.model)
        torch_seed.SeedCNN = lambda reduction: golden.build(spec)
    if args.optimizer == "sgd":
        if args.lr is None:
            sys.exit("--optimizer sgd needs --lr")
        sgd = torch.optim.SGD
        torch.optim.Adam = lambda params, lr: sgd(
            params, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
            nesterov=args.nesterov)
    elif args.lr is not None or args.weight_decay:
        adam = torch.optim.Adam
        torch.optim.Adam = lambda params, lr: adam(
            params, lr=args.lr if args.lr is not None else lr, weight_decay=args.weight_decay)
    if args.scheduler == "none":
        class Constant:
            def __init__(self, *a, **kw):
                pass

            def step(self, *a, **kw):
                pass
        torch.optim.lr_scheduler.ReduceLROnPlateau = Constant
    elif args.scheduler == "cosine":
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR

        class Cosine:
            """Our `scheduler = "cosine"`: CosineAnnealingLR(T_max=epochs), stepped per epoch
            (the reference steps its scheduler once per epoch, with the test loss)."""

            def __init__(self, opt, *a, **kw):
                self.inner = cosine(opt, T_max=args.epochs)

            def step(self, *a, **kw):
                self.inner.step()
        torch.optim.lr_scheduler.ReduceLROnPlateau = Cosine


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().startswith("{")]


def trial_key(config_text):
    """(reduction, seed) of one of our trials from its config.toml (0: the baseline), and
    whether it is a ResNet."""
    import tomllib
    cfg = tomllib.loads(config_text)
    model = cfg.get("model", {})
    red = model.get("reduction", 16) if model.get("attention", "none") == "se" else 0
    return red, cfg["seed"], model.get("arch", "cnn") == "resnet"


def torch_run_name(red, seed, resnet):
    """The file of a twin run: r<reduction>_s<seed>.jsonl for the seed CNN (the reference's own
    model), none-s<seed>.jsonl / se-s<seed>.jsonl for a ResNet."""
    if resnet:
        return f"{'se' if red else 'none'}-s{seed}.jsonl"
    return f"r{red}_s{seed}.jsonl"


def model_name(red, resnet):
    net = "ResNet-20" if resnet else None
    if red == 0:
        return f"{net} plain" if net else "baseline"
    return f"{net} SE r={red}" if net else f"SE r={red}"


def trajectory(ours_it, torch_it, epochs):
    """How far two runs' per-iteration losses agree: the first iteration whose relative
    difference exceeds 1e-4 and 1e-2 (of n compared), and the mean absolute difference over
    the last epoch; None without per-iteration losses on either side."""
    n = min(len(ours_it), len(torch_it))
    if not n:
        return None
    rel = [abs(ours_it[i]["loss"] - torch_it[i]["loss"]) / abs(torch_it[i]["loss"]) for i in range(n)]
    first_above = lambda tol: next((i for i, r in enumerate(rel) if r > tol), n)
    last = range(n - math.ceil(n / epochs), n)
    mean_abs = sum(abs(ours_it[i]["loss"] - torch_it[i]["loss"]) for i in last) / len(last)
    return first_above(1e-4), first_above(1e-2), n, mean_abs


def trajectory_cells(t):
    if t is None:  # a run without per-iteration losses (torch_seed.py itself)
        return " | | |"
    return f" {t[0]} of {t[2]} | {t[1]} of {t[2]} | {t[3]:.4f} |"


def read_run(path, epochs):
    """A twin run's (iterations, epochs), or None when missing or shorter than ours."""
    if not os.path.exists(path):
        return None
    recs = read_jsonl(path)
    ep = [r for r in recs if "epoch" in r]
    return ([r for r in recs if "iteration" in r], ep) if len(ep) >= epochs else None


def compare(args):
    ours = {}
    for d in sorted(glob.glob(os.path.join(args.sweep, "trials", "*"))):
        cfg_path = os.path.join(d, "config.toml")
        if not os.path.exists(os.path.join(d, "epochs.jsonl")):
            continue
        with open(cfg_path) as f:
            key = trial_key(f.read())
        ours[key] = (os.path.basename(d), read_jsonl(os.path.join(d, "iterations.jsonl")),
                     read_jsonl(os.path.join(d, "epochs.jsonl")))
    rows = []
    traj_head = " iterations within 1e-4 | within 1e-2 | mean abs. loss difference, last epoch |"
    alt_head = (" PyTorch, other threads e3 | PyTorch - other |" + traj_head.replace(" iterations", " other threads: iterations")
                if args.alt else "")
    print("| model | seed | ours e3 | PyTorch e3 | ours - PyTorch |" + traj_head + alt_head)
    print("| --- " * (8 + (5 if args.alt else 0)) + "|")
    for (red, seed, resnet), (tid, our_it, our_ep) in sorted(ours.items()):
        twin = read_run(os.path.join(args.torch, torch_run_name(red, seed, resnet)), len(our_ep))
        if twin is None:
            continue
        t_it, t_ep = twin
        a, b = our_ep[-1]["test_acc"], t_ep[len(our_ep) - 1]["test_acc"]
        cells = trajectory_cells(trajectory(our_it, t_it, len(our_ep)))
        c = None
        if args.alt:
            alt = read_run(os.path.join(args.alt, torch_run_name(red, seed, resnet)), len(our_ep))
            if alt is not None:
                c = alt[1][len(our_ep) - 1]["test_acc"]
                cells += (f" {100 * c:.2f} | {100 * (b - c):+.2f} |"
                          + trajectory_cells(trajectory(alt[0], t_it, len(our_ep))))
            else:
                cells += " | |" + trajectory_cells(None)
        rows.append((red, seed, a, b, c, resnet))
        print(f"| {model_name(red, resnet)} | {seed} | {100 * a:.2f} | {100 * b:.2f} | {100 * (a - b):+.2f} |"
              + cells)
    print()
    print("| model | seeds | ours mean | PyTorch mean | ours - PyTorch | mean abs. per-seed difference |"
          + (" PyTorch, other threads: mean abs. per-seed difference |" if args.alt else ""))
    print("| --- " * (6 + (1 if args.alt else 0)) + "|")
    for red in sorted({r[0] for r in rows}):
        for upto in sorted({len([r for r in rows if r[0] == red]), 2}):
            sel = [r for r in rows if r[0] == red][:upto]
            if len(sel) < upto:
                continue
            ma = sum(r[2] for r in sel) / len(sel)
            mb = sum(r[3] for r in sel) / len(sel)
            mad = sum(abs(r[2] - r[3]) for r in sel) / len(sel)
            alt = ""
            if args.alt:
                other = [abs(r[3] - r[4]) for r in sel if r[4] is not None]
                alt = f" {100 * sum(other) / len(other):.2f} ({len(other)} seeds) |" if other else " |"
            seeds = ", ".join(str(r[1]) for r in sel)
            print(f"| {model_name(red, sel[0][5])} | {seeds} | {100 * ma:.2f} | {100 * mb:.2f} | {100 * (ma - mb):+.2f} | "
                  f"{100 * mad:.2f} |{alt}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--data", required=True)
    r.add_argument("--epochs", type=int, default=3)
    r.add_argument("--batch", type=int, default=64)
    r.add_argument("--reduction", type=int, default=0)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--threads", type=int, default=0)
    r.add_argument("--out", required=True)
    r.add_argument("--model", help="a model of scripts/golden.py (our SPEC string) instead of the "
                                   "reference's seed CNN")
    r.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    r.add_argument("--lr", type=float, help="learning rate (default: the reference's 1e-3 for Adam)")
    r.add_argument("--momentum", type=float, default=0.9)
    r.add_argument("--weight-decay", type=float, default=0.0)
    r.add_argument("--nesterov", action="store_true")
    r.add_argument("--scheduler", choices=["plateau", "none", "cosine"], default="plateau")
    c = sub.add_parser("compare")
    c.add_argument("--sweep", required=True, help="the sweep's folder (results/parity_paired)")
    c.add_argument("--torch", required=True, help="folder of run outputs named r<reduction>_s<seed>.jsonl")
    c.add_argument("--alt", help="optional second folder of PyTorch runs (e.g. on another thread "
                                 "count): PyTorch against itself, the floor of any comparison")
    args = ap.parse_args()
    {"run": run, "compare": compare}[args.cmd](args)


if __name__ == "__main__":
    main()
