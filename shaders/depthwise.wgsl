// Depthwise (and any one-input-channel-per-group) convolution, computed directly:
// one invocation per output element; neighbouring invocations handle neighbouring channels,
// so reads of the NHWC input and the HWIO kernel are contiguous.

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

@compute @workgroup_size(256)
fn depthwise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.rows * p.out_c) {
        return;
    }
    let oc = i % p.out_c;
    let row = i / p.out_c;
    let ohw = p.out_h * p.out_w;
    let n = row / ohw;
    let oh = (row % ohw) / p.out_w;
    let ow = row % p.out_w;
    let c = oc / p.out_per_group;
    var acc = 0.0;
    for (var kh = 0u; kh < p.kernel_h; kh++) {
        let ih = i32(oh * p.stride_h + kh * p.dilation_h) - i32(p.pad_top);
        if (ih < 0 || ih >= i32(p.in_h)) {
            continue;
        }
        for (var kw = 0u; kw < p.kernel_w; kw++) {
            let iw = i32(ow * p.stride_w + kw * p.dilation_w) - i32(p.pad_left);
            if (iw < 0 || iw >= i32(p.in_w)) {
                continue;
            }
            let xv = x[p.x_offset + ((n * p.in_h + u32(ih)) * p.in_w + u32(iw)) * p.in_c + c];
            acc = fma(xv, w[(kh * p.kernel_w + kw) * p.out_c + oc], acc);
        }
    }
    y[p.out_offset + i] = acc;
}
