// Depthwise (and any one-input-channel-per-group) convolution, computed directly:
// one invocation per output channel and run of eight neighbouring output pixels along a row, so
// the index arithmetic and each kernel tap's load are shared by eight outputs (the 3×3 stride-1
// kernel also shares each input load between taps and between two output rows). Neighbouring
// invocations handle neighbouring channels, so reads of the NHWC input and the HWIO kernel are
// contiguous. Padding takes part as zeros (rows and columns alike), so a non-finite tap reaches
// every output whose window holds it, as in the dense kernels.

const RUN: u32 = 8u; // output pixels per invocation along the output row

// The run of output pixels invocation i computes: output channel oc (of input channel c) at
// pixels ow0 .. ow0 + 7 of output row oh of image n; image_row = n · out_h + oh.
struct Run {
    oc: u32,
    c: u32,
    n: u32,
    oh: u32,
    ow0: u32,
    image_row: u32,
}

fn run_at(i: u32) -> Run {
    let runs_per_row = (p.out_w + RUN - 1u) / RUN;
    let oc = i % p.out_c;
    let run = i / p.out_c;
    let image_row = run / runs_per_row;
    return Run(oc, oc / p.out_per_group, image_row / p.out_h, image_row % p.out_h, (run % runs_per_row) * RUN, image_row);
}

// How many runs the output has.
fn run_count() -> u32 {
    return p.batch * p.out_h * ((p.out_w + RUN - 1u) / RUN) * p.out_c;
}

// An input row of image n (at channel c): where it starts, clamped into the image, and whether
// it is inside (else it is padding, all zeros).
struct InputRow {
    start: u32,
    inside: bool,
}

fn input_row(n: u32, ih: i32, c: u32) -> InputRow {
    let h = u32(clamp(ih, 0, i32(p.in_h) - 1));
    return InputRow(p.x_offset + (n * p.in_h + h) * p.in_w * p.in_c + c, ih >= 0 && ih < i32(p.in_h));
}

// Input at column iw of `row`, zero in the padding. Reads a pixel inside the image either way,
// so no invocation branches.
fn input_at(row: InputRow, iw: i32) -> f32 {
    let inside = row.inside && iw >= 0 && iw < i32(p.in_w);
    return select(0.0, x[row.start + u32(clamp(iw, 0, i32(p.in_w) - 1)) * p.in_c], inside);
}

// Writes the run's pixels lo (ow0 .. ow0 + 3) and hi (ow0 + 4 .. ow0 + 7) that are inside the row,
// through the epilogue.
fn store_run(r: Run, lo: vec4<f32>, hi: vec4<f32>) {
    let out_base = p.out_offset + (r.image_row * p.out_w + r.ow0) * p.out_c + r.oc;
    for (var j = 0u; j < RUN; j++) {
        if (r.ow0 + j < p.out_w) {
            out[out_base + j * p.out_c] = finish(select(hi[j % 4u], lo[j % 4u], j < 4u), r.oc);
        }
    }
}

