// Shared by matmul.wgsl and conv2d.wgsl (prepended to each when the pipeline is built):
// the workgroup tiles of a 64×64×16 GEMM step, the register-blocked multiply of one step, and
// the write-out of an invocation's 8×8 block to the including shader's `out` binding.

const TILE: u32 = 64u;    // rows and columns of the output per workgroup
const TILE_K: u32 = 16u;  // depth of one step through K
const THREADS: u32 = 64u; // 8×8 invocations, each owning an 8×8 block of the output
const QUADS: u32 = 16u;   // vec4s across one depth of a tile (TILE / 4)

// Workgroup tiles of vec4s, each written whole by one invocation:
// tile_a[kk * 16 + q] = A(row0 + 4q .. 4q + 3, k0 + kk), tile_b[kk * 16 + q] = B(k0 + kk, col0 + 4q .. 4q + 3).
var<workgroup> tile_a: array<vec4<f32>, 256>;
var<workgroup> tile_b: array<vec4<f32>, 256>;

// Invocation (x, y) owns tile rows 4y .. 4y + 3 and 32 + 4y .. 32 + 4y + 3, and likewise
// columns from x: the local row (or column) of its i-th row (or column), i in 0..8.
fn owned(i: u32, id: u32) -> u32 {
    return (i / 4u) * 32u + id * 4u + i % 4u;
}

// acc[2i + h] += row owned(i, lid.y) of tile_a times columns owned(4h .. 4h + 3, lid.x) of tile_b,
// over the 16 depths of the current step.
fn multiply_tile(acc: ptr<function, array<vec4<f32>, 16>>, lid: vec3<u32>) {
    for (var kk = 0u; kk < TILE_K; kk++) {
        let a0 = tile_a[kk * QUADS + lid.y];
        let a1 = tile_a[kk * QUADS + 8u + lid.y];
        let b0 = tile_b[kk * QUADS + lid.x];
        let b1 = tile_b[kk * QUADS + 8u + lid.x];
        (*acc)[0] = fma(vec4<f32>(a0.x), b0, (*acc)[0]);
        (*acc)[1] = fma(vec4<f32>(a0.x), b1, (*acc)[1]);
        (*acc)[2] = fma(vec4<f32>(a0.y), b0, (*acc)[2]);
        (*acc)[3] = fma(vec4<f32>(a0.y), b1, (*acc)[3]);
        (*acc)[4] = fma(vec4<f32>(a0.z), b0, (*acc)[4]);
        (*acc)[5] = fma(vec4<f32>(a0.z), b1, (*acc)[5]);
        (*acc)[6] = fma(vec4<f32>(a0.w), b0, (*acc)[6]);
        (*acc)[7] = fma(vec4<f32>(a0.w), b1, (*acc)[7]);
        (*acc)[8] = fma(vec4<f32>(a1.x), b0, (*acc)[8]);
        (*acc)[9] = fma(vec4<f32>(a1.x), b1, (*acc)[9]);
        (*acc)[10] = fma(vec4<f32>(a1.y), b0, (*acc)[10]);
        (*acc)[11] = fma(vec4<f32>(a1.y), b1, (*acc)[11]);
        (*acc)[12] = fma(vec4<f32>(a1.z), b0, (*acc)[12]);
        (*acc)[13] = fma(vec4<f32>(a1.z), b1, (*acc)[13]);
        (*acc)[14] = fma(vec4<f32>(a1.w), b0, (*acc)[14]);
        (*acc)[15] = fma(vec4<f32>(a1.w), b1, (*acc)[15]);
    }
}

// Writes the eight columns that invocation column x owns of GEMM row r.
fn store_gemm_row(d: Dest, r: u32, col0: u32, x: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (r >= d.rows) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        store_at(d, r, col0 + owned(j, x), lo[j]);
        store_at(d, r, col0 + owned(j + 4u, x), hi[j]);
    }
}

// Writes this invocation's 8×8 block of the tile at (row0, col0). Constant indices keep acc in
// registers (a dynamically indexed array is spilled to memory by some compilers).
fn store_tile(d: Dest, acc: ptr<function, array<vec4<f32>, 16>>, row0: u32, col0: u32, lid: vec3<u32>) {
    store_gemm_row(d, row0 + owned(0u, lid.y), col0, lid.x, (*acc)[0], (*acc)[1]);
    store_gemm_row(d, row0 + owned(1u, lid.y), col0, lid.x, (*acc)[2], (*acc)[3]);
    store_gemm_row(d, row0 + owned(2u, lid.y), col0, lid.x, (*acc)[4], (*acc)[5]);
    store_gemm_row(d, row0 + owned(3u, lid.y), col0, lid.x, (*acc)[6], (*acc)[7]);
    store_gemm_row(d, row0 + owned(4u, lid.y), col0, lid.x, (*acc)[8], (*acc)[9]);
    store_gemm_row(d, row0 + owned(5u, lid.y), col0, lid.x, (*acc)[10], (*acc)[11]);
    store_gemm_row(d, row0 + owned(6u, lid.y), col0, lid.x, (*acc)[12], (*acc)[13]);
    store_gemm_row(d, row0 + owned(7u, lid.y), col0, lid.x, (*acc)[14], (*acc)[15]);
}
