#!/usr/bin/env python3
"""PyTorch's side of the `ablate eval` check (docs/parity.md): evaluates a
safetensors state_dict with the reference model (`../shared/reference/torch_seed.py`)
on the test split of a CIFAR-10 binary folder and prints one JSON object shaped
like `ablate eval --json`, plus each image's predicted class, so the two can be
compared image by image:

    ablate eval --weights W --model attention=se,reduction=16 --data DIR --json \
        --predictions ours.txt > ours.json
    python scripts/eval-vs-torch.py --weights W --reduction 16 --data DIR \
        --predictions torch.txt > torch.json
    cmp ours.txt torch.txt

Any model of scripts/golden.py (the ResNets included) with --model and our SPEC string:

    python scripts/eval-vs-torch.py --weights W --model arch=resnet,depth=20,attention=se \
        --data DIR --predictions torch.txt > torch.json

Needs torch, safetensors and numpy (never in CI).
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "shared", "reference"))
from torch_seed import MEAN, STD, SeedCNN, load_cifar_bin  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--reduction", type=int, default=0, help="0: baseline; else SE reduction")
    ap.add_argument("--model", help="a model of scripts/golden.py (our SPEC string, e.g. "
                                    "arch=resnet,depth=20) instead of the reference's seed CNN")
    ap.add_argument("--data", required=True, help="CIFAR-10 binary folder (test_batch.bin)")
    ap.add_argument("--predictions", help="write one predicted class index per line")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count())
    if args.model:
        sys.path.insert(0, here)
        import golden
        model = golden.build(golden.parse_spec(args.model))
    else:
        model = SeedCNN(args.reduction or None)
    state = load_file(args.weights)
    missing, unexpected = model.load_state_dict(state, strict=False)
    unexpected = [k for k in unexpected if not k.endswith("num_batches_tracked")]
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        sys.exit(f"weights do not fit: missing {missing}, unexpected {unexpected}")
    model.eval()
    x, y = load_cifar_bin(args.data, ["test_batch.bin"])
    preds, loss = [], 0.0
    with torch.no_grad():
        for s in range(0, len(x), 500):
            out = model((x[s:s + 500].float() / 255.0 - MEAN) / STD)
            loss += F.cross_entropy(out, y[s:s + 500], reduction="sum").item()
            preds.append(out.argmax(1))
    pred = torch.cat(preds)
    per_class = []
    for c in range(10):
        m = y == c
        per_class.append({"index": c, "correct": int((pred[m] == c).sum()), "total": int(m.sum())})
    if args.predictions:
        with open(args.predictions, "w") as f:
            f.writelines(f"{int(p)}\n" for p in pred)
    print(json.dumps({
        "accuracy": float((pred == y).float().mean()),
        "loss": loss / len(x),
        "correct": int((pred == y).sum()),
        "images": len(x),
        "per_class": per_class,
    }))


if __name__ == "__main__":
    main()