@compute @workgroup_size(256)
fn depthwise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= run_count()) {
        return;
    }
    let r = run_at(i);
    var lo = vec4<f32>(0.0);
    var hi = vec4<f32>(0.0);
    for (var kh = 0u; kh < p.kernel_h; kh++) {
        let x_row = input_row(r.n, i32(r.oh * p.stride_h + kh * p.dilation_h) - i32(p.pad_top), r.c);
        for (var kw = 0u; kw < p.kernel_w; kw++) {
            let wv = w_at((kh * p.kernel_w + kw) * p.out_c + r.oc);
            let iw0 = i32(r.ow0 * p.stride_w + kw * p.dilation_w) - i32(p.pad_left);
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
    store_run(r, lo, hi);
}

// MobileNet's common case, 3×3 taps at stride 1 without dilation: an invocation computes a run
// in two neighbouring output rows, and loads the ten input pixels under the run in each of the
// four input rows beneath them once, with the nine taps (49 loads for 16 outputs, against 72
// per 8 in `depthwise`). An entry point of its own: a branch to this path inside `depthwise` ran
// 1.0–1.5× slower on lavapipe.
@compute @workgroup_size(256)
fn depthwise_3x3(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let runs_per_row = (p.out_w + RUN - 1u) / RUN;
    let pairs = (p.out_h + 1u) / 2u; // output rows handled two at a time
    if (i >= p.batch * pairs * runs_per_row * p.out_c) {
        return;
    }
    let oc = i % p.out_c;
    let run = i / p.out_c;
    let pair = run / runs_per_row;
    let n = pair / pairs;
    let oh = (pair % pairs) * 2u;
    let top = Run(oc, oc / p.out_per_group, n, oh, (run % runs_per_row) * RUN, n * p.out_h + oh);
    // The kernel's rows, taps along x, y, z.
    let k0 = vec3<f32>(w_at(oc), w_at(p.out_c + oc), w_at(2u * p.out_c + oc));
    let k1 = vec3<f32>(w_at(3u * p.out_c + oc), w_at(4u * p.out_c + oc), w_at(5u * p.out_c + oc));
    let k2 = vec3<f32>(w_at(6u * p.out_c + oc), w_at(7u * p.out_c + oc), w_at(8u * p.out_c + oc));
    var top_sums = array<vec4<f32>, 2>(vec4<f32>(0.0), vec4<f32>(0.0));
    var bottom_sums = array<vec4<f32>, 2>(vec4<f32>(0.0), vec4<f32>(0.0));
    // Input row oh + t − pad_top meets kernel row t of the top output row and t − 1 of the bottom.
    for (var t = 0u; t < 4u; t++) {
        let row = input_run(top, input_row(n, i32(oh + t) - i32(p.pad_top), top.c));
        if (t < 3u) {
            let k = select(select(k2, k1, t == 1u), k0, t == 0u);
            top_sums = add_row_of_three(top_sums, row, k);
        }
        if (t >= 1u) {
            let k = select(select(k2, k1, t == 2u), k0, t == 1u);
            bottom_sums = add_row_of_three(bottom_sums, row, k);
        }
    }
    store_run(top, top_sums[0], top_sums[1]);
    if (oh + 1u < p.out_h) {
        let bottom = Run(oc, top.c, n, oh + 1u, top.ow0, top.image_row + 1u);
        store_run(bottom, bottom_sums[0], bottom_sums[1]);
    }
}

// The ten input pixels a run of 3-tap rows reads in the row starting at `x_row`: columns
// ow0 − pad_left + 0 .. 9, as two vec4s and a vec2.
struct InputRun {
    a: vec4<f32>,
    b: vec4<f32>,
    e: vec2<f32>,
}

fn input_run(r: Run, x_row: InputRow) -> InputRun {
    let iw0 = i32(r.ow0) - i32(p.pad_left);
    return InputRun(
        vec4<f32>(input_at(x_row, iw0), input_at(x_row, iw0 + 1), input_at(x_row, iw0 + 2), input_at(x_row, iw0 + 3)),
        vec4<f32>(input_at(x_row, iw0 + 4), input_at(x_row, iw0 + 5), input_at(x_row, iw0 + 6), input_at(x_row, iw0 + 7)),
        vec2<f32>(input_at(x_row, iw0 + 8), input_at(x_row, iw0 + 9)),
    );
}

// sums + the run's products with one kernel row k: output j reads columns j, j + 1 and j + 2.
fn add_row_of_three(sums: array<vec4<f32>, 2>, x: InputRun, k: vec3<f32>) -> array<vec4<f32>, 2> {
    let lo = fma(vec4<f32>(x.a.zw, x.b.xy), vec4<f32>(k.z), fma(vec4<f32>(x.a.yzw, x.b.x), vec4<f32>(k.y), fma(x.a, vec4<f32>(k.x), sums[0])));
    let hi = fma(vec4<f32>(x.b.zw, x.e), vec4<f32>(k.z), fma(vec4<f32>(x.b.yzw, x.e.x), vec4<f32>(k.y), fma(x.b, vec4<f32>(k.x), sums[1])));
    return array<vec4<f32>, 2>(lo, hi);
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
                acc = fma(dy[p.dy_offset + grad + m], w_at(taps + m), acc);
            }
        }
    }
    out[p.out_offset + i] = acc;
}

// Kernel gradient: one invocation per (split, tap, output channel), summing x · dy over the
// output pixels of its split (x zero in the padding); split s writes slice s of `out`
// ([splits, taps, out_c]).
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
        let x_row = input_row(n, i32(oh * p.stride_h + kh * p.dilation_h) - i32(p.pad_top), c);
        let xv = input_at(x_row, i32(ow * p.stride_w + kw * p.dilation_w) - i32(p.pad_left));
        acc = fma(xv, dy[p.dy_offset + row * p.out_c + oc], acc);
    }
    out[p.out_offset + i] = acc;
}
