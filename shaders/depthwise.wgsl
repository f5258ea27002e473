// Depthwise (and any one-input-channel-per-group) convolution, computed directly:
// one invocation per output channel and run of eight neighbouring output pixels along a row, so
// the index arithmetic and each kernel tap's load are shared by eight outputs. Neighbouring
// invocations handle neighbouring channels, so reads of the NHWC input and the HWIO kernel are
// contiguous.

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
    rows: u32,
    depth: u32,
    x_offset: u32,
    out_offset: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

const RUN: u32 = 8u; // output pixels per invocation along the output row

@compute @workgroup_size(256)
fn depthwise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let runs_per_row = (p.out_w + RUN - 1u) / RUN;
    if (i >= p.batch * p.out_h * runs_per_row * p.out_c) {
        return;
    }
    let oc = i % p.out_c;
    let run = i / p.out_c;
    let ow0 = (run % runs_per_row) * RUN;
    let image_row = run / runs_per_row; // n * out_h + oh
    let n = image_row / p.out_h;
    let oh = image_row % p.out_h;
    let c = oc / p.out_per_group;
    var lo = vec4<f32>(0.0); // pixels ow0 .. ow0 + 3
    var hi = vec4<f32>(0.0); // pixels ow0 + 4 .. ow0 + 7
    for (var kh = 0u; kh < p.kernel_h; kh++) {
        let ih = i32(oh * p.stride_h + kh * p.dilation_h) - i32(p.pad_top);
        if (ih < 0 || ih >= i32(p.in_h)) {
            continue;
        }
        let x_row = p.x_offset + (n * p.in_h + u32(ih)) * p.in_w * p.in_c + c;
        for (var kw = 0u; kw < p.kernel_w; kw++) {
            let wv = w[(kh * p.kernel_w + kw) * p.out_c + oc];
            let iw0 = i32(ow0 * p.stride_w + kw * p.dilation_w) - i32(p.pad_left);
            let sw = i32(p.stride_w);
            lo.x = fma(input_at(x_row, iw0), wv, lo.x);
            lo.y = fma(input_at(x_row, iw0 + sw), wv, lo.y);
            lo.z = fma(input_at(x_row, iw0 + 2 * sw), wv, lo.z);
            lo.w = fma(input_at(x_row, iw0 + 3 * sw), wv, lo.w);
            hi.x = fma(input_at(x_row, iw0 + 4 * sw), wv, hi.x);
            hi.y = fma(input_at(x_row, iw0 + 5 * sw), wv, hi.y);
            hi.z = fma(input_at(x_row, iw0 + 6 * sw), wv, hi.z);
            hi.w = fma(input_at(x_row, iw0 + 7 * sw), wv, hi.w);
        }
    }
    let out_base = p.out_offset + (image_row * p.out_w + ow0) * p.out_c + oc;
    for (var j = 0u; j < RUN; j++) {
        if (ow0 + j < p.out_w) {
            y[out_base + j * p.out_c] = select(hi[j % 4u], lo[j % 4u], j < 4u);
        }
    }
}

// Input at column iw of the row starting at `x_row` (channel included), zero in the padding.
fn input_at(x_row: u32, iw: i32) -> f32 {
    if (iw < 0 || iw >= i32(p.in_w)) {
        return 0.0;
    }
    return x[x_row + u32(iw) * p.in_c];
}
