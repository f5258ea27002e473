// Shared by conv2d.wgsl and depthwise.wgsl (prepended to each): the geometry of one convolution
// and its bindings. Forward passes read x and w and write out through the epilogue; gradient
// passes read dy with x (kernel gradient) or with w (input gradient) and write out. w (binding 2) is declared by
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
    epilogue: u32,   // forward passes: 0 none, else 1 + the activation's code (activation.wgsl)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
// The forward passes' epilogue: one scale and one shift per output channel.
@group(0) @binding(5) var<storage, read> scale: array<f32>;
@group(0) @binding(6) var<storage, read> shift: array<f32>;

// The forward passes' epilogue on value v of output channel `channel`: act(v · scale + shift)
// (a folded batch norm or a bias, then an activation), or v itself without one.
fn finish(v: f32, channel: u32) -> f32 {
    if (p.epilogue == 0u) {
        return v;
    }
    let c = min(channel, p.out_c - 1u);
    return activate(p.epilogue - 1u, v * scale[c] + shift[c]);
}

// finish on four values of output channels `channels`.
fn finish4(v: vec4<f32>, channels: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(finish(v.x, channels.x), finish(v.y, channels.y), finish(v.z, channels.z), finish(v.w, channels.w));
}

// The output position whose tap k reads input position i along one axis
// (o · stride + k · dilation − pad = i), or -1 when there is none.
fn source(i: u32, k: u32, dilation: u32, pad: u32, stride: u32, size: u32) -> i32 {
    let t = i32(i + pad) - i32(k * dilation);
    if (t < 0 || u32(t) % stride != 0u || u32(t) / stride >= size) {
        return -1;
    }
    return t / i32(stride);
}
