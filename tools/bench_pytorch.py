#!/usr/bin/env python3
"""The layers of `cargo run --release --example bench` (or, with --train, the training steps of
`--example bench_train`) timed in PyTorch on the same machine.

Gives PyTorch its best setting (channels_last; all cores on the CPU; on CUDA f32 with TF32 off,
as keel computes) and prints one JSON object with the same keys as the example's --json output.
`--layers` and `--backbones BATCH,SIZE` add what the example's flags of the same names add;
`--compile` runs the backbones through torch.compile (compiled before the timed runs).
For the fastest CPU figures run it as
    GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184 \
        python3 tools/bench_pytorch.py [--train] [--device cpu|cuda] [--layers] [--backbones 64,224]
"""
import argparse
import json
import statistics
import time

import torch

DEVICE = torch.device("cpu")


def synchronize():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def median_secs(fn, reps):
    for _ in range(2):
        fn()
    synchronize()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def describe():
    if DEVICE.type == "cuda":
        return f"pytorch {torch.__version__} cuda ({torch.cuda.get_device_name()}, TF32 off)"
    return f"pytorch {torch.__version__} cpu ({torch.get_num_threads()} threads)"


def rand(*shape, channels_last=False):
    x = torch.rand(*shape, device=DEVICE) - 0.5
    return x.to(memory_format=torch.channels_last) if channels_last else x


def conv(cin, cout, groups=1, bias=False, kernel=3, stride=1):
    layer = torch.nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups,
                            bias=bias)
    return layer.to(DEVICE, memory_format=torch.channels_last)


# The layers of `bench --layers`: (name, batch, height = width, input channels, output channels,
# kernel, stride, groups), `same` padding.
LAYERS = [
    ("VGG16 block1_conv2", 2, 224, 64, 64, 3, 1, 1),
    ("VGG16 block3_conv2", 8, 56, 256, 256, 3, 1, 1),
    ("VGG16 block4_conv2", 8, 28, 512, 512, 3, 1, 1),
    ("VGG16 block5_conv2", 8, 14, 512, 512, 3, 1, 1),
    ("small CNN conv2", 32, 13, 32, 64, 3, 1, 1),
    ("MobileNetV2 depthwise", 16, 112, 32, 32, 3, 1, 32),
    ("MobileNetV2 depthwise s2", 16, 112, 96, 96, 3, 2, 96),
    ("MobileNetV2 depthwise", 16, 56, 144, 144, 3, 1, 144),
    ("MobileNetV2 expand", 16, 112, 16, 96, 1, 1, 1),
    ("MobileNetV2 expand", 16, 56, 24, 144, 1, 1, 1),
    ("MobileNetV2 project", 16, 14, 576, 96, 1, 1, 1),
    ("MobileNetV2 expand", 16, 7, 160, 960, 1, 1, 1),
]


def layers(reps):
    rows = []
    for name, batch, size, c, o, k, stride, groups in LAYERS:
        x = rand(batch, c, size, size, channels_last=True).requires_grad_(True)
        layer = conv(c, o, groups=groups, kernel=k, stride=stride)
        y = layer(x)
        dy = torch.rand_like(y)
        forward = median_secs(lambda: layer(x), reps)
        input_grad = median_secs(
            lambda: torch.autograd.grad(layer(x), x, dy)[0], reps) - forward
        kernel_grad = median_secs(
            lambda: torch.autograd.grad(layer(x), layer.weight, dy)[0], reps) - forward
        shape = f"b={batch}, {size}²×{c}→{o}" + (", stride 2" if stride > 1 else "")
        rows.append({
            "layer": f"{name} {k}×{k} ({shape})",
            "forward_ms": forward * 1e3,
            "input_grad_ms": input_grad * 1e3,
            "kernel_grad_ms": kernel_grad * 1e3,
        })
    return rows


def mobilenet_v1():
    """Keras' MobileNet (alpha 1) without top: torchvision has none."""
    def conv_bn(cin, cout, stride, groups=1, kernel=3):
        return [torch.nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                torch.nn.BatchNorm2d(cout, eps=1e-3), torch.nn.ReLU6()]
    layers = conv_bn(3, 32, 2)
    widths = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1),
              (256, 512, 2)] + [(512, 512, 1)] * 5 + [(512, 1024, 2), (1024, 1024, 1)]
    for cin, cout, stride in widths:
        layers += conv_bn(cin, cin, stride, groups=cin) + conv_bn(cin, cout, 1, kernel=1)
    return torch.nn.Sequential(*layers)


