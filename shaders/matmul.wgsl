// Batched matrix multiply C = op(A) · op(B), op = optional transpose.
// A workgroup of 8×8 invocations computes a 64×64 tile of C; each invocation an 8×8 block held
// in registers. K advances in steps of 16 through workgroup memory; per step an invocation reads
// two vec4s of A and two of B and does sixteen vec4 FMAs.
// The tiles and the inner multiply are in gemm_tile.wgsl, the parameters and bindings in
// matmul_common.wgsl, both prepended to this file.

@compute @workgroup_size(8, 8)
fn matmul(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let t = lid.y * 8u + lid.x;
    let a_base = wid.z * p.a_batch_stride;
    let b_base = wid.z * p.b_batch_stride;
    var acc: array<vec4<f32>, 16>; // acc[2i + h]: row i, columns 4h..4h+3 of this invocation's 8×8 block

    for (var k0 = 0u; k0 < p.k; k0 += TILE_K) {
        for (var i = 0u; i < 4u; i++) {
            let e = t + i * THREADS;
            // A: consecutive invocations take consecutive depths of the same four rows, or the
            // same depth of consecutive rows when A is transposed (consecutive addresses either way).
            var kk = e % TILE_K;
            var q = e / TILE_K;
            if (p.trans_a != 0u) {
                kk = e / QUADS;
                q = e % QUADS;
            }
            tile_a[kk * QUADS + q] = vec4<f32>(
                a_value(a_base, row0 + 4u * q, k0 + kk),
                a_value(a_base, row0 + 4u * q + 1u, k0 + kk),
                a_value(a_base, row0 + 4u * q + 2u, k0 + kk),
                a_value(a_base, row0 + 4u * q + 3u, k0 + kk),
            );
        }
        for (var i = 0u; i < 4u; i++) {
            let e = t + i * THREADS;
            var kk = e / QUADS;
            var q = e % QUADS;
            if (p.trans_b != 0u) {
                kk = e % TILE_K;
                q = e / TILE_K;
            }
            tile_b[kk * QUADS + q] = vec4<f32>(
                b_value(b_base, k0 + kk, col0 + 4u * q),
                b_value(b_base, k0 + kk, col0 + 4u * q + 1u),
                b_value(b_base, k0 + kk, col0 + 4u * q + 2u),
                b_value(b_base, k0 + kk, col0 + 4u * q + 3u),
            );
        }
        workgroupBarrier();
        multiply_tile(&acc, lid);
        workgroupBarrier();
    }

    store_tile(Dest(wid.z * p.c_batch_stride, p.n, p.m, p.n), &acc, row0, col0, lid);
}

// A(r, k) of this batch, zero outside the matrix.
fn a_value(base: u32, r: u32, k: u32) -> f32 {
    if (r >= p.m || k >= p.k) {
        return 0.0;
    }
    return a[base + select(r * p.k + k, k * p.m + r, p.trans_a != 0u)];
}

// B(k, c) of this batch, zero outside the matrix.
fn b_value(base: u32, k: u32, c: u32) -> f32 {
    if (k >= p.k || c >= p.n) {
        return 0.0;
    }
    return w_at(base + select(k * p.n + c, c * p.k + k, p.trans_b != 0u));
}
