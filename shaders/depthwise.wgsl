// Depthwise (and any one-input-channel-per-group) convolution, computed directly:
// one invocation per output channel and run of eight neighbouring output pixels along a row, so
// the index arithmetic and each kernel tap's load are shared by eight outputs. Neighbouring
// invocations handle neighbouring channels, so reads of the NHWC input and the HWIO kernel are
// contiguous.

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
            out[out_base + j * p.out_c] = select(hi[j % 4u], lo[j % 4u], j < 4u);
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

// Input gradient: one invocation per input element (n, ih, iw, c), gathering from the output
// pixels whose taps read it and from the `multiplier` output channels of channel c.
@compute @workgroup_size(256)
fn depthwise_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.rows * p.in_c) {
        return;
    }
    let c = i % p.in_c;
    let pixel = i / p.in_c;
    let hw = p.in_h * p.in_w;
    let n = pixel / hw;
    let ih = (pixel % hw) / p.in_w;
    let iw = pixel % p.in_w;
    let mult = p.out_per_group;
    var acc = 0.0;
    for (var kh = 0u; kh < p.kernel_h; kh++) {
        let oh = source(ih, kh, p.dilation_h, p.pad_top, p.stride_h, p.out_h);
        if (oh < 0) {
            continue;
        }
        for (var kw = 0u; kw < p.kernel_w; kw++) {
            let ow = source(iw, kw, p.dilation_w, p.pad_left, p.stride_w, p.out_w);
            if (ow < 0) {
                continue;
            }
            let grad = ((n * p.out_h + u32(oh)) * p.out_w + u32(ow)) * p.out_c + c * mult;
            let taps = (kh * p.kernel_w + kw) * p.out_c + c * mult;
            for (var m = 0u; m < mult; m++) {
                acc = fma(dy[p.dy_offset + grad + m], w[taps + m], acc);
            }
        }
    }
    out[p.out_offset + i] = acc;
}

// Kernel gradient: one invocation per (split, tap, output channel), summing x · dy over the
// output pixels of its split; split s writes slice s of `out` ([splits, taps, out_c]).
@compute @workgroup_size(256)
fn depthwise_backward_kernel(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let per_split = p.kernel_h * p.kernel_w * p.out_c;
    let first = (i / per_split) * p.split_rows;
    if (first >= p.rows) {
        return;
    }
    let oc = i % p.out_c;
    let tap = (i % per_split) / p.out_c;
    let kh = tap / p.kernel_w;
    let kw = tap % p.kernel_w;
    let c = oc / p.out_per_group;
    let ohw = p.out_h * p.out_w;
    var acc = 0.0;
    for (var row = first; row < min(p.rows, first + p.split_rows); row++) {
        let n = row / ohw;
        let oh = (row % ohw) / p.out_w;
        let ow = row % p.out_w;
        let ih = i32(oh * p.stride_h + kh * p.dilation_h) - i32(p.pad_top);
        let iw = i32(ow * p.stride_w + kw * p.dilation_w) - i32(p.pad_left);
        if (ih < 0 || iw < 0 || ih >= i32(p.in_h) || iw >= i32(p.in_w)) {
            continue;
        }
        let xv = x[p.x_offset + ((n * p.in_h + u32(ih)) * p.in_w + u32(iw)) * p.in_c + c];
        acc = fma(xv, dy[p.dy_offset + row * p.out_c + oc], acc);
    }
    out[p.out_offset + i] = acc;
}
