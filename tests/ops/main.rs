//! Every op on every device (CPU backend, and the wgpu adapter: lavapipe in CI) against a plain
//! f64 reference, on random inputs of awkward shapes. Run with `cargo test --test ops`;
//! a name filter runs only matching tests (`cargo test --test ops -- conv`).

mod half;
mod harness;
mod non_finite;
mod reference;

use harness::{run_tests, Expected, Input, Rng, Runner, Test};
use keel::tensor::op::Activation;
use keel::tensor::PoolOp;
use keel::{Conv2dOptions, Padding, Pool2dOptions, Shape, Tensor};
use reference as r;

fn main() {
    let tests: &[(&str, Test)] = &[
        ("matmul", matmul),
        ("matmul_many_rows", matmul_many_rows),
        ("matmul_batched", matmul_batched),
        ("bias_add", bias_add),
        ("binary_broadcast", binary_broadcast),
        ("unary", unary),
        ("scalar_ops", scalar_ops),
        ("conv2d_padding", conv2d_padding),
        ("conv2d_stride_dilation", conv2d_stride_dilation),
        ("conv2d_groups", conv2d_groups),
        ("conv2d_depthwise", conv2d_depthwise),
        ("conv2d_direct", conv2d_direct),
        ("conv2d_winograd", conv2d_winograd),
        ("pool2d", pool2d),
        ("global_pool", global_pool),
        ("reductions", reductions),
        ("argmax", argmax),
        ("dtype_conversion", dtype_conversion),
        ("dropout_mask", dropout_mask),
        ("softmax", softmax),
        ("layout", layout),
        ("batch_norm", batch_norm),
        ("batch_norm_training_passes", batch_norm_training_passes),
        ("bad_input", bad_input),
        ("larger_than_a_binding", larger_than_a_binding),
        ("cpu_cache", cpu_cache),
        ("non_finite_unary", non_finite::unary),
        ("non_finite_binary", non_finite::binary),
        ("non_finite_matmul", non_finite::matmul),
        ("non_finite_conv2d", non_finite::conv2d),
        ("non_finite_pool", non_finite::pool),
        ("non_finite_reductions", non_finite::reductions),
        ("non_finite_batch_norm", non_finite::batch_norm),
        ("f16_matmul", half::matmul),
        ("f16_conv2d", half::conv2d),
        ("f16_refusals", half::refusals),
    ];
    run_tests(tests, 7919);
}

fn exp(shape: Vec<usize>, data: Vec<f64>) -> Expected {
    Expected { shape, data }
}

fn matmul(t: &mut Runner, rng: &mut Rng) {
    for &(m, k, n) in &[
        (1, 1, 1),
        (3, 7, 5),
        (13, 1, 7),
        (7, 13, 1),
        (65, 33, 130),
        (128, 64, 64),
        (37, 15, 523), // wide enough for the CPU to split the columns over threads
    ] {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = Input::random(rng, &if ta { [k, m] } else { [m, k] });
            let b = Input::random(rng, &if tb { [n, k] } else { [k, n] });
            let want = r::matmul(&a.f64(), &b.f64(), 1, m, n, k, ta, tb, false, false);
            let case = format!("{m}x{k}x{n} ta={ta} tb={tb}");
            t.check(
                &case,
                &[a, b],
                |x| x[0].matmul_t(&x[1], ta, tb),
                &exp(vec![m, n], want),
            );
        }
    }
}

/// More output tiles than one dimension of a dispatch grid holds (65,535), so the GEMMs spread
/// their tiles over two.
fn matmul_many_rows(t: &mut Runner, rng: &mut Rng) {
    let (m, k, n) = (1_100_001, 3, 5);
    let a = Input::random(rng, &[m, k]);
    let b = Input::random(rng, &[k, n]);
    let want = r::matmul(&a.f64(), &b.f64(), 1, m, n, k, false, false, false, false);
    t.check(
        &format!("{m}x{k}x{n}"),
        &[a, b],
        |x| x[0].matmul(&x[1]),
        &exp(vec![m, n], want),
    );
}

fn matmul_batched(t: &mut Runner, rng: &mut Rng) {
    let (batch, m, k, n) = (5, 7, 13, 3);
    let a = Input::random(rng, &[batch, m, k]);
    let b = Input::random(rng, &[batch, k, n]);
    let want = r::matmul(
        &a.f64(),
        &b.f64(),
        batch,
        m,
        n,
        k,
        false,
        false,
        false,
        false,
    );
    t.check(
        "batched",
        &[a.clone(), b],
        |x| x[0].matmul(&x[1]),
        &exp(vec![batch, m, n], want),
    );
    // A Dense layer: a batch of rows times one shared weight matrix.
    let w = Input::random(rng, &[k, n]);
    let want = r::matmul(
        &a.f64(),
        &w.f64(),
        batch,
        m,
        n,
        k,
        false,
        false,
        false,
        true,
    );
    t.check(
        "shared rhs",
        &[a, w],
        |x| x[0].matmul(&x[1]),
        &exp(vec![batch, m, n], want),
    );
    let a = Input::random(rng, &[3, 2, 5, 4]);
    let b = Input::random(rng, &[3, 2, 6, 4]);
    let want = r::matmul(&a.f64(), &b.f64(), 6, 5, 6, 4, false, true, false, false);
    t.check(
        "rank 4, transposed rhs",
        &[a, b],
        |x| x[0].matmul_t(&x[1], false, true),
        &exp(vec![3, 2, 5, 6], want),
    );
}

fn bias_add(t: &mut Runner, rng: &mut Rng) {
    let x = Input::random(rng, &[5, 3, 7]);
    let b = Input::random(rng, &[7]);
    let (s, want) = r::broadcast(&x.f64(), &x.shape, &b.f64(), &b.shape, |a, b| a + b);
    t.check("bias", &[x, b], |v| v[0].bias_add(&v[1]), &exp(s, want));
}

