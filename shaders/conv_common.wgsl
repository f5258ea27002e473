// Shared by conv2d.wgsl and depthwise.wgsl (prepended to each): the geometry of one convolution
// and its bindings. Forward passes read x and w and write out; gradient passes read dy with x
// (kernel gradient) or with w (input gradient) and write out. w (binding 2) is declared by
// operand_f32.wgsl or operand_f16.wgsl, prepended before this file, and read through w_at.

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
    rows: u32,       // GEMM rows: output pixels (forward, kernel gradient) or input pixels (input gradient)
    depth: u32,      // kernel_h * kernel_w * in_per_group
    x_offset: u32,   // elements before this chunk's first input image
    out_offset: u32, // elements before this chunk's first output (input gradient, or partial sums)
    split_rows: u32, // kernel gradients: output pixels summed by one split of the reduction
    dy_offset: u32,  // gradient passes: elements before this chunk's first output-gradient image
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;

// The output position whose tap k reads input position i along one axis
// (o · stride + k · dilation − pad = i), or -1 when there is none.
fn source(i: u32, k: u32, dilation: u32, pad: u32, stride: u32, size: u32) -> i32 {
    let t = i32(i + pad) - i32(k * dilation);
    if (t < 0 || u32(t) % stride != 0u || u32(t) / stride >= size) {
        return -1;
    }
    return t / i32(stride);
}
