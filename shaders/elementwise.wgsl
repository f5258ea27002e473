// Elementwise kernels: fill, unary and scalar ops, broadcasting binary ops, and a per-channel
// affine map (batch-norm in inference form, optionally fused with ReLU/ReLU6).
// Outputs are contiguous; binary inputs are strided views (stride 0 on broadcast dimensions).

struct Params {
    len: u32,        // output elements
    op: u32,         // op code, see each entry point
    rank: u32,       // rank of the strided views (binary)
    channels: u32,   // channel count (affine)
    scalar_a: f32,
    scalar_b: f32,
    out_offset: u32, // element offsets, so huge tensors can be processed in chunks
    a_offset: u32,
    shape: array<vec4<u32>, 2>,
    a_strides: array<vec4<u32>, 2>,
    b_strides: array<vec4<u32>, 2>,
    b_offset: u32,
    index_base: u32, // global index of element 0 of this chunk (affine channel phase)
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src_a: array<f32>;
@group(0) @binding(2) var<storage, read> src_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<storage, read> src_c: array<f32>;

const WG: u32 = 256u;

fn linear_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

fn dim(a: array<vec4<u32>, 2>, d: u32) -> u32 {
    return a[d / 4u][d % 4u];
}

fn stable_tanh(x: f32) -> f32 {
    let e = exp(-2.0 * abs(x));
    return sign(x) * (1.0 - e) / (1.0 + e);
}

// x^e with powf's meaning for negative bases (defined for integer exponents, NaN otherwise) and
// for NaN (x^0 = 1, else NaN); WGSL's pow is undefined for both.
fn pow_any(x: f32, e: f32) -> f32 {
    if (e == 0.0) {
        return 1.0;
    }
    if (is_nan(x)) {
        return x;
    }
    if (x >= 0.0 || fract(e) != 0.0) {
        return pow(x, e);
    }
    let m = pow(-x, e);
    if (fract(e * 0.5) != 0.0) {
        return -m;
    }
    return m;
}

// erf(x) to 1.5e-7 (Abramowitz and Stegun 7.1.26, as src/op.rs).
fn erf_approx(x: f32) -> f32 {
    let a = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.2548296 + t * (-0.28449674 + t * (1.4214137 + t * (-1.4531521 + t * 1.0614054))));
    let e = 1.0 - poly * exp(-a * a);
    return select(select(e, -e, x < 0.0), x, is_nan(x));
}

// Op codes shared with src/gpu/ops.rs (UnaryOp::code).
fn apply_unary(op: u32, x: f32) -> f32 {
    switch op {
        case 0u: { return activate(1u, x); }
        case 1u: { return activate(2u, x); }
        case 2u: { return stable_sigmoid(x); }
        case 3u: { return stable_tanh(x); }
        case 4u: { return exp(x); }
        case 5u: { return log(x); }
        case 6u: { return sqrt(x); }
        case 7u: { return -x; }
        case 8u: { return abs(x); }
        case 9u: { return x * p.scalar_a + p.scalar_b; }
        case 10u: { return max_nan(x, p.scalar_a); }
        case 11u: { return min_nan(x, p.scalar_a); }
        case 12u: { return pow_any(x, p.scalar_a); }
        case 13u: { return select(0.0, 1.0, x > p.scalar_a); }
        case 14u: { return select(sign(x), x, is_nan(x)); }
        case 15u: { return activate(3u, x); }
        case 16u: { return min_nan(max_nan(x + 3.0, 0.0), 6.0) / 6.0; }
        case 17u: { return activate(4u, x); }
        case 18u: { return 0.5 * x * (1.0 + erf_approx(x * 0.70710678)); }
        case 19u: { return 0.5 * (1.0 + erf_approx(x * 0.70710678)) + x * exp(-0.5 * x * x) * 0.3989423; }
        // dtype conversions (src/gpu/ops.rs): i32 bits to f32, f32 to i32 bits (toward zero,
        // saturating, NaN to 0, as Rust's `as`).
        case 30u: { return f32(bitcast<i32>(x)); }
        case 31u: {
            // 2147483520 is the largest f32 below 2^31.
            var r = i32(clamp(x, -2147483648.0, 2147483520.0));
            r = select(r, 2147483647, x >= 2147483648.0);
            return bitcast<f32>(select(r, 0, is_nan(x)));
        }
        default: { return x; }
    }
}

fn apply_binary(op: u32, a: f32, b: f32) -> f32 {
    switch op {
        case 0u: { return a + b; }
        case 1u: { return a - b; }
        case 2u: { return a * b; }
        case 3u: { return a / b; }
        case 4u: { return max_nan(a, b); }
        case 5u: { return min_nan(a, b); }
        case 6u: { return select(0.0, 1.0, a > b); }
        case 7u: { return select(0.0, 1.0, a == b); }
        case 8u: { return a * select(0.0, 1.0, b > 0.0); }
        case 9u: { return a * (select(0.0, 1.0, b > 0.0) - select(0.0, 1.0, b > 6.0)); }
        case 10u: {
            let s = stable_sigmoid(b);
            return a * (s * (1.0 + b * (1.0 - s)));
        }
        default: {
            let inside = select(0.0, 1.0, b > -3.0) - select(0.0, 1.0, b > 3.0);
            return a * (inside * (b * (1.0 / 3.0) + 0.5) + select(0.0, 1.0, b > 3.0));
        }
    }
}

@compute @workgroup_size(256)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i < p.len) {
        dst[p.out_offset + i] = p.scalar_a;
    }
}

// PCG's output hash (src/op.rs, pcg_hash).
fn pcg_hash(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// The inverted-dropout mask (src/op.rs, mask_value): seed in op (low) and rank (high) bits,
// rate in scalar_a, the kept value in scalar_b, element numbers from index_base.
@compute @workgroup_size(256)
fn dropout_mask(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i < p.len) {
        let stream = pcg_hash(pcg_hash(p.op) ^ p.rank);
        let bits = pcg_hash(stream ^ pcg_hash(p.index_base + i));
        let u = f32(bits >> 8u) / 16777216.0;
        dst[p.out_offset + i] = select(p.scalar_b, 0.0, u < p.scalar_a);
    }
}

@compute @workgroup_size(256)
fn unary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i < p.len) {
        dst[p.out_offset + i] = apply_unary(p.op, src_a[p.a_offset + i]);
    }
}

@compute @workgroup_size(256)
fn binary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i >= p.len) {
        return;
    }
    var rest = i;
    var ia = p.a_offset;
    var ib = p.b_offset;
    for (var d = i32(p.rank) - 1; d >= 0; d--) {
        let extent = dim(p.shape, u32(d));
        let coord = rest % extent;
        rest = rest / extent;
        ia += coord * dim(p.a_strides, u32(d));
        ib += coord * dim(p.b_strides, u32(d));
    }
    dst[p.out_offset + i] = apply_binary(p.op, src_a[ia], src_b[ib]);
}

// dst = act(x * scale[c] + shift[c]) with scale in src_b and shift in src_c.
// op: the activation's code (activation.wgsl).
@compute @workgroup_size(256)
fn channel_affine(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i >= p.len) {
        return;
    }
    let c = (p.index_base + i) % p.channels;
    let y = activate(p.op, src_a[p.a_offset + i] * src_b[c] + src_c[c]);
    dst[p.out_offset + i] = y;
}