fn binary_broadcast(t: &mut Runner, rng: &mut Rng) {
    let shapes: &[(&[usize], &[usize])] = &[
        (&[13], &[13]),
        (&[5, 1, 3], &[4, 1]),
        (&[1], &[2, 3]),
        (&[2, 3, 1, 7], &[3, 5, 1]),
        (&[7, 1], &[1, 13]),
        (&[4, 3], &[3]),       // rows contiguous in both operands
        (&[2, 1, 5], &[3, 5]), // the same, broadcast along the middle axis
    ];
    type F = fn(f64, f64) -> f64;
    let ops: [(&str, keel::tensor::BinaryOp, F); 12] = [
        ("add", keel::tensor::BinaryOp::Add, |a, b| a + b),
        ("sub", keel::tensor::BinaryOp::Sub, |a, b| a - b),
        ("mul", keel::tensor::BinaryOp::Mul, |a, b| a * b),
        ("div", keel::tensor::BinaryOp::Div, |a, b| a / b),
        ("max", keel::tensor::BinaryOp::Max, f64::max),
        ("min", keel::tensor::BinaryOp::Min, f64::min),
        ("greater", keel::tensor::BinaryOp::Greater, |a, b| {
            f64::from(u8::from(a > b))
        }),
        ("equal", keel::tensor::BinaryOp::Equal, |a, b| {
            f64::from(u8::from(a == b))
        }),
        ("relu_grad", keel::tensor::BinaryOp::ReluGrad, |a, b| {
            a * f64::from(u8::from(b > 0.0))
        }),
        ("relu6_grad", keel::tensor::BinaryOp::Relu6Grad, |a, b| {
            a * f64::from(u8::from(b > 0.0 && b <= 6.0))
        }),
        ("silu_grad", keel::tensor::BinaryOp::SiluGrad, |a, b| {
            let s = 1.0 / (1.0 + (-b).exp());
            a * s * (1.0 + b * (1.0 - s))
        }),
        (
            "hard_swish_grad",
            keel::tensor::BinaryOp::HardSwishGrad,
            |a, b| {
                a * if b <= -3.0 {
                    0.0
                } else if b <= 3.0 {
                    b / 3.0 + 0.5
                } else {
                    1.0
                }
            },
        ),
    ];
    for (sa, sb) in shapes {
        for (name, op, f) in ops {
            let a = Input::random(rng, sa);
            // Divisors away from zero keep the relative error meaningful.
            let b = if name == "div" {
                Input::random_in(rng, sb, 0.5, 2.0)
            } else if name.ends_with("_grad") {
                // Across every piece of the derivatives (kinks at −3, 0, 3 and 6).
                Input::random_in(rng, sb, -8.0, 8.0)
            } else {
                Input::random(rng, sb)
            };
            let (s, want) = r::broadcast(&a.f64(), sa, &b.f64(), sb, f);
            t.check(
                &format!("{name} {sa:?} {sb:?}"),
                &[a, b],
                |x| x[0].binary(&x[1], op),
                &exp(s, want),
            );
        }
    }
}

fn unary(t: &mut Runner, rng: &mut Rng) {
    type F = fn(&Tensor) -> keel::Result<Tensor>;
    type G = fn(f64) -> f64;
    let ops: [(&str, F, G, f32, f32); 14] = [
        ("relu", Tensor::relu, |x| x.max(0.0), -3.0, 3.0),
        ("relu6", Tensor::relu6, |x| x.clamp(0.0, 6.0), -8.0, 8.0),
        (
            "sigmoid",
            Tensor::sigmoid,
            |x| 1.0 / (1.0 + (-x).exp()),
            -90.0,
            90.0,
        ),
        ("tanh", Tensor::tanh, f64::tanh, -50.0, 50.0),
        ("exp", Tensor::exp, f64::exp, -5.0, 5.0),
        ("log", Tensor::log, f64::ln, 0.01, 10.0),
        ("sqrt", Tensor::sqrt, f64::sqrt, 0.0, 10.0),
        ("neg", Tensor::neg, |x| -x, -3.0, 3.0),
        ("abs", Tensor::abs, f64::abs, -3.0, 3.0),
        (
            "silu",
            Tensor::silu,
            |x| x / (1.0 + (-x).exp()),
            -90.0,
            90.0,
        ),
        (
            "hard_sigmoid",
            Tensor::hard_sigmoid,
            |x| (x + 3.0).clamp(0.0, 6.0) / 6.0,
            -5.0,
            5.0,
        ),
        (
            "hard_swish",
            Tensor::hard_swish,
            |x| x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
            -5.0,
            5.0,
        ),
        ("gelu", Tensor::gelu, r::gelu, -8.0, 8.0),
        (
            "gelu derivative",
            |x| x.unary(keel::tensor::UnaryOp::GeluDerivative),
            |x| {
                let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
                0.5 * (1.0 + r::erf(x / std::f64::consts::SQRT_2)) + x * pdf
            },
            -8.0,
            8.0,
        ),
    ];
    for (name, op, f, lo, hi) in ops {
        for shape in [&[1][..], &[3, 7], &[5, 13, 3]] {
            let x = Input::random_in(rng, shape, lo, hi);
            let want = x.f64().into_iter().map(f).collect();
            t.check(
                &format!("{name} {shape:?}"),
                &[x],
                |v| op(&v[0]),
                &exp(shape.to_vec(), want),
            );
        }
    }
}

fn scalar_ops(t: &mut Runner, rng: &mut Rng) {
    type F = fn(&Tensor) -> keel::Result<Tensor>;
    type G = fn(f64) -> f64;
    let ops: [(&str, F, G); 10] = [
        ("add 2.5", |x| x.add_scalar(2.5), |x| x + 2.5),
        ("sub 0.5", |x| x.sub_scalar(0.5), |x| x - 0.5),
        ("mul -3", |x| x.mul_scalar(-3.0), |x| x * -3.0),
        ("div 4", |x| x.div_scalar(4.0), |x| x / 4.0),
        ("affine", |x| x.affine(2.0, -1.0), |x| 2.0 * x - 1.0),
        ("clamp", |x| x.clamp(-0.25, 0.5), |x| x.clamp(-0.25, 0.5)),
        ("pow 2", |x| x.powf(2.0), |x| x * x),
        ("pow 0.5", |x| x.abs()?.powf(0.5), |x| x.abs().sqrt()),
        (
            "above 0.25",
            |x| x.above(0.25),
            |x| f64::from(u8::from(x > 0.25)),
        ),
        ("sign", |x| x.sign(), f64::signum),
    ];
    for (name, op, f) in ops {
        let x = Input::random(rng, &[7, 3]);
        let want = x.f64().into_iter().map(f).collect();
        t.check(name, &[x], |v| op(&v[0]), &exp(vec![7, 3], want));
    }
    // Equality against a broadcast row maximum marks each row's maximum: the mask that
    // max-reduction gradients use.
    let x = Input::random(rng, &[5, 7]);
    let want = x
        .f64()
        .chunks(7)
        .flat_map(|row| {
            let m = row.iter().copied().fold(f64::MIN, f64::max);
            row.iter().map(move |&v| f64::from(u8::from(v == m)))
        })
        .collect();
    t.check(
        "equal to the row maximum",
        &[x],
        |v| v[0].equal(&v[0].max(&[1], true)?),
        &exp(vec![5, 7], want),
    );
}

