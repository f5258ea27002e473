// Shared by elementwise.wgsl and the convolution shaders (prepended after non_finite.wgsl): the
// activations an output pass can apply, by keel's Activation code: 0 none, 1 ReLU, 2 ReLU6,
// 3 SiLU, 4 hard-swish.

fn stable_sigmoid(x: f32) -> f32 {
    if (x >= 0.0) {
        return 1.0 / (1.0 + exp(-x));
    }
    let e = exp(x);
    return e / (1.0 + e);
}

fn activate(act: u32, y: f32) -> f32 {
    switch act {
        case 1u: { return max_nan(y, 0.0); }
        case 2u: { return min_nan(max_nan(y, 0.0), 6.0); }
        case 3u: { return y * stable_sigmoid(y); }
        case 4u: { return y * min_nan(max_nan(y + 3.0, 0.0), 6.0) / 6.0; }
        default: { return y; }
    }
}
