#!/usr/bin/env python3
"""Reference values of PyTorch's CPU random streams, as `torch_seed.py train` draws them.

Writes the JSON fixtures behind `random_streams = "pytorch"` (docs/training.md):

  crates/data/tests/data/torch_streams.json   generator primitives (uniform_, rand, randint,
                                              randperm, bernoulli_) and two epochs of
                                              torch_seed.py's batches (order, crop, flip,
                                              normalized pixels) on a small synthetic set
  crates/model/tests/data/torch_init.json     SeedCNN()'s and SeedCNN(16)'s initial
                                              parameters after torch.manual_seed(seed), the
                                              dropout masks of the first training steps, and
                                              `torch_seed.py train`'s per-epoch records on that
                                              synthetic set (3 epochs, 2 steps each)

Every value comes from PyTorch itself (the reference's own SeedCNN, augment and
normalization), never from a re-implementation:

  /work/venv-torch/bin/python scripts/torch-streams.py
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "..", "shared", "reference"))
import torch_seed  # noqa: E402


def seq_sum(values, weighted=False):
    """Sequential float64 sum (the Rust tests add in the same order, so equal values give equal
    bits), as the shortest round-trip string: JSON readers need not parse floats exactly."""
    s = 0.0
    for i, v in enumerate(values):
        s += float(v) * (i + 1 if weighted else 1)
    return repr(s)


def primitives():
    out = {}
    torch.manual_seed(7)
    out["uniform_f32_seed7_from_m0.25_to_0.5"] = torch.empty(6).uniform_(-0.25, 0.5).tolist()
    g = torch.Generator().manual_seed(7)
    out["rand_seed7"] = torch.rand(6, generator=g).tolist()
    g = torch.Generator().manual_seed(7)
    out["randint_0_9_seed7"] = torch.randint(0, 9, (12,), generator=g).tolist()
    g = torch.Generator().manual_seed(7)
    out["randperm_10_seed7"] = torch.randperm(10, generator=g).tolist()
    # a later draw shows how many numbers randperm consumed
    out["randint_0_1000_after_randperm_10_seed7"] = torch.randint(0, 1000, (3,), generator=g).tolist()
    torch.manual_seed(7)
    out["bernoulli_0.5_seed7"] = torch.empty(16).bernoulli_(0.5).tolist()
    torch.manual_seed(7)
    out["bernoulli_0.3_seed7"] = torch.empty(16).bernoulli_(0.3).tolist()
    torch.manual_seed(2**40 + 7)  # manual_seed keeps the low 32 bits for the Mersenne Twister
    out["uniform_f32_seed_2p40_plus_7"] = torch.empty(2).uniform_(0.0, 1.0).tolist()
    return out


def synthetic_set(n):
    """uint8 [n, 3, 32, 32] images and labels, a pure function of the index (the Rust test builds the same)."""
    idx = torch.arange(n * 3 * 32 * 32, dtype=torch.int64)
    x = ((idx * 7 + (idx // 3072) * 13) % 256).to(torch.uint8).view(n, 3, 32, 32)
    y = torch.arange(n, dtype=torch.int64) % 10
    return x, y


def batches(seed, n=100, batch=64, epochs=2):
    """torch_seed.train's data stream, with its own augment and normalization."""
    xtr, ytr = synthetic_set(n)
    norm = lambda u8: (u8.float() / 255.0 - torch_seed.MEAN) / torch_seed.STD
    g = torch.Generator().manual_seed(seed)
    out = []
    for epoch in range(epochs):
        perm = torch.randperm(len(xtr), generator=g)
        for s in range(0, len(perm), batch):
            idx = perm[s:s + batch]
            xb = norm(torch_seed.augment(xtr[idx], g))
            out.append({
                "epoch": epoch,
                "indices": idx.tolist(),
                "image_sums": [seq_sum(img.flatten().tolist()) for img in xb],
                "image_weighted_sums": [seq_sum(img.flatten().tolist(), True) for img in xb],
            })
    return out


def init_and_masks(seed, reduction):
    torch.manual_seed(seed)
    model = torch_seed.SeedCNN(reduction)
    params = {}
    for k, v in model.named_parameters():
        vals = v.detach().flatten().tolist()
        params[k] = {"first": vals[:4], "sum": seq_sum(vals), "weighted_sum": seq_sum(vals, True)}
    # the next random numbers of the global generator are the dropout masks of the first steps
    masks = []
    for rows in [64, 64, 16]:
        m = F.dropout(torch.ones(rows, 512), 0.5, training=True)
        kept = (m > 0).flatten().nonzero().flatten().tolist()
        masks.append({"rows": rows, "kept": len(kept), "kept_index_sum": sum(kept),
                      "first_kept": kept[:8]})
    return {"seed": seed, "reduction": reduction, "params": params, "dropout_masks": masks}


def reference_training(seed, reduction, epochs=3):
    """`torch_seed.py train` itself (1 thread) on the synthetic set written in CIFAR-10's binary
    layout: 100 training images in data_batch_1..5.bin, 50 test images (the set's images 0..49
    again) in test_batch.bin; returns its per-epoch records."""
    import argparse
    import contextlib
    import io
    import tempfile
    x, y = synthetic_set(100)
    rows = torch.cat([y.to(torch.uint8).view(-1, 1), x.view(100, -1)], dim=1).numpy()
    with tempfile.TemporaryDirectory() as d:
        for i in range(5):
            rows[20 * i:20 * (i + 1)].tofile(os.path.join(d, f"data_batch_{i + 1}.bin"))
        rows[:50].tofile(os.path.join(d, "test_batch.bin"))
        args = argparse.Namespace(data=d, epochs=epochs, batch=64, reduction=reduction, seed=seed,
                                  train_limit=0, test_limit=0, threads=1)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            torch_seed.train(args)
    records = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    for r in records:
        r.pop("epoch_s")
    return {"seed": seed, "reduction": reduction, "epochs": records}


def main():
    data = {"torch": torch.__version__, "primitives": primitives(),
            "batches": {"seed": 3, "n": 100, "batch": 64, "epochs": 2, "list": batches(3)}}
    model = {"torch": torch.__version__,
             "runs": [init_and_masks(0, 0), init_and_masks(1, 16)],
             "training": [reference_training(3, 0), reference_training(4, 16)]}
    for path, obj in [("crates/data/tests/data/torch_streams.json", data),
                      ("crates/model/tests/data/torch_init.json", model)]:
        path = os.path.join(ROOT, path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(obj, f, indent=1)
            f.write("\n")
        print(path)


if __name__ == "__main__":
    main()