/// Checks one convolution case against the reference.
#[allow(clippy::too_many_arguments)]
fn conv_case(
    t: &mut Runner,
    rng: &mut Rng,
    x: &[usize],
    kernel: (usize, usize),
    out_c: usize,
    stride: usize,
    dilation: usize,
    padding: Padding,
    groups: usize,
) {
    let xi = Input::random(rng, x);
    let wi = Input::random(rng, &[kernel.0, kernel.1, x[3] / groups, out_c]);
    let c = r::Conv::new(stride, dilation, padding, groups);
    let (s, want) = r::conv2d(&xi.f64(), x, &wi.f64(), &wi.shape, &c);
    let opts = Conv2dOptions::default()
        .stride(stride)
        .dilation(dilation)
        .padding(padding)
        .groups(groups);
    let case = format!("x{x:?} k{kernel:?}→{out_c} s{stride} d{dilation} {padding:?} g{groups}");
    let dy = Input::random(rng, &s);
    let (dx, dw) = r::conv2d_grads(&xi.f64(), x, &wi.f64(), &wi.shape, &dy.f64(), &c);
    let (x_shape, w_shape) = (Shape::new(x), Shape::new(wi.shape.clone()));
    t.check(
        &format!("{case} backward input"),
        &[dy.clone(), wi.clone()],
        |v| v[0].conv2d_backward_input(&v[1], &x_shape, &opts),
        &exp(x.to_vec(), dx),
    );
    t.check(
        &format!("{case} backward kernel"),
        &[dy, xi.clone()],
        |v| v[0].conv2d_backward_kernel(&v[1], &w_shape, &opts),
        &exp(w_shape.dims().to_vec(), dw),
    );
    // The same convolution with a channel affine and an activation in its output pass (a folded
    // batch norm and ReLU, ReLU6, SiLU or hard-swish), the activations in turn over the cases.
    let scale = Input::random_in(rng, &[out_c], 0.5, 1.5);
    let shift = Input::random(rng, &[out_c]);
    let act = [
        Activation::None,
        Activation::Relu,
        Activation::Relu6,
        Activation::Silu,
        Activation::HardSwish,
    ][(x[0] + out_c) % 5];
    let (sc, sh) = (scale.f64(), shift.f64());
    let affine: Vec<f64> = want
        .iter()
        .enumerate()
        .map(|(i, v)| r::activation(act, v * sc[i % out_c] + sh[i % out_c]))
        .collect();
    t.check(
        &format!("{case} with a channel affine and {act:?}"),
        &[xi.clone(), wi.clone(), scale, shift],
        |v| v[0].conv2d_affine(&v[1], &opts, &v[2], &v[3], act),
        &exp(s.clone(), affine),
    );
    t.check(
        &case,
        &[xi, wi],
        |v| v[0].conv2d(&v[1], &opts),
        &exp(s, want),
    );
}

fn conv2d_padding(t: &mut Runner, rng: &mut Rng) {
    conv_case(t, rng, &[1, 7, 7, 3], (3, 3), 5, 1, 1, Padding::Valid, 1);
    conv_case(t, rng, &[5, 7, 6, 3], (3, 3), 8, 1, 1, Padding::Same, 1);
    conv_case(t, rng, &[2, 7, 7, 1], (4, 4), 3, 1, 1, Padding::Same, 1); // even kernel: pad (1, 2)
    conv_case(t, rng, &[2, 8, 5, 3], (2, 2), 7, 1, 1, Padding::Same, 1);
    conv_case(
        t,
        rng,
        &[1, 5, 5, 2],
        (3, 3),
        4,
        1,
        1,
        Padding::Explicit {
            top: 2,
            bottom: 0,
            left: 1,
            right: 3,
        },
        1,
    );
    // Pads beyond the kernel's reach: rows that see only padding.
    conv_case(
        t,
        rng,
        &[1, 4, 5, 2],
        (2, 2),
        3,
        1,
        1,
        Padding::Explicit {
            top: 3,
            bottom: 1,
            left: 2,
            right: 0,
        },
        1,
    );
    conv_case(t, rng, &[3, 13, 13, 7], (1, 1), 13, 1, 1, Padding::Valid, 1); // pointwise
    conv_case(t, rng, &[1, 1, 1, 3], (1, 1), 1, 1, 1, Padding::Same, 1);
    conv_case(t, rng, &[2, 9, 9, 17], (3, 3), 70, 1, 1, Padding::Same, 1); // crosses GEMM tiles
                                                                           // Patches deeper than the CPU's per-thread path takes, over two shared im2col chunks.
    conv_case(t, rng, &[1, 40, 40, 301], (3, 3), 2, 1, 1, Padding::Same, 1);
}

fn conv2d_stride_dilation(t: &mut Runner, rng: &mut Rng) {
    conv_case(t, rng, &[1, 7, 7, 3], (3, 3), 5, 2, 1, Padding::Same, 1); // pad (1, 1)
    conv_case(t, rng, &[2, 8, 8, 3], (3, 3), 4, 2, 1, Padding::Same, 1); // pad (0, 1): Keras' asymmetric split
    conv_case(t, rng, &[1, 13, 13, 3], (4, 4), 2, 2, 1, Padding::Same, 1);
    conv_case(t, rng, &[5, 9, 11, 1], (3, 3), 3, 2, 1, Padding::Valid, 1);
    conv_case(t, rng, &[1, 11, 11, 3], (3, 3), 4, 1, 2, Padding::Same, 1);
    conv_case(t, rng, &[2, 13, 9, 2], (3, 2), 3, 1, 3, Padding::Valid, 1);
    conv_case(
        t,
        rng,
        &[1, 12, 12, 3],
        (3, 3),
        5,
        3,
        2,
        Padding::Explicit {
            top: 1,
            bottom: 2,
            left: 0,
            right: 1,
        },
        1,
    );
}

fn conv2d_groups(t: &mut Runner, rng: &mut Rng) {
    conv_case(t, rng, &[2, 7, 7, 6], (3, 3), 9, 1, 1, Padding::Same, 3);
    conv_case(t, rng, &[1, 5, 5, 4], (1, 1), 8, 1, 1, Padding::Valid, 2);
    conv_case(t, rng, &[1, 8, 8, 9], (2, 2), 3, 2, 1, Padding::Same, 3);
    conv_case(t, rng, &[1, 3, 5, 602], (3, 3), 4, 1, 1, Padding::Same, 2); // deep patches per group
}

/// Dense convolutions with at least 16 input channels and output channels in multiples of 16,
/// other than 3×3 with stride 1: the CPU's direct kernel on AVX-512 (blocks of 32 channels plus a
/// 16-channel tail, tiles of 12 pixels with a partial last one, bands of output rows over
/// padding), and its input gradient as a convolution.
fn conv2d_direct(t: &mut Runner, rng: &mut Rng) {
    conv_case(t, rng, &[2, 9, 13, 17], (3, 3), 48, 2, 1, Padding::Same, 1);
    conv_case(t, rng, &[3, 5, 7, 20], (4, 4), 16, 1, 1, Padding::Same, 1); // pad (1, 2)
    conv_case(t, rng, &[1, 11, 10, 16], (2, 3), 32, 2, 1, Padding::Same, 1);
    conv_case(t, rng, &[1, 6, 30, 24], (3, 5), 64, 1, 1, Padding::Valid, 1);
    conv_case(t, rng, &[2, 9, 13, 32], (3, 3), 16, 2, 1, Padding::Same, 1);
    // A strided 1×1 convolution.
    conv_case(t, rng, &[1, 9, 11, 16], (1, 1), 16, 2, 1, Padding::Valid, 1);
    conv_case(
        t,
        rng,
        &[1, 4, 5, 16],
        (2, 2),
        16,
        1,
        1,
        Padding::Explicit {
            top: 3,
            bottom: 1,
            left: 2,
            right: 0,
        },
        1,
    );
}

/// 3×3 convolutions with stride 1, at least 64 input and output channels (output channels in
/// multiples of 16) and 8×8 outputs: the CPU's Winograd F(2×2, 3×3) path on AVX-512 (tiles
/// sticking out past odd heights and widths, input channels not a multiple of 16, a 16-channel
/// tail of output channels, tasks that end inside an image), and the input gradient through it.
fn conv2d_winograd(t: &mut Runner, rng: &mut Rng) {
    conv_case(t, rng, &[3, 15, 15, 65], (3, 3), 80, 1, 1, Padding::Same, 1);
    conv_case(
        t,
        rng,
        &[1, 10, 31, 64],
        (3, 3),
        64,
        1,
        1,
        Padding::Valid,
        1,
    );
    conv_case(
        t,
        rng,
        &[2, 8, 9, 96],
        (3, 3),
        64,
        1,
        1,
        Padding::Explicit {
            top: 2,
            bottom: 0,
            left: 0,
            right: 1,
        },
        1,
    );
}

