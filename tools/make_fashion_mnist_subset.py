#!/usr/bin/env python3
"""Writes the compact Fashion-MNIST subset that `cargo run --example transfer` uses by default:
the first 3,000 training and the first 1,000 test images (and labels) of Debian's
`dataset-fashion-mnist` package (MIT, Zalando), as gzip'd idx files in assets/fashion-mnist-small/.

    apt-get install -y dataset-fashion-mnist
    python3 tools/make_fashion_mnist_subset.py
"""
import gzip
import os
import struct

SOURCE = "/usr/share/datasets/fashion-mnist"
DEST = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "fashion-mnist-small")


def subset(name, count):
    with gzip.open(os.path.join(SOURCE, name + ".gz"), "rb") as f:
        data = f.read()
    rank = data[3]
    dims = list(struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank]))
    per_item = 1
    for d in dims[1:]:
        per_item *= d
    dims[0] = count
    header = data[:4] + struct.pack(">" + "I" * rank, *dims)
    body = data[4 + 4 * rank:4 + 4 * rank + count * per_item]
    # mtime=0 keeps the output byte-identical across runs.
    with open(os.path.join(DEST, name + ".gz"), "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9) as f:
            f.write(header + body)


os.makedirs(DEST, exist_ok=True)
for split, count in [("train", 3000), ("t10k", 1000)]:
    subset(f"{split}-images-idx3-ubyte", count)
    subset(f"{split}-labels-idx1-ubyte", count)
