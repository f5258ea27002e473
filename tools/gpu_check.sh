#!/usr/bin/env bash
# The device check: keel's tests, benchmarks, golden prediction and main job on a machine's GPU,
# beside PyTorch on the same card, in one call.
#
#   tools/gpu_check.sh build DIR
#       Builds the release binaries here (the test suites ops, autograd, layers and train;
#       devices, bench, bench_train, predict, transfer, cnn), stripped and packed into
#       DIR/keel-bins.tar.xz (small enough to carry), with the repository path they were built in.
#   tools/gpu_check.sh debs DEBS
#       Downloads the Vulkan loader packages (Debian amd64 .deb files) into DEBS, for a machine
#       without them.
#   tools/gpu_check.sh run DIR OUT [--small] [--debs DEBS]
#       Unpacks the binaries and the Vulkan loader packages in DEBS (.deb files; default .gl),
#       then lists the adapters, runs every test suite on the wgpu adapter (KEEL_REQUIRE_WGPU=1),
#       the benchmarks (kernels, layers, whole backbones, training steps), the golden predict and
#       the main job on wgpu, and tools/bench_pytorch.py on CUDA where PyTorch has it. Writes
#       OUT/gpu_check.json and OUT/gpu_check.md (tools/gpu_check_report.py), with every log.
#       --small: smaller backbone runs and a tiny main job, for a software adapter (lavapipe).
#
# On a GPU machine with the repository copied over: build .gpu and debs .gl here (both ignored
# by git, e.g. in .git/info/exclude), carry them, and run `tools/gpu_check.sh run .gpu OUT`.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
EXAMPLES=(devices bench bench_train predict transfer cnn)
SUITES=(ops autograd layers train)

build() {
    local dir=$1
    mkdir -p "$dir"
    cargo build --release "${EXAMPLES[@]/#/--example=}"
    local bins
    bins=$(mktemp -d)
    for e in "${EXAMPLES[@]}"; do
        cp "target/release/examples/$e" "$bins/"
    done
    # The test binaries: cargo names them by hash; its JSON messages say which is which.
    cargo test --release --no-run "${SUITES[@]/#/--test=}" --message-format=json |
        python3 -c '
import json, shutil, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        shutil.copy(m["executable"], sys.argv[1] + "/test-" + m["target"]["name"])
' "$bins"
    strip "$bins"/*
    tar -C "$bins" -cJf "$dir/keel-bins.tar.xz" .
    rm -rf "$bins"
    # Binaries find assets and fixtures under the path they were built in.
    echo "$REPO" >"$dir/built-in"
    ls -la "$dir"
}

debs() {
    local dir=$1
    mkdir -p "$dir" /tmp/amd64/partial
    local o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
    apt-get "${o[@]}" update
    (cd "$dir" && apt-get "${o[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
    ls -la "$dir"
}

# Milliseconds `$@` takes, its output to the log named first.
timed() {
    local log=$1
    shift
    local start end
    start=$(date +%s%N)
    "$@" >"$log" 2>&1
    end=$(date +%s%N)
    echo $(((end - start) / 1000000))
}

run() {
    local dir=$1 out=$2
    shift 2
    local small=0 debs=.gl
    while [ $# -gt 0 ]; do
        case $1 in
        --small) small=1 ;;
        --debs) debs=$2; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
        esac
        shift
    done
    mkdir -p "$out"
    local bin
    bin=$(mktemp -d)
    tar -C "$bin" -xJf "$dir/keel-bins.tar.xz"
    local built_in
    built_in=$(cat "$dir/built-in")
    if [ ! -e "$built_in" ]; then
        mkdir -p "$(dirname "$built_in")"
        ln -s "$REPO" "$built_in"
    fi
    # The Vulkan loader, where the machine has none.
    if ! ldconfig -p | grep -q libvulkan.so.1; then
        if ! ls "$debs"/*.deb >/dev/null 2>&1; then
            echo "no Vulkan loader here and no .deb files in $debs (tools/gpu_check.sh debs $debs)" >&2
            exit 1
        fi
        for f in "$debs"/*.deb; do dpkg -x "$f" /; done
        ldconfig
    fi
    if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
        export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    fi
    export WGPU_BACKEND=vulkan KEEL_REQUIRE_WGPU=1 XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
    export KEEL_FUZZ_SECONDS=2
    local batch=64 size=224
    if [ $small = 1 ]; then batch=2 size=64; fi

    echo "== adapters"
    "$bin/devices" | tee "$out/devices.log" || true
    echo "== test suites on the adapter"
    : >"$out/tests.log"
    for s in "${SUITES[@]}"; do
        (cd "$REPO" && "$bin/test-$s") >>"$out/tests.log" 2>&1 || true
    done
    grep -E "FAILED|passed|cases ran" "$out/tests.log" || true
    echo "== benchmarks"
    "$bin/bench" --device wgpu --json --layers --backbones "$batch,$size" >"$out/bench.json"
    "$bin/bench_train" --device wgpu --json >"$out/bench_train.json"
    local predict_ms transfer_ms
    predict_ms=$(timed "$out/predict.log" "$bin/predict" --device wgpu)
    if [ $small = 1 ]; then
        # A tiny folder: two classes of the test photo.
        local data
        data=$(mktemp -d)
        for c in a b; do
            mkdir -p "$data/$c"
            for i in 1 2 3 4 5; do cp assets/china.jpg "$data/$c/$i.jpg"; done
        done
        transfer_ms=$(timed "$out/transfer.log" "$bin/transfer" --device wgpu --data "$data" \
            --image-size 32 --epochs 1 --plot "$out/transfer.png")
    else
        transfer_ms=$(timed "$out/transfer.log" "$bin/transfer" --device wgpu --plot "$out/transfer.png")
    fi
    echo "predict ${predict_ms} ms, main job ${transfer_ms} ms"
    echo "== PyTorch"
    if python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
        python3 tools/bench_pytorch.py --device cuda --layers --backbones "$batch,$size" >"$out/torch.json"
        python3 tools/bench_pytorch.py --device cuda --train >"$out/torch_train.json"
    else
        echo "no CUDA: PyTorch figures left out"
        rm -f "$out/torch.json" "$out/torch_train.json"
    fi
    python3 tools/gpu_check_report.py "$out" "$predict_ms" "$transfer_ms"
    rm -rf "$bin"
}

case ${1:-} in
build) build "${2:?build DIR}" ;;
debs) debs "${2:?debs DIR}" ;;
run) run "${2:?run DIR OUT}" "${3:?run DIR OUT}" "${@:4}" ;;
*) sed -n '2,23p' "$0"; exit 2 ;;
esac