fn conv2d_depthwise(t: &mut Runner, rng: &mut Rng) {
    // groups = channels through conv2d
    conv_case(t, rng, &[2, 7, 7, 3], (3, 3), 3, 1, 1, Padding::Same, 3);
    conv_case(t, rng, &[1, 13, 13, 5], (3, 3), 10, 2, 1, Padding::Same, 5); // multiplier 2
    conv_case(t, rng, &[5, 8, 8, 7], (3, 3), 7, 2, 1, Padding::Valid, 7);
    conv_case(t, rng, &[1, 9, 9, 3], (4, 4), 3, 1, 2, Padding::Same, 3);
    conv_case(t, rng, &[3, 5, 19, 5], (3, 3), 10, 1, 1, Padding::Valid, 5); // 3×3 stride 1, multiplier 2
    conv_case(t, rng, &[1, 1, 1, 2], (3, 3), 2, 1, 1, Padding::Same, 2); // 3×3 stride 1 on one pixel

    // 16 channels or more: the CPU's register-blocked paths (16-channel blocks plus a tail).
    conv_case(t, rng, &[2, 9, 13, 35], (3, 3), 35, 1, 1, Padding::Same, 35);
    conv_case(t, rng, &[1, 7, 11, 33], (5, 5), 33, 1, 1, Padding::Same, 33);
    conv_case(t, rng, &[2, 8, 10, 16], (3, 3), 16, 2, 1, Padding::Same, 16);
    conv_case(t, rng, &[1, 6, 20, 16], (3, 3), 16, 1, 2, Padding::Same, 16);
    // Channels in whole blocks, rows wide enough for the AVX-512 kernel's 8-pixel blocks (at
    // stride 1 and 2, then the narrower blocks for the rest of the row).
    conv_case(t, rng, &[2, 5, 29, 32], (3, 3), 32, 1, 1, Padding::Same, 32);
    conv_case(t, rng, &[1, 7, 37, 48], (3, 3), 48, 2, 1, Padding::Same, 48);
    conv_case(
        t,
        rng,
        &[1, 4, 23, 16],
        (3, 3),
        16,
        1,
        1,
        Padding::Valid,
        16,
    );
    // Multiplier 2 on 17 channels.
    conv_case(
        t,
        rng,
        &[1, 9, 12, 17],
        (3, 3),
        34,
        1,
        1,
        Padding::Valid,
        17,
    );
    conv_case(t, rng, &[1, 3, 3, 16], (3, 3), 16, 1, 1, Padding::Same, 16); // narrower than a block

    // The Keras-layout entry point: kernel [kh, kw, C, multiplier].
    let x = Input::random(rng, &[2, 6, 6, 3]);
    let w = Input::random(rng, &[3, 3, 3, 2]);
    let c = r::Conv::new(1, 1, Padding::Same, 3);
    let (s, want) = r::conv2d(&x.f64(), &x.shape, &w.f64(), &[3, 3, 1, 6], &c);
    let opts = Conv2dOptions::default().padding(Padding::Same);
    t.check(
        "depthwise_conv2d keras layout",
        &[x, w],
        |v| v[0].depthwise_conv2d(&v[1], &opts),
        &exp(s, want),
    );
}

/// Max (`max`) or average pooling of `x` and its gradient, on every device against the
/// references.
fn check_pool(
    t: &mut Runner,
    rng: &mut Rng,
    x: Input,
    size: usize,
    stride: usize,
    same: bool,
    max: bool,
) {
    let shape = x.shape.clone();
    let (s, want) = r::pool(&x.f64(), &shape, (size, size), (stride, stride), same, max);
    let opts = Pool2dOptions::new(size).stride(stride).padding(if same {
        Padding::Same
    } else {
        Padding::Valid
    });
    let case = format!(
        "{} {shape:?} size {size} stride {stride} same={same}",
        if max { "max" } else { "avg" }
    );
    let dy = Input::random(rng, &s);
    let dx = r::pool_backward(
        &x.f64(),
        &shape,
        &dy.f64(),
        (size, size),
        (stride, stride),
        same,
        max,
    );
    let op = if max { PoolOp::Max } else { PoolOp::Avg };
    t.check(
        &format!("{case} backward"),
        &[x.clone(), dy],
        |v| v[0].pool2d_backward(&v[1], &opts, op),
        &exp(shape.clone(), dx),
    );
    t.check(
        &case,
        &[x],
        |v| {
            if max {
                v[0].max_pool2d(&opts)
            } else {
                v[0].avg_pool2d(&opts)
            }
        },
        &exp(s, want),
    );
}

fn pool2d(t: &mut Runner, rng: &mut Rng) {
    for (shape, size, stride, same) in [
        (&[1, 7, 7, 3][..], 2, 2, false),
        (&[5, 7, 7, 3], 2, 2, true),
        (&[2, 13, 13, 1], 3, 2, false),
        (&[2, 13, 13, 5], 3, 2, true),
        (&[1, 8, 6, 2], 3, 1, true),
        (&[1, 1, 1, 3], 1, 1, false),
    ] {
        for max in [true, false] {
            let x = Input::random(rng, shape);
            check_pool(t, rng, x, size, stride, same, max);
        }
    }
    // Inputs of -1, 0 and 1 only: most windows hold ties, and the max gradient goes to the first
    // maximum in row-major order.
    let shape = [2, 7, 7, 5];
    let values = rng.values(shape.iter().product(), -1.5, 1.5);
    let x = Input {
        shape: shape.to_vec(),
        data: values.iter().map(|v| v.round()).collect(),
    };
    let opts = Pool2dOptions::new(3).stride(2).padding(Padding::Same);
    let (s, _) = r::pool(&x.f64(), &shape, (3, 3), (2, 2), true, true);
    let dy = Input::random(rng, &s);
    let dx = r::pool_backward(&x.f64(), &shape, &dy.f64(), (3, 3), (2, 2), true, true);
    t.check(
        "max backward, ties",
        &[x, dy],
        |v| v[0].pool2d_backward(&v[1], &opts, PoolOp::Max),
        &exp(shape.to_vec(), dx),
    );
}

fn global_pool(t: &mut Runner, rng: &mut Rng) {
    for shape in [[1, 7, 7, 13], [5, 3, 1, 3], [2, 1, 1, 1]] {
        let x = Input::random(rng, &shape);
        let (_, want) = r::reduce(&x.f64(), &shape, &[1, 2], false, |g| {
            g.iter().sum::<f64>() / g.len() as f64
        });
        t.check(
            &format!("avg {shape:?}"),
            std::slice::from_ref(&x),
            |v| v[0].global_avg_pool2d(),
            &exp(vec![shape[0], shape[3]], want),
        );
        let (_, want) = r::reduce(&x.f64(), &shape, &[1, 2], false, |g| {
            r::max_of(g.iter().copied())
        });
        t.check(
            &format!("max {shape:?}"),
            &[x],
            |v| v[0].global_max_pool2d(),
            &exp(vec![shape[0], shape[3]], want),
        );
    }
}

