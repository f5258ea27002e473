#!/usr/bin/env python3
"""PyTorch reference for `cargo run --release --example transfer` (default run).

Same frozen weights (assets/mobilenet_v2_imagenet_f16.safetensors widened to f32), same data
(assets/fashion-mnist-small: grey → RGB, bilinear resize to 96×96, torchvision normalisation),
same validation split (keel's SplitMix64 shuffle with the same seed), same heads (GAP or
Flatten → Dense(10), Glorot-uniform kernel, zero bias as in Keras), same optimizer (Adam,
lr 1e-3, β 0.9/0.999, ε 1e-7), batch 32, 10 epochs, on cached backbone features.

    pip install torch torchvision safetensors pillow
    python3 tools/transfer_pytorch.py [--seeds 42,43,44]

Prints one JSON line per head and seed, and the mean test accuracy per head.
"""
import argparse
import gzip
import json
import os
import statistics
import struct
import time

import torch
import torchvision
from PIL import Image
from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "assets", "fashion-mnist-small")
WEIGHTS = os.path.join(ROOT, "assets", "mobilenet_v2_imagenet_f16.safetensors")
MASK = (1 << 64) - 1


class SplitMix64:
    """keel_data::Rng, bit for bit."""

    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def shuffle(self, items):
        for i in range(len(items) - 1, 0, -1):
            j = self.next() % (i + 1)
            items[i], items[j] = items[j], items[i]


def read_idx(name):
    data = gzip.open(os.path.join(DATA, name + ".gz")).read()
    rank = data[3]
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return dims, data[4 + 4 * rank:]


def images(split, size):
    (n, h, w), pixels = read_idx(f"{split}-images-idx3-ubyte")
    _, labels = read_idx(f"{split}-labels-idx1-ubyte")
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    out = torch.empty(n, 3, size, size)
    for i in range(n):
        img = Image.frombytes("L", (w, h), pixels[i * h * w:(i + 1) * h * w]).convert("RGB")
        img = img.resize((size, size), Image.BILINEAR)
        out[i] = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(size, size, 3).permute(2, 0, 1)
    return ((out / 255.0 - mean) / std), torch.tensor(list(labels), dtype=torch.long)


def train_head(head, feats, labels, val, test, seed, epochs=10, batch=32):
    torch.manual_seed(seed)
    in_features = feats.shape[1] if head == "gap" else feats[0].numel()
    linear = torch.nn.Linear(in_features, 10)
    torch.nn.init.xavier_uniform_(linear.weight)
    torch.nn.init.zeros_(linear.bias)
    pool = (lambda f: f.mean(dim=(2, 3))) if head == "gap" else (lambda f: f.flatten(1))
    opt = torch.optim.Adam(linear.parameters(), lr=1e-3, eps=1e-7)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(labels))
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            loss = torch.nn.functional.cross_entropy(linear(pool(feats[idx])), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        acc = lambda f, l: (linear(pool(f)).argmax(1) == l).float().mean().item()
        return acc(*val), acc(*test), seconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="42")
    parser.add_argument("--size", type=int, default=96)
    args = parser.parse_args()
    model = torchvision.models.mobilenet_v2()
    state = {k: v.float() for k, v in load_file(WEIGHTS).items()}
    model.load_state_dict(state, strict=False)
    model.eval()
    start = time.perf_counter()
    x, y = images("train", args.size)
    xt, yt = images("t10k", args.size)
    with torch.no_grad():
        feats = torch.cat([model.features(x[i:i + 64]) for i in range(0, len(x), 64)])
        test_feats = torch.cat([model.features(xt[i:i + 64]) for i in range(0, len(xt), 64)])
    cache_seconds = time.perf_counter() - start
    results = {"gap": [], "flatten": []}
    for seed in [int(s) for s in args.seeds.split(",")]:
        order = list(range(len(y)))
        SplitMix64(seed).shuffle(order)
        n_val = round(len(y) * 0.1)
        val_idx, train_idx = torch.tensor(order[:n_val]), torch.tensor(order[n_val:])
        for head in results:
            val_acc, test_acc, seconds = train_head(head, feats[train_idx], y[train_idx], (feats[val_idx], y[val_idx]), (test_feats, yt), seed)
            results[head].append(test_acc)
            print(json.dumps({"framework": f"pytorch {torch.__version__}", "head": head, "seed": seed, "val_accuracy": val_acc,
                              "test_accuracy": test_acc, "head_train_seconds": seconds, "features_seconds": cache_seconds}))
    for head, accs in results.items():
        print(f"{head}: mean test accuracy {statistics.mean(accs):.4f} over {len(accs)} seeds")


if __name__ == "__main__":
    main()
