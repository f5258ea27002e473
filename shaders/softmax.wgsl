// Softmax and log-softmax along the last axis, one workgroup of 64 invocations per row.
// Numerically stable: the row maximum is subtracted before exponentiating.

struct Params {
    rows: u32,
    cols: u32,
    log: u32,     // 1 for log-softmax
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

const WG: u32 = 64u;
var<workgroup> scratch: array<f32, 64>;

@compute @workgroup_size(64)
fn softmax(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;

    var m = neg_inf();
    for (var c = lid; c < p.cols; c += WG) {
        m = max_nan(m, x[base + c]);
    }
    scratch[lid] = m;
    workgroupBarrier();
    for (var width = WG / 2u; width > 0u; width /= 2u) {
        if (lid < width) {
            scratch[lid] = max_nan(scratch[lid], scratch[lid + width]);
        }
        workgroupBarrier();
    }
    let row_max = scratch[0];
    workgroupBarrier();

    var s = 0.0;
    for (var c = lid; c < p.cols; c += WG) {
        s += exp(x[base + c] - row_max);
    }
    scratch[lid] = s;
    workgroupBarrier();
    for (var width = WG / 2u; width > 0u; width /= 2u) {
        if (lid < width) {
            scratch[lid] += scratch[lid + width];
        }
        workgroupBarrier();
    }
    let total = scratch[0];

    if (p.log != 0u) {
        let log_total = log(total);
        for (var c = lid; c < p.cols; c += WG) {
            y[base + c] = x[base + c] - row_max - log_total;
        }
    } else {
        for (var c = lid; c < p.cols; c += WG) {
            y[base + c] = exp(x[base + c] - row_max) / total;
        }
    }
}