/// A reduction's name, its f64 reference over the reduced values, and the op.
type ReduceCase = (&'static str, fn(&[f64]) -> f64, keel::tensor::ReduceOp);

fn reductions(t: &mut Runner, rng: &mut Rng) {
    let shape = [5, 3, 7];
    for axes in [&[0isize][..], &[1], &[-1], &[0, 2], &[]] {
        for keepdim in [false, true] {
            let x = Input::random(rng, &shape);
            let resolved: Vec<usize> = if axes.is_empty() {
                vec![0, 1, 2]
            } else {
                axes.iter()
                    .map(|&a| if a < 0 { (a + 3) as usize } else { a as usize })
                    .collect()
            };
            let cases: [ReduceCase; 4] = [
                ("sum", |g| g.iter().sum(), keel::tensor::ReduceOp::Sum),
                (
                    "mean",
                    |g| g.iter().sum::<f64>() / g.len() as f64,
                    keel::tensor::ReduceOp::Mean,
                ),
                (
                    "max",
                    |g| r::max_of(g.iter().copied()),
                    keel::tensor::ReduceOp::Max,
                ),
                (
                    "min",
                    |g| r::min_of(g.iter().copied()),
                    keel::tensor::ReduceOp::Min,
                ),
            ];
            for (name, f, op) in cases {
                let (s, want) = r::reduce(&x.f64(), &shape, &resolved, keepdim, f);
                t.check(
                    &format!("{name} {axes:?} keepdim={keepdim}"),
                    std::slice::from_ref(&x),
                    |v| v[0].reduce(op, axes, keepdim),
                    &exp(s, want),
                );
            }
        }
    }
    // A long axis takes the workgroup-per-output kernel on wgpu.
    let x = Input::random(rng, &[3, 4099]);
    let (s, want) = r::reduce(&x.f64(), &[3, 4099], &[1], false, |g| g.iter().sum());
    t.check(
        "sum long axis",
        &[x],
        |v| v[0].sum(&[1], false),
        &exp(s, want),
    );
}

fn argmax(t: &mut Runner, rng: &mut Rng) {
    for (shape, axis) in [(&[5usize, 13][..], 1usize), (&[4, 7], 0), (&[3, 1, 5], 2)] {
        let x = Input::random(rng, shape);
        let (s, idx) = r::reduce(
            &(0..x.data.len()).map(|i| i as f64).collect::<Vec<_>>(),
            shape,
            &[axis],
            false,
            |flat| {
                flat.iter()
                    .copied()
                    .fold((f64::MIN, 0usize, 0usize), |(bv, bi, pos), i| {
                        let v = x.data[i as usize] as f64;
                        if v > bv {
                            (v, pos, pos + 1)
                        } else {
                            (bv, bi, pos + 1)
                        }
                    })
                    .1 as f64
            },
        );
        let want: Vec<i32> = idx.iter().map(|&v| v as i32).collect();
        t.check_i32(
            &format!("{shape:?} axis {axis}"),
            &[x],
            |v| v[0].argmax(axis as isize, false),
            &s,
            &want,
        );
    }
    let ties = Input {
        shape: vec![1, 4],
        data: vec![0.5, 2.0, 2.0, -1.0],
    };
    t.check_i32(
        "first of ties",
        &[ties],
        |v| v[0].argmax(-1, true),
        &[1, 1],
        &[1],
    );
}

/// f32 → i32 as Rust's `as` (toward zero, saturating, NaN to 0) and back, on every device.
fn dtype_conversion(t: &mut Runner, rng: &mut Rng) {
    let mut x = Input::random_in(rng, &[5, 13], -1e6, 1e6);
    let specials = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        3e9,
        -3e9,
        -2.7,
        2.7,
        -0.5,
    ];
    x.data[..specials.len()].copy_from_slice(&specials);
    let want: Vec<i32> = x.data.iter().map(|&v| v as i32).collect();
    t.check_i32(
        "f32 to i32",
        std::slice::from_ref(&x),
        |v| v[0].to_dtype(keel::DType::I32),
        &[5, 13],
        &want,
    );
    let back = want.iter().map(|&v| f64::from(v as f32)).collect();
    t.check(
        "f32 to i32 to f32",
        &[x],
        |v| v[0].to_dtype(keel::DType::I32)?.to_dtype(keel::DType::F32),
        &exp(vec![5, 13], back),
    );
}

/// The dropout mask: the same counter-based hash on every device (written again here from
/// O'Neill's PCG hash), and the rate it was asked for.
fn dropout_mask(t: &mut Runner, _rng: &mut Rng) {
    fn pcg(v: u32) -> u32 {
        let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
        let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
        (word >> 22) ^ word
    }
    for (seed, rate, n) in [(7u64, 0.3f32, 100_003usize), (u64::MAX - 5, 0.5, 4099)] {
        let keep = 1.0 / (1.0 - rate);
        let stream = pcg(pcg(seed as u32) ^ (seed >> 32) as u32);
        let want: Vec<f64> = (0..n as u32)
            .map(|i| {
                let u = (pcg(stream ^ pcg(i)) >> 8) as f32 / (1 << 24) as f32;
                if u < rate {
                    0.0
                } else {
                    f64::from(keep)
                }
            })
            .collect();
        let kept = want.iter().filter(|&&v| v > 0.0).count() as f64 / n as f64;
        t.expect(
            (kept - f64::from(1.0 - rate)).abs() < 0.02,
            &format!("rate {rate}: the fraction kept"),
            || format!("{kept}"),
        );
        for device in t.devices().to_vec() {
            let got = keel::Tensor::dropout_mask(rate, seed, [n], &device).and_then(|m| m.to_vec());
            let same = got
                .as_ref()
                .is_ok_and(|g| g.iter().zip(&want).all(|(&a, &b)| f64::from(a) == b));
            t.expect(
                same,
                &format!("{device}: seed {seed}, rate {rate}, {n} elements"),
                || format!("{:?}", got.map(|g| g[..8].to_vec())),
            );
        }
    }
}

fn softmax(t: &mut Runner, rng: &mut Rng) {
    for (shape, scale) in [
        ([1usize, 1usize], 1.0f32),
        ([5, 13], 3.0),
        ([3, 1000], 10.0),
        ([4, 7], 1e4),
    ] {
        let x = Input::random_in(rng, &shape, -scale, scale);
        for log in [false, true] {
            let want = r::softmax(&x.f64(), shape[1], log);
            let name = format!(
                "{} {shape:?} logits ±{scale}",
                if log { "log_softmax" } else { "softmax" }
            );
            t.check(
                &name,
                std::slice::from_ref(&x),
                |v| {
                    if log {
                        v[0].log_softmax()
                    } else {
                        v[0].softmax()
                    }
                },
                &exp(shape.to_vec(), want),
            );
        }
    }
}

