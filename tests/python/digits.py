#!/usr/bin/env python3
"""A small ResNet trained on real data: scikit-learn's handwritten digits (1,797 8x8 images of
0-9, scanned from 43 people; `sklearn.datasets.load_digits`), upsampled to 16x16.

Reproducible: a seeded stratified split (1,437 training images, 360 held out), seeded weights
and batch order, one CPU thread (so summation order, and the result, do not depend on the
machine's core count). Training takes about two minutes on one core.

    python3 tests/python/digits.py --out build/digits

writes into --out (and reuses them when this file has not changed since):
  digits.onnx      the trained network (opset 13, input "input" 1x1x16x16, output "logits")
  train.npz        inputs (1437x1x16x16 float32, normalized) and labels (int64)
  test.npz         the held-out 360, same form (for `qnnc eval --data test.npz`)
  calib.npy        the training inputs alone (for `qnnc compile --calib-data`)
  meta.json        PyTorch's fp32 top-1 on the held-out split, training settings, this file's hash
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import time

import numpy as np

SIZE = 16
SEED = 0
EPOCHS = 40


def load_split(seed: int = SEED):
    """(x_train, y_train, x_test, y_test): float32 N x 1 x 16 x 16 normalized with the training
    split's mean and standard deviation, int64 labels."""
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)  # N,1,8,8 in [0, 1]
    x = torch.nn.functional.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False).numpy()
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=360, random_state=seed, stratify=y)
    mean, std = float(xtr.mean()), float(xtr.std())
    norm = lambda a: ((a - mean) / std).astype(np.float32)  # noqa: E731
    return norm(xtr), ytr, norm(xte), yte


def make_net():
    """ResNet-style: a 3x3 stem, three stages of two basic blocks (32, 64, 128 channels; the
    second and third start with stride 2 and a 1x1 projection), global average pool, dense 10."""
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU()
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            idt = x if self.down is None else self.down(x)
            y = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(y)) + idt)

    class DigitsNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
            self.layers = nn.Sequential(Block(32, 32, 1), Block(32, 32, 1), Block(32, 64, 2), Block(64, 64, 1),
                                        Block(64, 128, 2), Block(128, 128, 1))
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(128, 10)

        def forward(self, x):
            x = self.pool(self.layers(self.stem(x)))
            return self.fc(x.flatten(1))

    return DigitsNet()


def train(xtr, ytr, seed: int = SEED, epochs: int = EPOCHS, log=print):
    """Adam with cosine decay, batch 64, random shifts of up to 2 pixels; one thread."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = make_net()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = epochs * ((len(xtr) + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    x_all, y_all = torch.from_numpy(xtr), torch.from_numpy(ytr)
    lo = float(xtr.min())
    for epoch in range(epochs):
        net.train()
        order = rng.permutation(len(xtr))
        total = 0.0
        for i in range(0, len(order), 64):
            idx = order[i:i + 64]
            xb = x_all[idx]
            # Random shift by up to 2 pixels (padding with the background value).
            dx, dy = rng.integers(-2, 3, size=2)
            xb = torch.roll(torch.nn.functional.pad(xb, (2, 2, 2, 2), value=lo), shifts=(int(dy), int(dx)),
                            dims=(2, 3))[:, :, 2:-2, 2:-2]
            loss = torch.nn.functional.cross_entropy(net(xb), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
        if log and (epoch % 10 == 9 or epoch == epochs - 1):
            log(f"digits: epoch {epoch + 1}/{epochs}  loss {total / len(xtr):.4f}")
    net.eval()
    return net


def top1(net, x, y) -> float:
    import torch
    with torch.no_grad():
        return float((net(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def source_hash() -> str:
    with open(__file__, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def prepare(out: str, log=print) -> dict:
    """Trains and exports into `out` unless it already holds this file's result; returns meta."""
    os.makedirs(out, exist_ok=True)
    meta_path = os.path.join(out, "meta.json")
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        if meta.get("source_hash") == source_hash() and all(
                os.path.exists(os.path.join(out, n)) for n in ("digits.onnx", "train.npz", "test.npz", "calib.npy")):
            log(f"digits: using the trained network in {out} (PyTorch fp32 top-1 {100 * meta['torch_fp32_top1']:.2f}%)")
            return meta
    import torch

    xtr, ytr, xte, yte = load_split()
    t0 = time.time()
    net = train(xtr, ytr, log=log)
    seconds = time.time() - t0
    np.savez(os.path.join(out, "train.npz"), inputs=xtr, labels=ytr)
    np.savez(os.path.join(out, "test.npz"), inputs=xte, labels=yte)
    np.save(os.path.join(out, "calib.npy"), xtr)
    torch.save(net.state_dict(), os.path.join(out, "digits.pt"))
    with torch.no_grad():
        torch.onnx.export(net, torch.zeros(1, 1, SIZE, SIZE), os.path.join(out, "digits.onnx"), opset_version=13,
                          input_names=["input"], output_names=["logits"], do_constant_folding=True)
    meta = {"source_hash": source_hash(), "torch_fp32_top1": top1(net, xte, yte), "train_top1": top1(net, xtr, ytr),
            "train_seconds": seconds, "epochs": EPOCHS, "seed": SEED, "size": SIZE, "train": len(xtr),
            "test": len(xte), "torch": torch.__version__}
    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=1)
    log(f"digits: trained in {seconds:.0f} s; PyTorch fp32 top-1 {100 * meta['torch_fp32_top1']:.2f}% on the "
        f"{len(xte)} held-out images (train {100 * meta['train_top1']:.2f}%)")
    return meta


def load_net(out: str):
    """The trained PyTorch network saved by prepare()."""
    import torch
    net = make_net()
    net.load_state_dict(torch.load(os.path.join(out, "digits.pt")))
    return net.eval()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    prepare(args.out)
