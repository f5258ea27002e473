// Batched matrix multiply C = op(A) · op(B), op = optional transpose.
// A workgroup of 8×8 invocations computes a 64×64 tile of C; each invocation an 8×8 block held
// in registers. K advances in steps of 16 through workgroup memory; per step an invocation reads
// two vec4s of A and two of B and does sixteen vec4 FMAs.
// The tiles and the inner multiply are in gemm_tile.wgsl, prepended to this file.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    trans_a: u32,
    trans_b: u32,
    a_batch_stride: u32,
    b_batch_stride: u32,
    c_batch_stride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(8, 8)
fn matmul(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let t = lid.y * 8u + lid.x;
    let a_base = wid.z * p.a_batch_stride;
    let b_base = wid.z * p.b_batch_stride;
    var acc: array<vec4<f32>, 16>; // acc[2i + h]: row i, columns 4h..4h+3 of this invocation's 8×8 block

    for (var k0 = 0u; k0 < p.k; k0 += TILE_K) {
        for (var i = 0u; i < 16u; i++) {
            let e = t + i * THREADS;
            // Consecutive invocations read consecutive addresses in either layout.
            var r = e / TILE_K;
            var kk = e % TILE_K;
            if (p.trans_a != 0u) {
                kk = e / TILE;
                r = e % TILE;
            }
            let gr = row0 + r;
            let gk = k0 + kk;
            var v = 0.0;
            if (gr < p.m && gk < p.k) {
                v = a[a_base + select(gr * p.k + gk, gk * p.m + gr, p.trans_a != 0u)];
            }
            tile_a[kk * TILE + r] = v;
        }
        for (var i = 0u; i < 16u; i++) {
            let e = t + i * THREADS;
            var kk = e / TILE;
            var col = e % TILE;
            if (p.trans_b != 0u) {
                col = e / TILE_K;
                kk = e % TILE_K;
            }
            let gc = col0 + col;
            let gk = k0 + kk;
            var v = 0.0;
            if (gc < p.n && gk < p.k) {
                v = b[b_base + select(gk * p.n + gc, gc * p.k + gk, p.trans_b != 0u)];
            }
            tile_b[kk * TILE + col] = v;
        }
        workgroupBarrier();
        multiply_tile(&acc, lid);
        workgroupBarrier();
    }

    let c_base = wid.z * p.c_batch_stride;
    for (var i = 0u; i < 8u; i++) {
        let r = row0 + lid.y * 8u + i;
        if (r >= p.m) {
            break;
        }
        for (var j = 0u; j < 8u; j++) {
            let col = col0 + lid.x * 8u + j;
            if (col < p.n) {
                c[c_base + r * p.n + col] = acc[2u * i + j / 4u][j % 4u];
            }
        }
    }
}
