// Max and average pooling over NHWC windows, one invocation per output element, and their
// gradients, one invocation per input element.
// Padded positions never take part: max ignores them, and the average divides by the number of
// real pixels under the window (TensorFlow/Keras semantics for `same`). A NaN in a window is its
// maximum.

struct Params {
    batch: u32,
    in_h: u32,
    in_w: u32,
    channels: u32,
    out_h: u32,
    out_w: u32,
    pool_h: u32,
    pool_w: u32,
    stride_h: u32,
    stride_w: u32,
    pad_top: u32,
    pad_left: u32,
    x_offset: u32,
    out_offset: u32,
    dy_offset: u32, // gradient passes: elements before this chunk's first output-gradient image
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>; // gradient passes only

fn pool(i: u32, is_max: bool) {
    let c = i % p.channels;
    let row = i / p.channels;
    let ohw = p.out_h * p.out_w;
    let n = row / ohw;
    let oh = (row % ohw) / p.out_w;
    let ow = row % p.out_w;
    var best = neg_inf();
    var sum = 0.0;
    var count = 0u;
    for (var kh = 0u; kh < p.pool_h; kh++) {
        let ih = i32(oh * p.stride_h + kh) - i32(p.pad_top);
        if (ih < 0 || ih >= i32(p.in_h)) {
            continue;
        }
        for (var kw = 0u; kw < p.pool_w; kw++) {
            let iw = i32(ow * p.stride_w + kw) - i32(p.pad_left);
            if (iw < 0 || iw >= i32(p.in_w)) {
                continue;
            }
            let v = x[p.x_offset + ((n * p.in_h + u32(ih)) * p.in_w + u32(iw)) * p.channels + c];
            best = max_nan(best, v);
            sum += v;
            count += 1u;
        }
    }
    if (is_max) {
        out[p.out_offset + i] = best;
    } else {
        out[p.out_offset + i] = sum / f32(max(count, 1u));
    }
}

@compute @workgroup_size(256)
fn max_pool(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i < p.batch * p.out_h * p.out_w * p.channels) {
        pool(i, true);
    }
}

@compute @workgroup_size(256)
fn avg_pool(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i < p.batch * p.out_h * p.out_w * p.channels) {
        pool(i, false);
    }
}

// The output rows (or columns) whose windows cover input position i along one axis:
// o · stride − pad ≤ i < o · stride − pad + size, as the range [first, end).
fn covering(i: u32, size: u32, stride: u32, pad: u32, outs: u32) -> vec2<u32> {
    let hi = i + pad; // o · stride ≤ hi
    var first = 0u;
    if (hi + 1u > size) {
        first = (hi + 1u - size + stride - 1u) / stride;
    }
    return vec2<u32>(first, min(outs, hi / stride + 1u));
}

// Whether input (ih, iw) is the first maximum, in row-major order, of output (n, oh, ow)'s window.
fn is_window_max(n: u32, oh: u32, ow: u32, c: u32, ih: u32, iw: u32) -> bool {
    var best = 0.0;
    var best_h = 0u;
    var best_w = 0u;
    var found = false;
    for (var kh = 0u; kh < p.pool_h; kh++) {
        let h = i32(oh * p.stride_h + kh) - i32(p.pad_top);
        if (h < 0 || h >= i32(p.in_h)) {
            continue;
        }
        for (var kw = 0u; kw < p.pool_w; kw++) {
            let w = i32(ow * p.stride_w + kw) - i32(p.pad_left);
            if (w < 0 || w >= i32(p.in_w)) {
                continue;
            }
            let v = x[p.x_offset + ((n * p.in_h + u32(h)) * p.in_w + u32(w)) * p.channels + c];
            if (!found || ranks_above(v, best)) {
                best = v;
                best_h = u32(h);
                best_w = u32(w);
                found = true;
            }
        }
    }
    return found && best_h == ih && best_w == iw;
}

// Real (unpadded) pixels under output (oh, ow)'s window.
fn window_count(oh: u32, ow: u32) -> f32 {
    let h0 = i32(oh * p.stride_h) - i32(p.pad_top);
    let w0 = i32(ow * p.stride_w) - i32(p.pad_left);
    let hs = min(h0 + i32(p.pool_h), i32(p.in_h)) - max(h0, 0);
    let ws = min(w0 + i32(p.pool_w), i32(p.in_w)) - max(w0, 0);
    return f32(max(hs * ws, 1));
}

fn pool_backward(i: u32, is_max: bool) {
    let c = i % p.channels;
    let pixel = i / p.channels;
    let hw = p.in_h * p.in_w;
    let n = pixel / hw;
    let ih = (pixel % hw) / p.in_w;
    let iw = pixel % p.in_w;
    let rows = covering(ih, p.pool_h, p.stride_h, p.pad_top, p.out_h);
    let cols = covering(iw, p.pool_w, p.stride_w, p.pad_left, p.out_w);
    var acc = 0.0;
    for (var oh = rows.x; oh < rows.y; oh++) {
        for (var ow = cols.x; ow < cols.y; ow++) {
            let g = dy[p.dy_offset + ((n * p.out_h + oh) * p.out_w + ow) * p.channels + c];
            if (is_max) {
                if (is_window_max(n, oh, ow, c, ih, iw)) {
                    acc += g;
                }
            } else {
                acc += g / window_count(oh, ow);
            }
        }
    }
    out[p.out_offset + i] = acc;
}

@compute @workgroup_size(256)
fn max_pool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i < p.batch * p.in_h * p.in_w * p.channels) {
        pool_backward(i, true);
    }
}

@compute @workgroup_size(256)
fn avg_pool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i < p.batch * p.in_h * p.in_w * p.channels) {
        pool_backward(i, false);
    }
}
