#!/usr/bin/env python3
"""The layers of `cargo run --release --example bench` timed in PyTorch on the same machine.

Gives PyTorch its best CPU setting (channels_last, all cores) and prints one JSON object with
the same keys as the bench's --json output. For the fastest figures run it as
    GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184 \
        python3 tools/bench_pytorch.py
"""
import json
import statistics
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


if __name__ == "__main__":
    main()
