#!/usr/bin/env python3
"""The layers of `cargo run --release --example bench` (or, with --train, the training steps of
`--example bench_train`) timed in PyTorch on the same machine.

Gives PyTorch its best CPU setting (channels_last, all cores) and prints one JSON object with
the same keys as the example's --json output. For the fastest figures run it as
    GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184 \
        python3 tools/bench_pytorch.py [--train]
"""
import json
import statistics
import sys
import time

import torch


def median_secs(fn, reps):
    for _ in range(2):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    torch.manual_seed(0)
    reps = 15
    with torch.no_grad():
        a = torch.rand(1024, 1024) - 0.5
        b = torch.rand(1024, 1024) - 0.5
        t = median_secs(lambda: a @ b, reps)
        matmul = 2 * 1024**3 / t / 1e9

        x = (torch.rand(8, 256, 56, 56) - 0.5).to(memory_format=torch.channels_last)
        conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
        t_conv = median_secs(lambda: conv(x), reps)
        flops = 2 * 8 * 56 * 56 * 256 * 3 * 3 * 256

        xd = (torch.rand(8, 32, 112, 112) - 0.5).to(memory_format=torch.channels_last)
        dw = torch.nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False).to(memory_format=torch.channels_last)
        t_dw = median_secs(lambda: dw(xd), reps)
        nbytes = (2 * 8 * 112 * 112 * 32 + 9 * 32) * 4

    print(json.dumps({
        "device": f"pytorch {torch.__version__} cpu ({torch.get_num_threads()} threads)",
        "matmul_1024_gflops": matmul,
        "vgg_block3_conv_gflops": flops / t_conv / 1e9,
        "vgg_block3_conv_ms": t_conv * 1e3,
        "depthwise_gbps": nbytes / t_dw / 1e9,
        "depthwise_ms": t_dw * 1e3,
    }))


def sgd_step(loss, params, lr):
    loss.backward()
    with torch.no_grad():
        for p in params:
            p -= lr * p.grad
            p.grad = None


def train():
    torch.manual_seed(0)
    reps = 11
    x = (torch.rand(8, 64, 56, 56) - 0.5).to(memory_format=torch.channels_last)
    c1 = torch.nn.Conv2d(64, 64, 3, padding=1).to(memory_format=torch.channels_last)
    c2 = torch.nn.Conv2d(64, 64, 3, padding=1).to(memory_format=torch.channels_last)
    params = list(c1.parameters()) + list(c2.parameters())

    def vgg_step():
        y = torch.relu(c2(torch.relu(c1(x))))
        sgd_step((y * y).mean(), params, 0.01)

    t_vgg = median_secs(vgg_step, reps)

    features = torch.rand(32, 7, 7, 512) - 0.5  # NHWC, flattened as keel does
    labels = torch.arange(32) % 3
    d1 = torch.nn.Linear(7 * 7 * 512, 256)
    d2 = torch.nn.Linear(256, 3)
    head = list(d1.parameters()) + list(d2.parameters())

    def head_step():
        logits = d2(torch.relu(d1(features.flatten(1))))
        sgd_step(torch.nn.functional.cross_entropy(logits, labels), head, 0.01)

    t_head = median_secs(head_step, reps)
    print(json.dumps({
        "device": f"pytorch {torch.__version__} cpu ({torch.get_num_threads()} threads)",
        "vgg_block_step_ms": t_vgg * 1e3,
        "dense_head_step_ms": t_head * 1e3,
    }))


if __name__ == "__main__":
    if "--train" in sys.argv[1:]:
        train()
    else:
        main()
