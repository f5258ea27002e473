#!/usr/bin/env python3
"""Writes tests/fixtures/pillow_resize.bin: random RGB images with Pillow's bilinear resizes of
them, and with torchvision's evaluation transform (Resize + CenterCrop), for keel's resize
tests (keel_data::resize and load_image match them bit for bit).

    pip install pillow torchvision
    python3 tools/make_resize_fixture.py

Format: u32 count, then per case u32 kind (0: Image.resize to out_w×out_h; 1: Resize to
round(out_w·256/224) on the short side, then CenterCrop(out_w)), in_w, in_h, out_w, out_h, the
input's in_h·in_w·3 bytes and the output's out_h·out_w·3 bytes (RGB, row-major).
"""
import os
import random
import struct

from PIL import Image
from torchvision import transforms

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Growing and shrinking each axis (Pillow takes the columns first when the width grows and the
# height shrinks), one axis only, a 1×1 image, and the main job's 28 → 96.
CASES = [((5, 7), (13, 3)), ((28, 28), (96, 96)), ((40, 30), (17, 11)), ((1, 1), (3, 2)),
         ((64, 48), (64, 20)), ((9, 13), (4, 13)), ((30, 31), (7, 61)), ((7, 5), (3, 13))]
# Evaluation transforms: landscape with a crop offset of 2.5 (rounded to even), and portrait.
CROPS = [((45, 38), 16), ((20, 33), 8)]


def main():
    rng = random.Random(7)
    out = [struct.pack("<I", len(CASES) + len(CROPS))]
    for (w, h), (ow, oh) in CASES:
        pixels = bytes(rng.randrange(256) for _ in range(w * h * 3))
        resized = Image.frombytes("RGB", (w, h), pixels).resize((ow, oh), Image.BILINEAR)
        out += [struct.pack("<5I", 0, w, h, ow, oh), pixels, resized.tobytes()]
    for (w, h), size in CROPS:
        pixels = bytes(rng.randrange(256) for _ in range(w * h * 3))
        evaluate = transforms.Compose([transforms.Resize(round(size * 256 / 224)), transforms.CenterCrop(size)])
        crop = evaluate(Image.frombytes("RGB", (w, h), pixels))
        out += [struct.pack("<5I", 1, w, h, size, size), pixels, crop.tobytes()]
    path = os.path.join(ROOT, "tests", "fixtures", "pillow_resize.bin")
    with open(path + ".tmp", "wb") as f:
        f.write(b"".join(out))
    os.replace(path + ".tmp", path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
