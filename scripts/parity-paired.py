#!/usr/bin/env python3
"""Paired parity with the PyTorch reference (docs/parity.md).

  run       runs `../shared/reference/torch_seed.py train` unchanged, recording every training
            iteration's loss as well (by wrapping the `F.cross_entropy` it calls), and writes
            JSON lines: {"iteration": i, "loss": x} then the script's own epoch records
  compare   pairs the trials of an `ablate sweep` made with `random_streams = "pytorch"` with
            such runs (same model, same seed) and prints, per pair, the final test accuracies,
            how far the per-iteration losses agree, and the 2-seed means

  python scripts/parity-paired.py run --data data/parity --reduction 0 --seed 0 \
      --threads 2 --out torch/r0_s0.jsonl
  python scripts/parity-paired.py compare --sweep results/parity_paired --torch torch/

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


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().startswith("{")]


def trial_key(config_text):
    """(reduction, seed) of one of our trials from its config.toml (0: the baseline)."""
    import tomllib
    cfg = tomllib.loads(config_text)
    model = cfg.get("model", {})
    red = model.get("reduction", 16) if model.get("attention", "none") == "se" else 0
    return red, cfg["seed"]


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
    print("| model | seed | ours e3 | PyTorch e3 | ours - PyTorch | iterations equal to 1e-4 | "
          "to 1e-2 | mean abs. loss difference, last epoch |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for (red, seed), (tid, our_it, our_ep) in sorted(ours.items()):
        path = os.path.join(args.torch, f"r{red}_s{seed}.jsonl")
        if not os.path.exists(path):
            continue
        recs = read_jsonl(path)
        t_it = [r for r in recs if "iteration" in r]
        t_ep = [r for r in recs if "epoch" in r]
        if len(t_ep) < len(our_ep):
            continue
        n = min(len(t_it), len(our_it))
        rel = [abs(our_it[i]["loss"] - t_it[i]["loss"]) / abs(t_it[i]["loss"]) for i in range(n)]

        def first_above(tol):
            return next((i for i, r in enumerate(rel) if r > tol), n)

        per_epoch = math.ceil(n / len(our_ep))
        last = range(n - per_epoch, n)
        mean_abs = sum(abs(our_it[i]["loss"] - t_it[i]["loss"]) for i in last) / len(last)
        a, b = our_ep[-1]["test_acc"], t_ep[len(our_ep) - 1]["test_acc"]
        rows.append((red, seed, a, b))
        name = "baseline" if red == 0 else f"SE r={red}"
        print(f"| {name} | {seed} | {100 * a:.2f} | {100 * b:.2f} | {100 * (a - b):+.2f} | "
              f"{first_above(1e-4)} of {n} | {first_above(1e-2)} of {n} | {mean_abs:.4f} |")
    print()
    for red in sorted({r for r, _, _, _ in rows}):
        sel = [(a, b) for r, _, a, b in rows if r == red]
        if not sel:
            continue
        ma = sum(a for a, _ in sel) / len(sel)
        mb = sum(b for _, b in sel) / len(sel)
        name = "baseline" if red == 0 else f"SE r={red}"
        print(f"{name}: {len(sel)} seeds, ours {100 * ma:.2f}, PyTorch {100 * mb:.2f}, "
              f"difference {100 * (ma - mb):+.2f} points")


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
    c = sub.add_parser("compare")
    c.add_argument("--sweep", required=True, help="the sweep's folder (results/parity_paired)")
    c.add_argument("--torch", required=True, help="folder of run outputs named r<reduction>_s<seed>.jsonl")
    args = ap.parse_args()
    {"run": run, "compare": compare}[args.cmd](args)


if __name__ == "__main__":
    main()
