// 2-D convolution as an implicit GEMM: NHWC input, HWIO kernel, NHWC output.
// GEMM rows are output pixels (n, oh, ow), columns are output channels of one group, and the
// depth K runs over (kh, kw, input channel of the group). The input patch is gathered straight
// from the image while filling workgroup memory (no im2col buffer), then the same 64×64 tile,
// 8×8-per-invocation register blocking as matmul.wgsl. workgroup_id.z is the group.
// The tiles and the inner multiply are in gemm_tile.wgsl, prepended to this file.

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

    if (p.epilogue != 0u) {
        finish_block(&acc, group * p.out_per_group + col0, lid);
    }
    store_tile(Dest(p.out_offset + group * p.out_per_group, p.out_c, p.rows, p.out_per_group), &acc, row0, col0, lid);
}

// The epilogue on this invocation's 8×8 block of the tile whose first column is output channel
// c0: acc[2i + h] holds columns owned(4h .. 4h + 3). Constant indices keep acc in registers.
fn finish_block(acc: ptr<function, array<vec4<f32>, 16>>, c0: u32, lid: vec3<u32>) {
    let lo = c0 + vec4<u32>(owned(0u, lid.x), owned(1u, lid.x), owned(2u, lid.x), owned(3u, lid.x));
    let hi = c0 + vec4<u32>(owned(4u, lid.x), owned(5u, lid.x), owned(6u, lid.x), owned(7u, lid.x));
    (*acc)[0] = finish4((*acc)[0], lo);
    (*acc)[1] = finish4((*acc)[1], hi);
    (*acc)[2] = finish4((*acc)[2], lo);
    (*acc)[3] = finish4((*acc)[3], hi);
    (*acc)[4] = finish4((*acc)[4], lo);
    (*acc)[5] = finish4((*acc)[5], hi);
    (*acc)[6] = finish4((*acc)[6], lo);
    (*acc)[7] = finish4((*acc)[7], hi);
    (*acc)[8] = finish4((*acc)[8], lo);
    (*acc)[9] = finish4((*acc)[9], hi);
    (*acc)[10] = finish4((*acc)[10], lo);
    (*acc)[11] = finish4((*acc)[11], hi);
    (*acc)[12] = finish4((*acc)[12], lo);
    (*acc)[13] = finish4((*acc)[13], hi);
    (*acc)[14] = finish4((*acc)[14], lo);
    (*acc)[15] = finish4((*acc)[15], hi);
}

// Kernel entry at depth kk (kh, kw, input channel) and output channel `col` of the group,
// zero outside the kernel.
fn weight(kk: u32, col: u32, group: u32) -> f32 {
    if (kk >= p.depth || col >= p.out_per_group) {
        return 0.0;
    }
    return w_at(kk * p.out_c + group * p.out_per_group + col);
}

// ---- Gradients, as implicit GEMMs on the same tiles ----

// Input gradient: GEMM rows are input pixels (n, ih, iw), columns the input channels of one
// group, depth (kh, kw, output channel of the group). A(row, kk) is the output gradient at the
// output pixel whose tap (kh, kw) read this input pixel (zero if none); B(kk, ci) = w(kh, kw, ci, co).
fn input_grad_a(row: u32, kk: u32, group: u32) -> f32 {
    if (row >= p.rows || kk >= p.kernel_h * p.kernel_w * p.out_per_group) {
        return 0.0;
    }
    let hw = p.in_h * p.in_w;
    let n = row / hw;
    let ih = (row % hw) / p.in_w;
    let iw = row % p.in_w;
    let co = kk % p.out_per_group;
    let tap = kk / p.out_per_group;
    let oh = source(ih, tap / p.kernel_w, p.dilation_h, p.pad_top, p.stride_h, p.out_h);
    let ow = source(iw, tap % p.kernel_w, p.dilation_w, p.pad_left, p.stride_w, p.out_w);
    if (oh < 0 || ow < 0) {
        return 0.0;
    }
    let pixel = (n * p.out_h + u32(oh)) * p.out_w + u32(ow);
    return dy[p.dy_offset + pixel * p.out_c + group * p.out_per_group + co];
}

fn input_grad_b(kk: u32, ci: u32, group: u32) -> f32 {
    if (kk >= p.kernel_h * p.kernel_w * p.out_per_group || ci >= p.in_per_group) {
        return 0.0;
    }
    let co = kk % p.out_per_group;
    let tap = kk / p.out_per_group;
    return w_at((tap * p.in_per_group + ci) * p.out_c + group * p.out_per_group + co);
}

