// Binding 2 of the GEMM and convolution shaders (a convolution's kernel w, matmul's B) kept as
// f32. operand_f16.wgsl declares the same binding kept as f16; one of them is prepended.
@group(0) @binding(2) var<storage, read> w: array<f32>;

fn w_at(i: u32) -> f32 {
    return w[i];
}
