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
        for (var i = 0u; i < 16u; i++) {
            let e = t + i * THREADS;
            let r = e / TILE_K;
            let kk = e % TILE_K;
            var v = 0.0;
            if (row0 + r < p.rows && k0 + kk < p.depth) {
                v = patch_value(row0 + r, k0 + kk, group);
            }
            tile_a[kk * TILE + r] = v;
        }
        for (var i = 0u; i < 16u; i++) {
            let e = t + i * THREADS;
            let kk = e / TILE;
            let col = e % TILE;
            var v = 0.0;
            if (col0 + col < p.out_per_group && k0 + kk < p.depth) {
                v = w[(k0 + kk) * p.out_c + group * p.out_per_group + col0 + col];
            }
            tile_b[kk * TILE + col] = v;
        }
        workgroupBarrier();
        multiply_tile(&acc, lid);
        workgroupBarrier();
    }

    for (var i = 0u; i < 8u; i++) {
        let r = row0 + lid.y * 8u + i;
        if (r >= p.rows) {
            break;
        }
        for (var j = 0u; j < 8u; j++) {
            let col = col0 + lid.x * 8u + j;
            if (col < p.out_per_group) {
                y[p.out_offset + r * p.out_c + group * p.out_per_group + col] = acc[2u * i + j / 4u][j % 4u];
            }
        }
    }
}
