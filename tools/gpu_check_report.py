#!/usr/bin/env python3
"""Gathers what tools/gpu_check.sh measured in OUT into OUT/gpu_check.json and OUT/gpu_check.md:
the adapter, the test counts, and one row per measurement with keel's and PyTorch's
milliseconds (PyTorch's null where it did not run).

    python3 tools/gpu_check_report.py OUT PREDICT_MS TRANSFER_MS
"""
import json
import os
import re
import sys


def read_json(path):
    """The first JSON object of a file: the adapter's own kernels where bench measured two designs."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        lines = [l for l in f.read().splitlines() if l.startswith("{")]
    return json.loads(lines[0]) if lines else None


def matmul_ms(figures):
    return 2 * 1024**3 / figures["matmul_1024_gflops"] / 1e6


def rows(keel, torch, keel_train, torch_train):
    """(what, keel ms, torch ms or None) for every measurement both scripts make."""
    t = torch or {}
    out = [
        ("matmul 1024³", matmul_ms(keel), matmul_ms(t) if t else None),
        ("VGG16 block3_conv2 forward (b=8, 56²×256→256)", keel["vgg_block3_conv_ms"],
         t.get("vgg_block3_conv_ms")),
        ("depthwise 3×3 (b=8, 112²×32)", keel["depthwise_ms"], t.get("depthwise_ms")),
    ]
    torch_layers = {l["layer"]: l for l in t.get("layers", [])}
    for layer in keel.get("layers", []):
        other = torch_layers.get(layer["layer"], {})
        for key, what in [("forward_ms", "forward"), ("input_grad_ms", "input gradient"),
                          ("kernel_grad_ms", "kernel gradient")]:
            out.append((f"{layer['layer']} {what}", layer[key], other.get(key)))
    torch_backbones = {b["name"]: b for b in t.get("backbones", [])}
    for b in keel.get("backbones", []):
        out.append((b["name"], b["ms"], torch_backbones.get(b["name"], {}).get("ms")))
    tt = torch_train or {}
    if keel_train:
        out.append(("VGG block training step (2×conv 64ch, 56², b=8)",
                    keel_train["vgg_block_step_ms"], tt.get("vgg_block_step_ms")))
        out.append(("Dense head training step (7×7×512 → 256 → 3, b=32)",
                    keel_train["dense_head_step_ms"], tt.get("dense_head_step_ms")))
    return out


def driver(adapter):
    """The driver in keel's description of a wgpu device: `NAME (BACKEND, TYPE, DRIVER; … GEMM)`."""
    m = re.search(r"\((\w+), (\w+), (.*); \w+ GEMM\)$", adapter)
    return m.group(3) if m else ""


def tests(log_path):
    passed = failed = 0
    if os.path.exists(log_path):
        with open(log_path) as f:
            for m in re.finditer(r"^(\d+) passed, (\d+) failed", f.read(), re.M):
                passed += int(m.group(1))
                failed += int(m.group(2))
    return {"passed": passed, "failed": failed}


def main():
    out, predict_ms, transfer_ms = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    keel = read_json(os.path.join(out, "bench.json"))
    torch = read_json(os.path.join(out, "torch.json"))
    keel_train = read_json(os.path.join(out, "bench_train.json"))
    torch_train = read_json(os.path.join(out, "torch_train.json"))
    table = rows(keel, torch, keel_train, torch_train)
    table.append(("golden predict, whole process (wall)", predict_ms, None))
    table.append(("main job, whole process (wall)", transfer_ms, None))
    adapter = keel["device"]
    result = {
        "adapter": adapter,
        "driver": driver(adapter),
        "torch": torch["device"] if torch else None,
        "tests": tests(os.path.join(out, "tests.log")),
        "rows": [{"what": w, "keel_ms": k, "torch_ms": p} for w, k, p in table],
    }
    with open(os.path.join(out, "gpu_check.json"), "w") as f:
        json.dump(result, f, indent=2)
    lines = [
        f"adapter: {adapter}",
        f"PyTorch: {result['torch'] or 'not run (no CUDA)'}",
        f"tests: {result['tests']['passed']} passed, {result['tests']['failed']} failed",
        "",
        "| what | keel ms | PyTorch ms | keel / PyTorch |",
        "| --- | ---: | ---: | ---: |",
    ]
    for w, k, p in table:
        ratio = f"{k / p:.2f}" if p else "-"
        lines.append(f"| {w} | {k:.2f} | {p:.2f} | {ratio} |" if p else f"| {w} | {k:.2f} | - | - |")
    with open(os.path.join(out, "gpu_check.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
