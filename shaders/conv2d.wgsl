// 2-D convolution as an implicit GEMM: NHWC input, HWIO kernel, NHWC output.
// GEMM rows are output pixels (n, oh, ow), columns are output channels of one group, and the
// depth K runs over (kh, kw, input channel of the group). The input patch is gathered straight
// from the image while filling workgroup memory (no im2col buffer), then the same 64×64 tile,
// 8×8-per-invocation register blocking as matmul.wgsl. workgroup_id.z is the group.
// The tiles and the inner multiply are in gemm_tile.wgsl, prepended to this file.

struct Params {
    batch: u32,
    in_h: u32,
    in_w: u32,
    in_c: u32,
    out_h: u32,
    out_w: u32,
    out_c: u32,
    kernel_h: u32,
    kernel_w: u32,
    stride_h: u32,
    stride_w: u32,
    dilation_h: u32,
    dilation_w: u32,
    pad_top: u32,
    pad_left: u32,
    groups: u32,
    in_per_group: u32,
    out_per_group: u32,
    rows: u32,       // batch * out_h * out_w
    depth: u32,      // kernel_h * kernel_w * in_per_group
    x_offset: u32,
    out_offset: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

// One element of the implicit im2col matrix: input pixel under tap `kk` of output pixel `row`.
fn patch_value(row: u32, kk: u32, group: u32) -> f32 {
    let ohw = p.out_h * p.out_w;
    let n = row / ohw;
    let rem = row % ohw;
    let oh = rem / p.out_w;
    let ow = rem % p.out_w;
    let taps_per_row = p.kernel_w * p.in_per_group;
    let kh = kk / taps_per_row;
    let rem2 = kk % taps_per_row;
    let kw = rem2 / p.in_per_group;
    let ci = rem2 % p.in_per_group;
    let ih = i32(oh * p.stride_h + kh * p.dilation_h) - i32(p.pad_top);
    let iw = i32(ow * p.stride_w + kw * p.dilation_w) - i32(p.pad_left);
    if (row >= p.rows || kk >= p.depth) {
        return 0.0;
    }
    if (ih < 0 || iw < 0 || ih >= i32(p.in_h) || iw >= i32(p.in_w)) {
        return 0.0;
    }
    let pixel = (n * p.in_h + u32(ih)) * p.in_w + u32(iw);
    return x[p.x_offset + pixel * p.in_c + group * p.in_per_group + ci];
}

@compute @workgroup_size(8, 8)
fn conv2d(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let group = wid.z;
    let t = lid.y * 8u + lid.x;
    var acc: array<vec4<f32>, 16>; // acc[2i + h]: row i, columns 4h..4h+3 of this invocation's 8×8 block

    for (var k0 = 0u; k0 < p.depth; k0 += TILE_K) {
        for (var i = 0u; i < 4u; i++) {
            // Consecutive invocations take consecutive depths (input channels) of four pixels.
            let e = t + i * THREADS;
            let kk = e % TILE_K;
            let q = e / TILE_K;
            tile_a[kk * QUADS + q] = vec4<f32>(
                patch_value(row0 + 4u * q, k0 + kk, group),
                patch_value(row0 + 4u * q + 1u, k0 + kk, group),
                patch_value(row0 + 4u * q + 2u, k0 + kk, group),
                patch_value(row0 + 4u * q + 3u, k0 + kk, group),
            );
        }
        for (var i = 0u; i < 4u; i++) {
            let e = t + i * THREADS;
            let kk = e / QUADS;
            let q = e % QUADS;
            tile_b[kk * QUADS + q] = vec4<f32>(
                weight(k0 + kk, col0 + 4u * q, group),
                weight(k0 + kk, col0 + 4u * q + 1u, group),
                weight(k0 + kk, col0 + 4u * q + 2u, group),
                weight(k0 + kk, col0 + 4u * q + 3u, group),
            );
        }
        workgroupBarrier();
        multiply_tile(&acc, lid);
        workgroupBarrier();
    }

    // Constant indices keep acc in registers.
    store_row(row0 + owned(0u, lid.y), col0, lid.x, group, acc[0], acc[1]);
    store_row(row0 + owned(1u, lid.y), col0, lid.x, group, acc[2], acc[3]);
    store_row(row0 + owned(2u, lid.y), col0, lid.x, group, acc[4], acc[5]);
    store_row(row0 + owned(3u, lid.y), col0, lid.x, group, acc[6], acc[7]);
    store_row(row0 + owned(4u, lid.y), col0, lid.x, group, acc[8], acc[9]);
    store_row(row0 + owned(5u, lid.y), col0, lid.x, group, acc[10], acc[11]);
    store_row(row0 + owned(6u, lid.y), col0, lid.x, group, acc[12], acc[13]);
    store_row(row0 + owned(7u, lid.y), col0, lid.x, group, acc[14], acc[15]);
}

// Kernel entry at depth kk (kh, kw, input channel) and output channel `col` of the group,
// zero outside the kernel.
fn weight(kk: u32, col: u32, group: u32) -> f32 {
    if (kk >= p.depth || col >= p.out_per_group) {
        return 0.0;
    }
    return w[kk * p.out_c + group * p.out_per_group + col];
}

// Writes the eight output channels that invocation column `x` owns of output pixel `row`.
fn store_row(row: u32, col0: u32, x: u32, group: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (row >= p.rows) {
        return;
    }
    let base = p.out_offset + row * p.out_c + group * p.out_per_group;
    for (var j = 0u; j < 4u; j++) {
        let c_lo = col0 + owned(j, x);
        if (c_lo < p.out_per_group) {
            y[base + c_lo] = lo[j];
        }
        let c_hi = col0 + owned(j + 4u, x);
        if (c_hi < p.out_per_group) {
            y[base + c_hi] = hi[j];
        }
    }
}
