#!/usr/bin/env python3
"""PyTorch reference for `cargo run --release --example transfer` (default run).

Same frozen weights (assets/mobilenet_v2_imagenet_f16.safetensors widened to f32), same data
(assets/fashion-mnist-small: grey → RGB, bilinear resize to 96×96, torchvision normalisation),
same validation split (keel's SplitMix64 shuffle with the same seed), same heads (GAP or
Flatten → Dense(10), Glorot-uniform kernel, zero bias as in Keras), same optimizer (Adam,
lr 1e-3, β 0.9/0.999, ε 1e-7), batch 32, 10 epochs, on cached backbone features.

By default the head starts from the very kernel keel draws for the same seed and sees the
batches in keel's order (keel's generators are reimplemented below), so a seed is a paired
comparison: what still differs is the image resize (PIL here, the `image` crate in keel) and
floating-point rounding. `--torch-rng` draws both from PyTorch's generator instead.

    pip install torch torchvision safetensors pillow
    python3 tools/transfer_pytorch.py [--seeds 42,43,44] [--torch-rng]
        [--backbone efficientnet_lite0 --weights target/checkpoints/efficientnet-lite0-57934424.pth]

`--backbone efficientnet_lite0` runs the same job over EfficientNet-Lite0 (its network in
efficientnet_lite0_reference.py, inputs scaled to [-1, 1]) with the given checkpoint.

Prints one JSON line per head and seed, and the mean test accuracy per head.
"""
import argparse
import gzip
import json
import os
import statistics
import struct
import time

import numpy as np
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


def keel_dense_kernel(seed, in_features, units, layer_index=2):
    """The Glorot-uniform kernel keel's `with_head(.., seed)` gives its Dense layer
    (keel_layers::init, [in_features, units]); the layer's seed comes from its index in the
    model (0 is the backbone, 1 the Flatten or GAP layer)."""
    layer_seed = (seed * 0x100000001B3 + layer_index + 1) & MASK
    rng = SplitMix64(layer_seed ^ 0x005EED0F4EE1)
    limit = np.sqrt(np.float32(6.0) / np.float32(in_features + units), dtype=np.float32)
    bits = np.array([rng.next() >> 40 for _ in range(in_features * units)], dtype=np.float32)
    unit = bits / np.float32(1 << 24) * np.float32(2.0) - np.float32(1.0)
    return torch.from_numpy((unit * limit).astype(np.float32).reshape(in_features, units))


def keel_epoch_orders(seed, n, epochs):
    """The sample order of each epoch in keel's `fit` (one SplitMix64 stream over all epochs)."""
    rng = SplitMix64(seed)
    orders = []
    for _ in range(epochs):
        order = list(range(n))
        rng.shuffle(order)
        orders.append(torch.tensor(order))
    return orders


def read_idx(name):
    data = gzip.open(os.path.join(DATA, name + ".gz")).read()
    rank = data[3]
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return dims, data[4 + 4 * rank:]


def images(split, size, mean, std):
    (n, h, w), pixels = read_idx(f"{split}-images-idx3-ubyte")
    _, labels = read_idx(f"{split}-labels-idx1-ubyte")
    mean = torch.tensor(mean).view(1, 3, 1, 1)
    std = torch.tensor(std).view(1, 3, 1, 1)
    out = torch.empty(n, 3, size, size)
    for i in range(n):
        img = Image.frombytes("L", (w, h), pixels[i * h * w:(i + 1) * h * w]).convert("RGB")
        img = img.resize((size, size), Image.BILINEAR)
        out[i] = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(size, size, 3).permute(2, 0, 1)
    return ((out / 255.0 - mean) / std), torch.tensor(list(labels), dtype=torch.long)


def train_head(head, feats, labels, val, test, seed, torch_rng, epochs=10, batch=32):
    torch.manual_seed(seed)
    in_features = feats.shape[1] if head == "gap" else feats[0].numel()
    linear = torch.nn.Linear(in_features, 10)
    if torch_rng:
        torch.nn.init.xavier_uniform_(linear.weight)
        orders = [torch.randperm(len(labels)) for _ in range(epochs)]
    else:
        with torch.no_grad():
            linear.weight.copy_(keel_dense_kernel(seed, in_features, 10).T)
        orders = keel_epoch_orders(seed, len(labels), epochs)
    torch.nn.init.zeros_(linear.bias)
    # keel flattens NHWC feature maps: channels vary fastest.
    pool = (lambda f: f.mean(dim=(2, 3))) if head == "gap" else (lambda f: f.permute(0, 2, 3, 1).flatten(1))
    opt = torch.optim.Adam(linear.parameters(), lr=1e-3, eps=1e-7)
    start = time.perf_counter()
    losses = []
    for order in orders:
        total = 0.0
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            loss = torch.nn.functional.cross_entropy(linear(pool(feats[idx])), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(round(total / len(order), 4))
    seconds = time.perf_counter() - start
    with torch.no_grad():
        acc = lambda f, l: (linear(pool(f)).argmax(1) == l).float().mean().item()
        return acc(*val), acc(*test), seconds, losses


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="42")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--torch-rng", action="store_true", help="initial kernel and batch order from PyTorch's generator")
    parser.add_argument("--backbone", default="mobilenet_v2", choices=["mobilenet_v2", "efficientnet_lite0"])
    parser.add_argument("--weights", help="the backbone's checkpoint (efficientnet_lite0)")
    args = parser.parse_args()
    if args.backbone == "mobilenet_v2":
        model = torchvision.models.mobilenet_v2()
        state = {k: v.float() for k, v in load_file(WEIGHTS).items()}
        model.load_state_dict(state, strict=False)
        model.eval()
        backbone, mean, std = model.features, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    else:
        import efficientnet_lite0_reference as lite
        state = lite.load(args.weights)
        backbone, mean, std = (lambda x: lite.features(state, x)), lite.MEAN, lite.STD
    start = time.perf_counter()
    x, y = images("train", args.size, mean, std)
    xt, yt = images("t10k", args.size, mean, std)
    with torch.no_grad():
        feats = torch.cat([backbone(x[i:i + 64]) for i in range(0, len(x), 64)])
        test_feats = torch.cat([backbone(xt[i:i + 64]) for i in range(0, len(xt), 64)])
    cache_seconds = time.perf_counter() - start
    results = {"gap": [], "flatten": []}
    for seed in [int(s) for s in args.seeds.split(",")]:
        order = list(range(len(y)))
        SplitMix64(seed).shuffle(order)
        n_val = round(len(y) * 0.1)
        val_idx, train_idx = torch.tensor(order[:n_val]), torch.tensor(order[n_val:])
        for head in results:
            val_acc, test_acc, seconds, losses = train_head(head, feats[train_idx], y[train_idx], (feats[val_idx], y[val_idx]), (test_feats, yt), seed,
                                                 args.torch_rng)
            results[head].append(test_acc)
            print(json.dumps({"framework": f"pytorch {torch.__version__}", "backbone": args.backbone, "head": head, "seed": seed, "val_accuracy": val_acc,
                              "test_accuracy": test_acc, "head_train_seconds": seconds,
                              "epoch_losses": losses, "features_seconds": cache_seconds}))
    for head, accs in results.items():
        print(f"{head}: mean test accuracy {statistics.mean(accs):.4f} over {len(accs)} seeds")


if __name__ == "__main__":
    main()
