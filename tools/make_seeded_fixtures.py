#!/usr/bin/env python3
"""Reference logits of torchvision architectures on seeded weights that keel's tests rebuild.

    pip install torch torchvision safetensors
    python3 tools/make_seeded_fixtures.py

A full-size network's weights would make a large fixture, so none is committed: every tensor of
the state dict is drawn from a generator both sides implement (tests/layers/seeded.rs), seeded by
the tensor's name, and only PyTorch's logits are kept. For a tensor named NAME with n elements:

    seed = FNV-1a 64 of NAME's UTF-8 bytes
    z_i  = SplitMix64's output for the state seed + i · 0x9E3779B97F4A7C15 (i = 1 … n)
    v_i  = (z_i >> 40) / 2^24 · 2 − 1          (exactly, in f32)

scaled by what the tensor is (f32 arithmetic): kernels (rank ≥ 2) × f32(1 / sqrt(fan_in)),
fan_in being every axis but the first in PyTorch's layout and every axis but the last in
Keras'; `*.weight` of rank 1 (batch-norm γ) and `running_var` (Keras: `*/gamma`,
`*/moving_variance`) 1 + 0.25 v; every other tensor (biases, β, means) 0.1 v;
`num_batches_tracked` is left alone. The input `input`
([2, 3, 64, 64], NCHW) is v unscaled. PyTorch computes the logits in f64 (eval mode).
Writes tests/fixtures/seeded_logits.safetensors: `ARCH` → logits [2, 1000], f32.
"""
import os

import numpy as np
import torch
import torchvision
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
ARCHS = {
    "resnet18": torchvision.models.resnet18,
    "resnet50": torchvision.models.resnet50,
    "efficientnet_b0": torchvision.models.efficientnet_b0,
    "mobilenet_v3_large": torchvision.models.mobilenet_v3_large,
    "mobilenet_v3_small": torchvision.models.mobilenet_v3_small,
    "convnext_tiny": torchvision.models.convnext_tiny,
}
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def fnv1a(name):
    h = 0xCBF29CE484222325
    for b in name.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return np.uint64(h)


def uniform(name, n):
    with np.errstate(over="ignore"):
        z = fnv1a(name) + np.arange(1, n + 1, dtype=np.uint64) * GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24) * np.float32(2) - np.float32(1)


def seeded(name, shape, keras=False):
    v = uniform(name, int(np.prod(shape)))
    if len(shape) >= 2:
        fan_in = int(np.prod(shape[:-1] if keras else shape[1:]))
        v = v * np.float32(1.0 / np.sqrt(fan_in))
    elif name.endswith((".weight", "running_var", "/gamma", "/moving_variance", "/variance")):
        v = np.float32(1) + np.float32(0.25) * v
    else:
        v = np.float32(0.1) * v
    return torch.from_numpy(v.reshape(shape))


def main():
    x = torch.from_numpy(uniform("input", 2 * 3 * 64 * 64).reshape(2, 3, 64, 64)).double()
    out = {}
    for arch, build in ARCHS.items():
        model = build()
        state = {k: (v if k.endswith("num_batches_tracked") else seeded(k, tuple(v.shape)))
                 for k, v in model.state_dict().items()}
        model.load_state_dict(state)
        model.double().eval()
        with torch.no_grad():
            out[arch] = model(x).float()
        print(arch, out[arch][0, :3].tolist())
    save_file(out, os.path.join(ROOT, "tests", "fixtures", "seeded_logits.safetensors"))


if __name__ == "__main__":
    main()