def backbones(batch, size, reps, compile_models=False):
    """Forward passes of whole backbones (inference), and a full MobileNetV2 training step with
    a GAP head on twice the batch, with the names `bench --backbones` gives them."""
    import torchvision
    x = rand(batch, 3, size, size, channels_last=True)
    rows = []
    for name, make in [("VGG16", lambda: torchvision.models.vgg16().features),
                       ("MobileNet", mobilenet_v1),
                       ("MobileNetV2", lambda: torchvision.models.mobilenet_v2().features),
                       ("EfficientNet-B0", lambda: torchvision.models.efficientnet_b0().features)]:
        model = make().to(DEVICE, memory_format=torch.channels_last).eval()
        if compile_models:
            model = torch.compile(model)
        with torch.inference_mode():
            t = median_secs(lambda: model(x), reps)
        rows.append({"name": f"{name} forward (b={batch}, {size}²)", "ms": t * 1e3})
    n = 2 * batch
    model = torch.nn.Sequential(torchvision.models.mobilenet_v2().features,
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(1280, 10))
    model = model.to(DEVICE, memory_format=torch.channels_last).train()
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    if compile_models:
        model = torch.compile(model)
    xs = rand(n, 3, size, size, channels_last=True)
    labels = torch.arange(n, device=DEVICE) % 10

    def step():
        adam.zero_grad()
        torch.nn.functional.cross_entropy(model(xs), labels).backward()
        adam.step()

    t = median_secs(step, reps)
    rows.append({"name": f"MobileNetV2 + GAP + Dense(10) training step (b={n}, {size}², Adam)",
                 "ms": t * 1e3})
    return rows


def main(args):
    torch.manual_seed(0)
    reps = 15
    with torch.no_grad():
        a = rand(1024, 1024)
        b = rand(1024, 1024)
        t = median_secs(lambda: a @ b, reps)
        matmul = 2 * 1024**3 / t / 1e9

        x = rand(8, 256, 56, 56, channels_last=True)
        layer = conv(256, 256)
        t_conv = median_secs(lambda: layer(x), reps)
        flops = 2 * 8 * 56 * 56 * 256 * 3 * 3 * 256

        xd = rand(8, 32, 112, 112, channels_last=True)
        dw = conv(32, 32, groups=32)
        t_dw = median_secs(lambda: dw(xd), reps)
        nbytes = (2 * 8 * 112 * 112 * 32 + 9 * 32) * 4

    out = {
        "device": describe(),
        "matmul_1024_gflops": matmul,
        "vgg_block3_conv_gflops": flops / t_conv / 1e9,
        "vgg_block3_conv_ms": t_conv * 1e3,
        "depthwise_gbps": nbytes / t_dw / 1e9,
        "depthwise_ms": t_dw * 1e3,
    }
    if args.layers:
        out["layers"] = layers(5)
    if args.backbones:
        batch, size = args.backbones
        out["backbones"] = backbones(batch, size, 5, args.compile)
        if args.compile:
            out["device"] += ", torch.compile"
    print(json.dumps(out))


def sgd_step(loss, params, lr):
    loss.backward()
    with torch.no_grad():
        for p in params:
            p -= lr * p.grad
            p.grad = None


def train():
    torch.manual_seed(0)
    reps = 11
    x = rand(8, 64, 56, 56, channels_last=True)
    c1 = conv(64, 64, bias=True)
    c2 = conv(64, 64, bias=True)
    params = list(c1.parameters()) + list(c2.parameters())

    def vgg_step():
        y = torch.relu(c2(torch.relu(c1(x))))
        sgd_step((y * y).mean(), params, 0.01)

    t_vgg = median_secs(vgg_step, reps)

    features = rand(32, 7, 7, 512)  # NHWC, flattened as keel does
    labels = torch.arange(32, device=DEVICE) % 3
    d1 = torch.nn.Linear(7 * 7 * 512, 256).to(DEVICE)
    d2 = torch.nn.Linear(256, 3).to(DEVICE)
    head = list(d1.parameters()) + list(d2.parameters())

    def head_step():
        logits = d2(torch.relu(d1(features.flatten(1))))
        sgd_step(torch.nn.functional.cross_entropy(logits, labels), head, 0.01)

    t_head = median_secs(head_step, reps)
    print(json.dumps({
        "device": describe(),
        "vgg_block_step_ms": t_vgg * 1e3,
        "dense_head_step_ms": t_head * 1e3,
    }))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", action="store_true", help="time bench_train's steps")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--layers", action="store_true", help="also the convolution layers")
    parser.add_argument("--backbones", type=lambda v: [int(p) for p in v.split(",")],
                        help="BATCH,SIZE: also whole backbones' forward passes and a training step")
    parser.add_argument("--compile", action="store_true",
                        help="run the --backbones models through torch.compile")
    args = parser.parse_args()
    DEVICE = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if args.train:
        train()
    else:
        main(args)
