// Shared by matmul.wgsl and conv2d.wgsl (prepended to each when the pipeline is built):
// the workgroup tiles of a 64×64×16 GEMM step and the register-blocked multiply of one step.

const TILE: u32 = 64u;    // rows and columns of the output per workgroup
const TILE_K: u32 = 16u;  // depth of one step through K
const THREADS: u32 = 64u; // 8×8 invocations, each owning an 8×8 block of the output

// Workgroup tiles, scalar so that each invocation writes whole memory locations:
// tile_a[kk * 64 + r] = A(row0 + r, k0 + kk), tile_b[kk * 64 + c] = B(k0 + kk, col0 + c).
var<workgroup> tile_a: array<f32, 1024>;
var<workgroup> tile_b: array<f32, 1024>;

fn load4(base: u32, from_a: bool) -> vec4<f32> {
    if (from_a) {
        return vec4<f32>(tile_a[base], tile_a[base + 1u], tile_a[base + 2u], tile_a[base + 3u]);
    }
    return vec4<f32>(tile_b[base], tile_b[base + 1u], tile_b[base + 2u], tile_b[base + 3u]);
}

// acc[2i + h] += rows lid.y·8 + i of tile_a times columns lid.x·8 + 4h .. + 3 of tile_b,
// over the 16 depths of the current step.
fn multiply_tile(acc: ptr<function, array<vec4<f32>, 16>>, lid: vec3<u32>) {
    for (var kk = 0u; kk < TILE_K; kk++) {
        let a0 = load4(kk * TILE + lid.y * 8u, true);
        let a1 = load4(kk * TILE + lid.y * 8u + 4u, true);
        let b0 = load4(kk * TILE + lid.x * 8u, false);
        let b1 = load4(kk * TILE + lid.x * 8u + 4u, false);
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
