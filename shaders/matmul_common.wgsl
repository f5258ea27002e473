// Shared by matmul.wgsl and matmul_subgroup.wgsl (prepended to each): the parameters and
// bindings of a batched C = op(A) · op(B), op = optional transpose. B is binding 2, declared by
// operand_f32.wgsl or operand_f16.wgsl (prepended before this file) and read through w_at.

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
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