@compute @workgroup_size(8, 8)
fn backward_input(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let group = wid.z;
    let t = lid.y * 8u + lid.x;
    let depth = p.kernel_h * p.kernel_w * p.out_per_group;
    var acc: array<vec4<f32>, 16>;
    for (var k0 = 0u; k0 < depth; k0 += TILE_K) {
        for (var i = 0u; i < 4u; i++) {
            // Consecutive invocations take consecutive output channels (contiguous in dy and w).
            let e = t + i * THREADS;
            let kk = e % TILE_K;
            let q = e / TILE_K;
            tile_a[kk * QUADS + q] = vec4<f32>(
                input_grad_a(row0 + 4u * q, k0 + kk, group),
                input_grad_a(row0 + 4u * q + 1u, k0 + kk, group),
                input_grad_a(row0 + 4u * q + 2u, k0 + kk, group),
                input_grad_a(row0 + 4u * q + 3u, k0 + kk, group),
            );
            tile_b[kk * QUADS + q] = vec4<f32>(
                input_grad_b(k0 + kk, col0 + 4u * q, group),
                input_grad_b(k0 + kk, col0 + 4u * q + 1u, group),
                input_grad_b(k0 + kk, col0 + 4u * q + 2u, group),
                input_grad_b(k0 + kk, col0 + 4u * q + 3u, group),
            );
        }
        workgroupBarrier();
        multiply_tile(&acc, lid);
        workgroupBarrier();
    }
    store_tile(Dest(p.out_offset + group * p.in_per_group, p.in_c, p.rows, p.in_per_group), &acc, row0, col0, lid);
}

// Kernel gradient: GEMM rows are kernel rows (kh, kw, ci), columns the output channels of one
// group, depth the output pixels of one split: A(kk, row) = patch_value(row, kk),
// B(row, co) = dy(row, co). workgroup_id.z = split · groups + group; split s writes the partial
// sum of its output pixels to slice s of `out` ([splits, depth, out_c], summed afterwards).
fn kernel_grad_b(row: u32, end: u32, co: u32, group: u32) -> f32 {
    if (row >= end || co >= p.out_per_group) {
        return 0.0;
    }
    return dy[p.dy_offset + row * p.out_c + group * p.out_per_group + co];
}

@compute @workgroup_size(8, 8)
fn backward_kernel(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let row0 = wid.y * TILE; // kernel rows
    let col0 = wid.x * TILE; // output channels
    let group = wid.z % p.groups;
    let split = wid.z / p.groups;
    let first = split * p.split_rows;
    let end = min(p.rows, first + p.split_rows);
    let t = lid.y * 8u + lid.x;
    var acc: array<vec4<f32>, 16>;
    for (var k0 = first; k0 < end; k0 += TILE_K) {
        for (var i = 0u; i < 4u; i++) {
            // Consecutive invocations take consecutive kernel rows (input channels) and
            // consecutive output channels: contiguous in x and in dy.
            let e = t + i * THREADS;
            let kk = e / QUADS;
            let q = e % QUADS;
            let pixel = k0 + kk;
            var a = vec4<f32>(0.0);
            if (pixel < end) {
                a = vec4<f32>(
                    patch_value(pixel, row0 + 4u * q, group),
                    patch_value(pixel, row0 + 4u * q + 1u, group),
                    patch_value(pixel, row0 + 4u * q + 2u, group),
                    patch_value(pixel, row0 + 4u * q + 3u, group),
                );
            }
            tile_a[kk * QUADS + q] = a;
            tile_b[kk * QUADS + q] = vec4<f32>(
                kernel_grad_b(pixel, end, col0 + 4u * q, group),
                kernel_grad_b(pixel, end, col0 + 4u * q + 1u, group),
                kernel_grad_b(pixel, end, col0 + 4u * q + 2u, group),
                kernel_grad_b(pixel, end, col0 + 4u * q + 3u, group),
            );
        }
        workgroupBarrier();
        multiply_tile(&acc, lid);
        workgroupBarrier();
    }
    store_tile(Dest(p.out_offset + split * p.depth * p.out_c + group * p.out_per_group, p.out_c, p.depth, p.out_per_group), &acc, row0, col0, lid);
}
