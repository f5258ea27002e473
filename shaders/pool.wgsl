// Max and average pooling over NHWC windows, one invocation per output element.
// Padded positions never take part: max ignores them, and the average divides by the number of
// real pixels under the window (TensorFlow/Keras semantics for `same`).

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
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

const NEG_INF: f32 = -3.4028234663852886e38;

fn pool(i: u32, is_max: bool) {
    let c = i % p.channels;
    let row = i / p.channels;
    let ohw = p.out_h * p.out_w;
    let n = row / ohw;
    let oh = (row % ohw) / p.out_w;
    let ow = row % p.out_w;
    var best = NEG_INF;
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
            best = max(best, v);
            sum += v;
            count += 1u;
        }
    }
    if (is_max) {
        y[p.out_offset + i] = best;
    } else {
        y[p.out_offset + i] = sum / f32(max(count, 1u));
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
