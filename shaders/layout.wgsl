// Data movement: copies a strided view of one buffer into a strided view of another.
// permute, slice, concat, pad and broadcasting materialisation are all this one kernel.
// Elements are copied as raw 32-bit words, so f32 and i32 tensors both pass through unchanged.

struct Params {
    len: u32,
    rank: u32,
    src_offset: u32,
    dst_offset: u32,
    shape: array<vec4<u32>, 2>,
    src_strides: array<vec4<u32>, 2>,
    dst_strides: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

fn dim(a: array<vec4<u32>, 2>, d: u32) -> u32 {
    return a[d / 4u][d % 4u];
}

@compute @workgroup_size(256)
fn copy_strided(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.len) {
        return;
    }
    var rest = i;
    var s = p.src_offset;
    var t = p.dst_offset;
    for (var d = i32(p.rank) - 1; d >= 0; d--) {
        let extent = dim(p.shape, u32(d));
        let coord = rest % extent;
        rest = rest / extent;
        s += coord * dim(p.src_strides, u32(d));
        t += coord * dim(p.dst_strides, u32(d));
    }
    dst[t] = src[s];
}
