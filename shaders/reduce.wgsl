// Reductions along one axis of a tensor viewed as [outer, len, inner]: sum, mean, max, min and
// argmax. reduce_rows gives each output one invocation (short axes, many outputs); reduce_wide
// gives each output a workgroup that reduces in workgroup memory (long axes, few outputs).

struct Params {
    outer: u32,
    len: u32,
    inner: u32,
    op: u32,        // 0 sum, 1 mean, 2 max, 3 min
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> indices: array<i32>;

const WG: u32 = 256u;
fn identity(op: u32) -> f32 {
    switch op {
        case 2u: { return neg_inf(); }
        case 3u: { return pos_inf(); }
        default: { return 0.0; }
    }
}

fn combine(op: u32, acc: f32, v: f32) -> f32 {
    switch op {
        case 2u: { return max_nan(acc, v); }
        case 3u: { return min_nan(acc, v); }
        default: { return acc + v; }
    }
}

fn finish(op: u32, acc: f32) -> f32 {
    if (op == 1u) {
        return acc / f32(p.len);
    }
    return acc;
}

fn element(o: u32, l: u32) -> f32 {
    let oi = o / p.inner;
    let ii = o % p.inner;
    return x[(oi * p.len + l) * p.inner + ii];
}

@compute @workgroup_size(256)
fn reduce_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = gid.x + gid.y * nwg.x * WG;
    if (o >= p.outer * p.inner) {
        return;
    }
    var acc = identity(p.op);
    for (var l = 0u; l < p.len; l++) {
        acc = combine(p.op, acc, element(o, l));
    }
    y[o] = finish(p.op, acc);
}

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn reduce_wide(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = wid.x + wid.y * nwg.x;
    if (o >= p.outer * p.inner) {
        return;
    }
    var acc = identity(p.op);
    for (var l = lid; l < p.len; l += WG) {
        acc = combine(p.op, acc, element(o, l));
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var width = WG / 2u; width > 0u; width /= 2u) {
        if (lid < width) {
            partial[lid] = combine(p.op, partial[lid], partial[lid + width]);
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        y[o] = finish(p.op, partial[0]);
    }
}

// Index of the largest element along the axis (a NaN being the largest); the first one on ties,
// as NumPy and PyTorch.
@compute @workgroup_size(256)
fn argmax_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = gid.x + gid.y * nwg.x * WG;
    if (o >= p.outer * p.inner) {
        return;
    }
    var best = element(o, 0u);
    var best_index = 0u;
    for (var l = 1u; l < p.len; l++) {
        let v = element(o, l);
        if (ranks_above(v, best)) {
            best = v;
            best_index = l;
        }
    }
    indices[o] = i32(best_index);
}
