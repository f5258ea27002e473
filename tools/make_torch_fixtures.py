#!/usr/bin/env python3
"""Writes the PyTorch `.pth` fixtures of keel's `.pth` reader (tests/layers/weights_files.rs).

    pip install torch safetensors
    python3 tools/make_torch_fixtures.py

A small model (Conv2d 3→4 3×3 padding 1 with bias, BatchNorm2d eps 1e-3, ReLU, NCHW flatten,
Linear 144→5) with seeded random weights and batch-norm statistics, saved by `torch.save`:
- tests/fixtures/torch_small_zip.pth: its state dict in the zip format (PyTorch ≥ 1.6), with
  extra tensors that exercise the reader: f16, bf16 and f64 tensors, a transposed
  (non-contiguous) view, a slice that starts inside a shared storage, a 0-d tensor and an
  nn.Parameter.
- tests/fixtures/torch_small_legacy.pth: the same in the legacy format.
- tests/fixtures/torch_small_wrapped.pth: {"state_dict": <state dict>, "epoch": 3}, zip format.
- tests/fixtures/torch_evil.pth: a pickle whose loading would call os.system; keel must refuse
  it without running anything.
- tests/fixtures/torch_small_io.safetensors: `input` (NHWC [2, 6, 6, 3]), `logits` ([2, 5])
  computed by PyTorch in f64, and `expected.NAME`: every floating-point tensor of the state dict
  as contiguous f32.
"""
import os

import torch
from safetensors.torch import save_file

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")


class Small(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4, eps=1e-3)
        self.fc = torch.nn.Linear(4 * 6 * 6, 5)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.bn(self.conv(x))), 1))


class Evil:
    def __reduce__(self):
        return (os.system, ("echo this should never run",))


def main():
    torch.manual_seed(0)
    model = Small()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 1.5)
        model.bn.weight.uniform_(0.5, 1.5)
        model.bn.bias.uniform_(-0.5, 0.5)
    model.eval()

    state = model.state_dict()
    base = torch.randn(4, 6)
    extras = {
        "extra.half": torch.randn(3, 2).half(),
        "extra.bfloat": torch.randn(5).bfloat16(),
        "extra.double": torch.randn(2, 3, dtype=torch.float64),
        "extra.transposed": base.t(),  # strides (1, 6): not contiguous
        "extra.slice": base[1:3, 2:5],  # offset 8 into base's storage, strides (6, 1)
        "extra.scalar": torch.tensor(2.5),
        "extra.parameter": torch.nn.Parameter(torch.randn(2, 2)),
    }
    full = dict(state)
    full.update(extras)

    torch.save(full, os.path.join(FIXTURES, "torch_small_zip.pth"))
    torch.save(full, os.path.join(FIXTURES, "torch_small_legacy.pth"),
               _use_new_zipfile_serialization=False)
    torch.save({"state_dict": state, "epoch": 3}, os.path.join(FIXTURES, "torch_small_wrapped.pth"))
    torch.save(Evil(), os.path.join(FIXTURES, "torch_evil.pth"), _use_new_zipfile_serialization=False)

    x = torch.rand(2, 3, 6, 6, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        logits = model.double()(x)
    io = {
        "input": x.permute(0, 2, 3, 1).float().contiguous(),
        "logits": logits.float(),
    }
    for name, t in full.items():
        if t.is_floating_point():
            io["expected." + name] = t.detach().float().contiguous()
    save_file(io, os.path.join(FIXTURES, "torch_small_io.safetensors"))


if __name__ == "__main__":
    main()
