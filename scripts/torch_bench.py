#!/usr/bin/env python3
"""PyTorch's side of `ablate bench`: training and inference images/s of any model of the zoo,
eager PyTorch on the CPU or a GPU, measured as `ablate bench` measures ours and printed in the
same JSON form (one line per model and batch size), so the two can be put side by side
(scripts/bench-vs-torch.sh on the CPU, scripts/gpu-check.sh on a GPU).

The models are scripts/golden.py's PyTorch references (checked against ours by the golden
tests), with dropout 0.5 after fc1 in training mode as in our training step for the seed CNN;
a ResNet (`arch=resnet,depth=20`) has none. A training step:
zero_grad, forward, cross-entropy, backward, Adam (lr 1e-3); inference: an eval-mode forward
under no_grad. Random inputs; warm-up steps, then timed steps, the device synchronized before
the clock starts and stops.

  python scripts/torch_bench.py [--device cpu|cuda] [--batch 64,512] [--steps 30]
      [--warmup 5] [--threads N] [--model SPEC]...

SPEC as `ablate bench --model` takes it (`attention=se,reduction=16`); default: the seed CNN
(`baseline`) and SE r=16 (`se_r16`), named as `ablate bench` names them.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden import Net, ResNet, parse_spec  # noqa: E402

DEFAULT_MODELS = [("baseline", "attention=none"), ("se_r16", "attention=se,reduction=16")]


class TrainNet(Net):
    """golden.py's reference with dropout after fc1 in training mode (p from the spec)."""

    def forward(self, x):
        for i in range(1, 4):
            x = self.attend(i, getattr(self, f"conv{i}")(x), "post_conv")
            x = self.attend(i, getattr(self, f"bn{i}")(x), "post_bn")
            x = self.attend(i, F.relu(x), "post_relu")
            x = self.attend(i, F.max_pool2d(x, 2), "post_pool")
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.dropout(x, float(self.spec["dropout"]), self.training)
        return self.fc2(x)


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def measure(spec_text, dev, batch, steps, warmup):
    torch.manual_seed(0)
    spec = parse_spec(spec_text)
    model = (ResNet(spec) if spec["arch"] == "resnet" else TrainNet(spec)).to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(batch, 3, 32, 32, device=dev) * 2 - 1
    y = torch.randint(0, 10, (batch,), device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(warmup):
        step()
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(dev)
    train = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        sync(dev)
        t1 = time.perf_counter()
        for _ in range(steps):
            model(x)
        sync(dev)
        infer = time.perf_counter() - t1
    params = sum(p.numel() for p in model.parameters())
    return params, batch * steps / train, batch * steps / infer


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", default="64")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--model", action="append", default=[])
    a = ap.parse_args()
    torch.set_num_threads(a.threads or os.cpu_count())
    dev = torch.device(a.device)
    models = [(m, m) for m in a.model] or DEFAULT_MODELS
    for name, spec in models:
        for batch in [int(b) for b in a.batch.split(",")]:
            params, tr, inf = measure(spec, dev, batch, a.steps, a.warmup)
            print(json.dumps({"model": name, "params": params, "batch": batch,
                              "train_img_s": tr, "infer_img_s": inf, "device": a.device,
                              "torch": torch.__version__, "threads": torch.get_num_threads()}),
                  flush=True)


if __name__ == "__main__":
    main()