fn layout(t: &mut Runner, rng: &mut Rng) {
    let shape = [2usize, 3, 5, 7];
    let x = Input::random(rng, &shape);
    // permute NHWC -> NCHW
    let perm = [0usize, 3, 1, 2];
    let out: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let xs = r::strides(&shape);
    let want: Vec<f64> = (0..x.data.len())
        .map(|i| {
            let idx = r::unravel(i, &out);
            x.data[idx
                .iter()
                .enumerate()
                .map(|(d, &c)| c * xs[perm[d]])
                .sum::<usize>()] as f64
        })
        .collect();
    t.check(
        "permute",
        std::slice::from_ref(&x),
        |v| v[0].permute(&perm),
        &exp(out, want),
    );
    // broadcast [3, 1, 7] -> [2, 3, 5, 7]
    let b = Input::random(rng, &[3, 1, 7]);
    let want: Vec<f64> = (0..shape.iter().product::<usize>())
        .map(|i| {
            let idx = r::unravel(i, &shape);
            b.data[idx[1] * 7 + idx[3]] as f64
        })
        .collect();
    t.check(
        "broadcast_to",
        &[b],
        |v| v[0].broadcast_to(shape),
        &exp(shape.to_vec(), want),
    );
    // transpose of a matrix
    let m = Input::random(rng, &[7, 13]);
    let want: Vec<f64> = (0..91)
        .map(|i| m.data[(i % 7) * 13 + i / 7] as f64)
        .collect();
    t.check(
        "transpose",
        &[m],
        |v| v[0].transpose(0, 1),
        &exp(vec![13, 7], want),
    );
    // slice
    let ranges = [1..2, 0..3, 2..5];
    let out = vec![1, 3, 3, 7];
    let want: Vec<f64> = (0..63)
        .map(|i| {
            let idx = r::unravel(i, &out);
            x.data[(idx[0] + 1) * xs[0] + idx[1] * xs[1] + (idx[2] + 2) * xs[2] + idx[3]] as f64
        })
        .collect();
    t.check(
        "slice",
        std::slice::from_ref(&x),
        |v| v[0].slice(&ranges),
        &exp(out, want),
    );
    // narrow on the last axis
    let want: Vec<f64> = (0..2 * 3 * 5 * 3)
        .map(|i| {
            let idx = r::unravel(i, &[2, 3, 5, 3]);
            x.data[idx[0] * xs[0] + idx[1] * xs[1] + idx[2] * xs[2] + idx[3] + 4] as f64
        })
        .collect();
    t.check(
        "narrow",
        std::slice::from_ref(&x),
        |v| v[0].narrow(-1, 4, 3),
        &exp(vec![2, 3, 5, 3], want),
    );
    // concat along axis 1 and along the last axis
    let a = Input::random(rng, &[2, 3, 4]);
    let b = Input::random(rng, &[2, 1, 4]);
    let want: Vec<f64> = (0..2)
        .flat_map(|n| {
            a.data[n * 12..n * 12 + 12]
                .iter()
                .chain(&b.data[n * 4..n * 4 + 4])
                .map(|&v| v as f64)
                .collect::<Vec<_>>()
        })
        .collect();
    t.check(
        "concat axis 1",
        &[a, b],
        |v| Tensor::concat(&[&v[0], &v[1]], 1),
        &exp(vec![2, 4, 4], want),
    );
    let a = Input::random(rng, &[3, 2]);
    let b = Input::random(rng, &[3, 5]);
    let want: Vec<f64> = (0..3)
        .flat_map(|i| {
            a.data[i * 2..i * 2 + 2]
                .iter()
                .chain(&b.data[i * 5..i * 5 + 5])
                .map(|&v| v as f64)
                .collect::<Vec<_>>()
        })
        .collect();
    t.check(
        "concat last axis",
        &[a, b],
        |v| Tensor::concat(&[&v[0], &v[1]], -1),
        &exp(vec![3, 7], want),
    );
    // pad (ZeroPadding2D-style on H and W, plus a constant on channels)
    let p = Input::random(rng, &[1, 3, 2, 2]);
    let pads = [(0, 0), (1, 2), (0, 1), (1, 0)];
    let out = vec![1, 6, 3, 3];
    let want: Vec<f64> = (0..54)
        .map(|i| {
            let idx = r::unravel(i, &out);
            let (h, w, c) = (idx[1] as isize - 1, idx[2] as isize, idx[3] as isize - 1);
            if (0..3).contains(&h) && (0..2).contains(&w) && (0..2).contains(&c) {
                p.data[(h * 4 + w * 2 + c) as usize] as f64
            } else {
                -0.5
            }
        })
        .collect();
    t.check("pad", &[p], |v| v[0].pad(&pads, -0.5), &exp(out, want));
    // reshape shares data
    let q = Input::random(rng, &[6, 5]);
    let want = q.f64();
    t.check(
        "reshape",
        &[q],
        |v| v[0].reshape([3, 10]),
        &exp(vec![3, 10], want),
    );
}

fn batch_norm(t: &mut Runner, rng: &mut Rng) {
    let x = Input::random(rng, &[5, 3, 3, 7]);
    check_batch_norm(t, rng, x);
}

