"""PyTorch's image pipeline on a folder, for keel's `bench_folder --decode`: ImageFolder, PIL
decoding, Resize((224, 224)) (bilinear, as keel resizes a folder's images), ToTensor and the
ImageNet Normalize, batches of 32 from a DataLoader with 2 worker processes. Prints images per
second, timed from the first batch requested to the last received.

    pip install torch torchvision pillow
    python3 tools/bench_decode_pytorch.py DIR [--workers 2]
"""

import argparse
import time

import torch
from torchvision import datasets, transforms


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    transform = transforms.Compose(
        [
            transforms.Resize((224, 224)),
            transforms.ToTensor(),
            transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    data = datasets.ImageFolder(args.dir, transform=transform)
    loader = torch.utils.data.DataLoader(
        data, batch_size=32, shuffle=False, num_workers=args.workers
    )
    start = time.perf_counter()
    read = 0
    for images, _ in loader:
        read += images.shape[0]
    seconds = time.perf_counter() - start
    print(
        f"pytorch: {read} images in {seconds:.2f}s: {read / seconds:.0f} images/s "
        f"({args.workers} workers)"
    )


if __name__ == "__main__":
    main()
