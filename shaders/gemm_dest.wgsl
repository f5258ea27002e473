// Shared by both GEMM designs (prepended before gemm_tile.wgsl or subgroup_tile.wgsl): where a
// GEMM writes its output tile.

// Element (r, c) goes to out[base + r · stride + c], for r < rows and c < cols.
struct Dest {
    base: u32,
    stride: u32,
    rows: u32,
    cols: u32,
}

// Writes v to element (r, c) if column c is inside the output (rows are checked by the caller,
// once per row). `out` is the including shader's output binding.
fn store_at(d: Dest, r: u32, c: u32, v: f32) {
    if (c < d.cols) {
        out[d.base + r * d.stride + c] = v;
    }
}