/// The per-channel passes of training-mode batch normalisation (statistics, the backward sums,
/// the input gradient's combination) on every device against f64 sums, on a shape whose pixel
/// count crosses the CPU's 64-pixel blocks, with a mean 50× the spread.
fn batch_norm_training_passes(t: &mut Runner, rng: &mut Rng) {
    let shape = [3usize, 7, 5, 19];
    let c = 19;
    let mut x = Input::random(rng, &shape);
    x.data
        .iter_mut()
        .enumerate()
        .for_each(|(i, v)| *v += 25.0 * (i % c) as f32 - 100.0);
    let g = Input::random(rng, &shape);
    let per_channel =
        |v: &[f64], ch: usize| v.iter().skip(ch).step_by(c).copied().collect::<Vec<_>>();
    let (x64, g64) = (x.f64(), g.f64());
    let mean: Vec<f64> = (0..c)
        .map(|ch| per_channel(&x64, ch).iter().sum::<f64>() / (x64.len() / c) as f64)
        .collect();
    let mut moments = mean.clone();
    moments.extend((0..c).map(|ch| {
        let xs = per_channel(&x64, ch);
        xs.iter().map(|v| (v - mean[ch]).powi(2)).sum::<f64>() / xs.len() as f64
    }));
    t.check(
        "channel_moments [3, 7, 5, 19], mean far from 0",
        &[x.clone()],
        |v| {
            let (m, var) = v[0].channel_moments()?;
            Tensor::concat(&[&m, &var], 0)
        },
        &exp(vec![2 * c], moments),
    );
    let centre = Input::random(rng, &[c]);
    let mut sums: Vec<f64> = (0..c)
        .map(|ch| per_channel(&g64, ch).iter().sum())
        .collect();
    sums.extend((0..c).map(|ch| {
        let (gs, xs) = (per_channel(&g64, ch), per_channel(&x64, ch));
        let k = centre.data[ch] as f64;
        gs.iter().zip(&xs).map(|(g, x)| g * (x - k)).sum::<f64>()
    }));
    t.check(
        "channel_grad_sums [3, 7, 5, 19]",
        &[g.clone(), x.clone(), centre.clone()],
        |v| {
            let (sum, dot) = v[0].channel_grad_sums(&v[1], &v[2], None)?;
            Tensor::concat(&[&sum, &dot], 0)
        },
        &exp(vec![2 * c], sums),
    );
    let (a, b, k) = (
        Input::random(rng, &[c]),
        Input::random(rng, &[c]),
        Input::random(rng, &[c]),
    );
    // a · g + b · x + k per channel, in f64.
    let combined = |g: &[f64], x: &[f64]| -> Vec<f64> {
        let coefficient = |v: &Input, i: usize| v.data[i % c] as f64;
        let terms = g.iter().zip(x).enumerate();
        terms
            .map(|(i, (g, x))| coefficient(&a, i) * g + coefficient(&b, i) * x + coefficient(&k, i))
            .collect()
    };
    let want = combined(&g64, &x64);
    t.check(
        "channel_combine [3, 7, 5, 19]",
        &[g.clone(), x, a.clone(), b.clone(), k.clone()],
        |v| v[0].channel_combine(&v[1], (&v[2], &v[3], &v[4]), None),
        &exp(shape.to_vec(), want),
    );
    // Through an activation after x · scale + shift: inputs spread across every kink.
    let x = Input::random_in(rng, &shape, -8.0, 8.0);
    let scale = Input::random_in(rng, &[c], 0.5, 1.5);
    let shift = Input::random(rng, &[c]);
    let x64 = x.f64();
    for act in [
        Activation::Relu,
        Activation::Relu6,
        Activation::Silu,
        Activation::HardSwish,
    ] {
        // g′ = g · act′(x · scale + shift), in f64.
        let g_through: Vec<f64> = g64
            .iter()
            .zip(&x64)
            .enumerate()
            .map(|(i, (&g, &x))| {
                let ch = i % c;
                let z = x * scale.data[ch] as f64 + shift.data[ch] as f64;
                g * r::activation_derivative(act, z)
            })
            .collect();
        let mut sums: Vec<f64> = (0..c)
            .map(|ch| per_channel(&g_through, ch).iter().sum())
            .collect();
        sums.extend((0..c).map(|ch| {
            let (gs, xs) = (per_channel(&g_through, ch), per_channel(&x64, ch));
            let k = centre.data[ch] as f64;
            gs.iter().zip(&xs).map(|(g, x)| g * (x - k)).sum::<f64>()
        }));
        fn through(v: &[Tensor], activation: Activation) -> keel::tensor::AffineActivation<'_> {
            keel::tensor::AffineActivation {
                scale: &v[0],
                shift: &v[1],
                activation,
            }
        }
        t.check(
            &format!("channel_grad_sums through {act:?}"),
            &[
                scale.clone(),
                shift.clone(),
                g.clone(),
                x.clone(),
                centre.clone(),
            ],
            |v| {
                let (sum, dot) = v[2].channel_grad_sums(&v[3], &v[4], Some(through(v, act)))?;
                Tensor::concat(&[&sum, &dot], 0)
            },
            &exp(vec![2 * c], sums),
        );
        let want = combined(&g_through, &x64);
        t.check(
            &format!("channel_combine through {act:?}"),
            &[
                scale.clone(),
                shift.clone(),
                g.clone(),
                x.clone(),
                a.clone(),
                b.clone(),
                k.clone(),
            ],
            |v| v[2].channel_combine(&v[3], (&v[4], &v[5], &v[6]), Some(through(v, act))),
            &exp(shape.to_vec(), want),
        );
    }
}

/// Batch normalisation of NHWC `x` in inference form, plain and with a fused ReLU, ReLU6,
/// SiLU or hard-swish,
/// with random statistics, on every device against the reference.
fn check_batch_norm(t: &mut Runner, rng: &mut Rng, x: Input) {
    let c = *x.shape.last().expect("NHWC");
    let gamma = Input::random(rng, &[c]);
    let beta = Input::random(rng, &[c]);
    let mean = Input::random(rng, &[c]);
    let var = Input::random_in(rng, &[c], 0.1, 2.0);
    let eps = 1e-3;
    for act in [
        Activation::None,
        Activation::Relu,
        Activation::Relu6,
        Activation::Silu,
        Activation::HardSwish,
    ] {
        let want: Vec<f64> = x
            .f64()
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let ch = i % c;
                let y = (v - mean.data[ch] as f64) / (var.data[ch] as f64 + eps).sqrt()
                    * gamma.data[ch] as f64
                    + beta.data[ch] as f64;
                match act {
                    Activation::None => y,
                    Activation::Relu => r::nan_max(y, 0.0),
                    Activation::Relu6 => r::nan_min(r::nan_max(y, 0.0), 6.0),
                    Activation::Silu => y / (1.0 + (-y).exp()),
                    Activation::HardSwish => y * r::nan_min(r::nan_max(y + 3.0, 0.0), 6.0) / 6.0,
                }
            })
            .collect();
        let inputs = [
            x.clone(),
            gamma.clone(),
            beta.clone(),
            mean.clone(),
            var.clone(),
        ];
        t.check(
            &format!("batch_norm {act:?}"),
            &inputs,
            |v| v[0].batch_norm_act(&v[1], &v[2], &v[3], &v[4], eps as f32, act),
            &exp(x.shape.clone(), want),
        );
    }
}

/// Bad input gives an error naming the op and the shapes, on every device, never a panic.
fn bad_input(t: &mut Runner, _rng: &mut Rng) {
    for device in t.devices().to_vec() {
        let z = |s: &[usize]| Tensor::zeros(s.to_vec(), &device).unwrap();
        let cases: Vec<(&str, keel::Result<Tensor>, &[&str])> = vec![
            (
                "matmul inner dims",
                z(&[2, 3]).matmul(&z(&[4, 5])),
                &["matmul", "[2, 3]", "[4, 5]"],
            ),
            (
                "conv channels",
                z(&[1, 8, 8, 3]).conv2d(&z(&[3, 3, 4, 8]), &Conv2dOptions::default()),
                &["conv2d", "[1, 8, 8, 3]", "[3, 3, 4, 8]"],
            ),
            (
                "conv rank",
                z(&[8, 8, 3]).conv2d(&z(&[3, 3, 3, 8]), &Conv2dOptions::default()),
                &["conv2d", "[8, 8, 3]"],
            ),
            (
                "batch statistics without a pixel axis",
                z(&[3]).channel_moments().map(|(mean, _)| mean),
                &["channel_moments", "at least one pixel", "[3]"],
            ),
            (
                "batch-norm gradient of another shape",
                z(&[2, 4, 4, 3])
                    .channel_grad_sums(&z(&[2, 4, 3, 3]), &z(&[3]), None)
                    .map(|(sum, _)| sum),
                &["channel_grad_sums", "[2, 4, 4, 3]", "[2, 4, 3, 3]"],
            ),
            (
                "batch-norm coefficients per channel",
                z(&[2, 4, 4, 3]).channel_combine(
                    &z(&[2, 4, 4, 3]),
                    (&z(&[3]), &z(&[4]), &z(&[3])),
                    None,
                ),
                &["channel_combine", "3 values", "[4]"],
            ),
            (
                "window too big",
                z(&[1, 2, 2, 1]).conv2d(&z(&[3, 3, 1, 1]), &Conv2dOptions::default()),
                &["conv2d", "does not fit"],
            ),
            (
                "broadcast",
                z(&[2, 3]).add(&z(&[4])),
                &["add", "[2, 3]", "[4]"],
            ),
            (
                "zero-sized",
                Tensor::zeros([0, 3], &device),
                &["zero-sized", "[0, 3]"],
            ),
            (
                "reshape",
                z(&[2, 3]).reshape([4, 2]),
                &["reshape", "[2, 3]", "[4, 2]"],
            ),
            ("bias", z(&[2, 3]).bias_add(&z(&[2])), &["bias_add", "[2]"]),
            ("axis", z(&[2, 3]).sum(&[2], false), &["sum", "axis 2"]),
            (
                "pool stride 0",
                z(&[1, 4, 4, 1]).max_pool2d(&Pool2dOptions::new(2).stride(0)),
                &["max_pool2d", "stride"],
            ),
            (
                "from_vec length",
                Tensor::from_vec(vec![1.0; 5], [2, 3], &device),
                &["from_vec", "5 values", "[2, 3]"],
            ),
            (
                "dtype",
                Tensor::from_i32(vec![1, 2], [2], &device).unwrap().relu(),
                &["unary", "f32", "i32"],
            ),
        ];
        for (name, result, words) in cases {
            let msg = match result {
                Ok(_) => String::from("<no error>"),
                Err(e) => e.to_string(),
            };
            let ok = words.iter().all(|w| msg.contains(w));
            t.expect(ok, &format!("{name} on {device}"), || {
                format!("error {msg:?} should mention {words:?}")
            });
        }
    }
    if let (Some(cpu), Some(gpu)) = (t.devices().first().cloned(), t.devices().get(1).cloned()) {
        let r = Tensor::zeros([2], &cpu)
            .unwrap()
            .add(&Tensor::zeros([2], &gpu).unwrap());
        t.expect(
            matches!(r, Err(keel::Error::DeviceMismatch { .. })),
            "device mismatch",
            || format!("{r:?}"),
        );
    }
}

