enable f16;

// Binding 2 of the GEMM and convolution shaders kept as f16 (frozen weights at half the memory
// and bandwidth, on adapters with SHADER_F16): each value is widened to f32 as it is read, and
// everything after that, the accumulation included, is f32 as with operand_f32.wgsl.
@group(0) @binding(2) var<storage, read> w: array<f16>;

fn w_at(i: u32) -> f32 {
    return f32(w[i]);
}