/// Tensors bigger than one storage binding (128 MiB on lavapipe) are processed in chunks.
fn larger_than_a_binding(t: &mut Runner, rng: &mut Rng) {
    let Some(gpu) = t.devices().iter().find(|d| d.is_wgpu()).cloned() else {
        return;
    };
    let shape = [9usize, 1024, 1024, 4]; // 151 MB of f32
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let scale = rng.values(4, -2.0, 2.0);
    // Gradients of the same 1×1 depthwise convolution with dy = x: dx = x · w per channel, and
    // dw[c] = Σ x² over channel c; and of a 1×1 average pool: dx = dy.
    let grouped = Conv2dOptions::default().groups(4);
    let kernel_shape = Shape::new([1, 1, 1, 4]);
    // relu, depthwise, its input and kernel gradients, the pooling gradient.
    type Outputs = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);
    let run = || -> keel::Result<Outputs> {
        let x = Tensor::from_slice(&data, shape, &gpu)?;
        let relu = x.relu()?.to_vec()?;
        let w = Tensor::from_slice(&scale, [1, 1, 4, 1], &gpu)?;
        let dw = x
            .depthwise_conv2d(&w, &Conv2dOptions::default())?
            .to_vec()?;
        let w4 = w.reshape(kernel_shape.clone())?;
        let grad_x = x
            .conv2d_backward_input(&w4, x.shape(), &grouped)?
            .to_vec()?;
        let grad_w = x
            .conv2d_backward_kernel(&x, &kernel_shape, &grouped)?
            .to_vec()?;
        let pooled = x
            .pool2d_backward(&x, &Pool2dOptions::new(1), keel::tensor::PoolOp::Avg)?
            .to_vec()?;
        Ok((relu, dw, grad_x, grad_w, pooled))
    };
    match run() {
        Err(e) => t.expect(false, "151 MB relu, depthwise and gradients", || {
            format!("error: {e}")
        }),
        Ok((relu, dw, grad_x, grad_w, pooled)) => {
            let gx_ok = grad_x
                .iter()
                .zip(&data)
                .enumerate()
                .all(|(i, (&g, &x))| (g - x * scale[i % 4]).abs() <= 1e-6);
            t.expect(gx_ok, "151 MB depthwise input gradient", || {
                "wrong values".into()
            });
            let mut sums = [0f64; 4];
            data.iter()
                .enumerate()
                .for_each(|(i, &v)| sums[i % 4] += f64::from(v) * f64::from(v));
            let gw_ok = grad_w
                .iter()
                .zip(sums)
                .all(|(&g, s)| (f64::from(g) - s).abs() <= 1e-4 * s);
            t.expect(gw_ok, "151 MB depthwise kernel gradient", || {
                format!("{grad_w:?} vs {sums:?}")
            });
            t.expect(pooled == data, "151 MB average-pool gradient", || {
                "wrong values".into()
            });
            let relu_ok = relu.iter().zip(&data).all(|(&g, &x)| g == x.max(0.0));
            t.expect(relu_ok, "151 MB relu", || "wrong values".into());
            let dw_ok = dw
                .iter()
                .zip(&data)
                .enumerate()
                .all(|(i, (&g, &x))| (g - x * scale[i % 4]).abs() <= 1e-6);
            t.expect(dw_ok, "151 MB depthwise 1x1", || "wrong values".into());
        }
    }
}

/// Freed CPU buffers are kept up to the limit and reused by the next output of their length,
/// which is then fully overwritten.
fn cpu_cache(t: &mut Runner, rng: &mut Rng) {
    use keel::tensor::cpu_cache;
    const MIB: usize = 1 << 20;
    let cpu = keel::Device::cpu();
    let n = 2 * MIB / 4; // a 2 MiB tensor
    let x = Tensor::from_vec(rng.values(n, -1.0, 1.0), [n], &cpu).unwrap();
    let want: Vec<f32> = x.to_vec().unwrap().iter().map(|v| v.max(0.0)).collect();
    cpu_cache::clear();
    drop(x.relu().unwrap());
    let held = cpu_cache::cached_bytes();
    t.expect(
        held == 2 * MIB,
        "cpu_cache keeps a freed 2 MiB output",
        || format!("{held} bytes cached"),
    );
    let again = x.relu().unwrap(); // takes the cached buffer
    let held = cpu_cache::cached_bytes();
    t.expect(held == 0, "cpu_cache hands the buffer out again", || {
        format!("{held} bytes still cached")
    });
    t.expect(
        again.to_vec().unwrap() == want,
        "cpu_cache reused buffer",
        || "relu into a reused buffer differs".into(),
    );
    // A limit below the freed buffer: it is not kept.
    cpu_cache::set_limit(MIB);
    drop(again);
    let held = cpu_cache::cached_bytes();
    t.expect(held == 0, "cpu_cache limit", || {
        format!("{held} bytes cached")
    });
    // Room for 3 MiB: 2 + 1 MiB fit, then a 3 MiB buffer evicts both.
    cpu_cache::set_limit(3 * MIB);
    let pairs = x.reshape([n / 2, 2]).unwrap();
    let (a, b) = (x.relu().unwrap(), pairs.sum(&[1], false).unwrap());
    drop(a);
    drop(b);
    let held = cpu_cache::cached_bytes();
    t.expect(
        held == 3 * MIB,
        "cpu_cache keeps two under the limit",
        || format!("{held} bytes cached"),
    );
    drop(Tensor::zeros([3 * MIB / 4], &cpu).unwrap());
    let held = cpu_cache::cached_bytes();
    let _fresh = x.relu().unwrap(); // finds no 2 MiB buffer if it was evicted
    let still = cpu_cache::cached_bytes();
    t.expect(
        held == 3 * MIB && still == 3 * MIB,
        "cpu_cache evicts to make room",
        || format!("{held} bytes cached, then {still}"),
    );
    cpu_cache::set_limit(cpu_cache::DEFAULT_LIMIT);
    cpu_cache::clear();
}
