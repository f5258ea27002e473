//! NaN and ±∞ through every op on every device, against f64 references with PyTorch's
//! semantics: NaN propagates through ReLU, ReLU6, clamping, `maximum`/`minimum`, max-pooling and
//! the reductions (a NaN is the maximum and the minimum of anything it is among), and the
//! devices agree element by element on which outputs are NaN, +∞ or −∞.
//!
//! Zero padding takes part in a convolution as zeros (`conv(pad(x), w)`), so a non-finite
//! weight reaches every output whose window holds that tap, padded or not.

use crate::harness::{Expected, Input, Rng, Runner};
use crate::reference as r;
use keel::tensor::{BinaryOp, ReduceOp};
use keel::{Conv2dOptions, Padding, Tensor};

/// About one element in six is NaN, +∞ or −∞: most outputs of a short reduction still see one.
const FRACTION: f32 = 0.16;

fn exp(shape: Vec<usize>, data: Vec<f64>) -> Expected {
    Expected { shape, data }
}

/// Every elementwise function of one tensor.
pub fn unary(t: &mut Runner, rng: &mut Rng) {
    type F = fn(&Tensor) -> keel::Result<Tensor>;
    type G = fn(f64) -> f64;
    let ops: [(&str, F, G); 21] = [
        ("relu", Tensor::relu, |x| r::nan_max(x, 0.0)),
        ("relu6", Tensor::relu6, |x| {
            r::nan_min(r::nan_max(x, 0.0), 6.0)
        }),
        ("sigmoid", Tensor::sigmoid, |x| 1.0 / (1.0 + (-x).exp())),
        ("tanh", Tensor::tanh, f64::tanh),
        ("exp", Tensor::exp, f64::exp),
        ("log", Tensor::log, f64::ln),
        ("sqrt", Tensor::sqrt, f64::sqrt),
        ("neg", Tensor::neg, |x| -x),
        ("abs", Tensor::abs, f64::abs),
        ("affine", |x| x.affine(2.0, -1.0), |x| 2.0 * x - 1.0),
        (
            "maximum_scalar",
            |x| x.maximum_scalar(0.25),
            |x| r::nan_max(x, 0.25),
        ),
        (
            "minimum_scalar",
            |x| x.minimum_scalar(0.25),
            |x| r::nan_min(x, 0.25),
        ),
        (
            "clamp",
            |x| x.clamp(-0.25, 0.5),
            |x| r::nan_min(r::nan_max(x, -0.25), 0.5),
        ),
        ("pow 2", |x| x.powf(2.0), |x| x.powf(2.0)),
        ("pow 3", |x| x.powf(3.0), |x| x.powf(3.0)),
        (
            "above",
            |x| x.above(0.25),
            |x| f64::from(u8::from(x > 0.25)),
        ),
        ("sign", Tensor::sign, f64::signum),
        // PyTorch: silu(−∞) and hard_swish(−∞) are NaN (−∞ · 0).
        ("silu", Tensor::silu, |x| x * (1.0 / (1.0 + (-x).exp()))),
        ("hard_sigmoid", Tensor::hard_sigmoid, |x| {
            r::nan_min(r::nan_max(x + 3.0, 0.0), 6.0) / 6.0
        }),
        ("hard_swish", Tensor::hard_swish, |x| {
            x * r::nan_min(r::nan_max(x + 3.0, 0.0), 6.0) / 6.0
        }),
        ("gelu", Tensor::gelu, r::gelu),
    ];
    for (name, op, f) in ops {
        let x = Input::with_non_finite(rng, &[7, 13], FRACTION);
        let want = x.f64().into_iter().map(f).collect();
        t.check(name, &[x], |v| op(&v[0]), &exp(vec![7, 13], want));
    }
}

/// Broadcasting binary ops, non-finite values on both sides.
pub fn binary(t: &mut Runner, rng: &mut Rng) {
    type F = fn(f64, f64) -> f64;
    let ops: [(&str, BinaryOp, F); 8] = [
        ("add", BinaryOp::Add, |a, b| a + b),
        ("sub", BinaryOp::Sub, |a, b| a - b),
        ("mul", BinaryOp::Mul, |a, b| a * b),
        ("div", BinaryOp::Div, |a, b| a / b),
        ("maximum", BinaryOp::Max, r::nan_max),
        ("minimum", BinaryOp::Min, r::nan_min),
        ("greater", BinaryOp::Greater, |a, b| {
            f64::from(u8::from(a > b))
        }),
        ("equal", BinaryOp::Equal, |a, b| f64::from(u8::from(a == b))),
    ];
    for (name, op, f) in ops {
        let (sa, sb) = ([5, 1, 7], [3, 7]);
        let a = Input::with_non_finite(rng, &sa, FRACTION);
        let b = Input::with_non_finite(rng, &sb, FRACTION);
        let (s, want) = r::broadcast(&a.f64(), &sa, &b.f64(), &sb, f);
        t.check(name, &[a, b], |x| x[0].binary(&x[1], op), &exp(s, want));
    }
    let x = Input::with_non_finite(rng, &[4, 3, 5], FRACTION);
    let bias = Input::with_non_finite(rng, &[5], FRACTION);
    let (s, want) = r::broadcast(&x.f64(), &x.shape, &bias.f64(), &bias.shape, |a, b| a + b);
    t.check(
        "bias_add",
        &[x, bias],
        |v| v[0].bias_add(&v[1]),
        &exp(s, want),
    );
}

/// GEMMs: a non-finite value poisons its row of A or column of B.
pub fn matmul(t: &mut Runner, rng: &mut Rng) {
    for &(m, k, n) in &[(3, 7, 5), (65, 33, 130), (37, 15, 523)] {
        for (ta, tb) in [(false, false), (true, true)] {
            let a = Input::with_non_finite(rng, &if ta { [k, m] } else { [m, k] }, 0.01);
            let b = Input::with_non_finite(rng, &if tb { [n, k] } else { [k, n] }, 0.01);
            let want = r::matmul(&a.f64(), &b.f64(), 1, m, n, k, ta, tb, false, false);
            t.check(
                &format!("matmul {m}x{k}x{n} ta={ta} tb={tb}"),
                &[a, b],
                |x| x[0].matmul_t(&x[1], ta, tb),
                &exp(vec![m, n], want),
            );
        }
    }
}

/// `x` with `pads` zeros around its height and width (top, bottom, left, right).
fn zero_pad(x: &Input, pads: (usize, usize, usize, usize)) -> Input {
    let [n, h, w, c] = x.shape[..] else {
        panic!("zero_pad takes NHWC")
    };
    let (top, bottom, left, right) = pads;
    let (ph, pw) = (h + top + bottom, w + left + right);
    let mut data = vec![0.0; n * ph * pw * c];
    for b in 0..n {
        for i in 0..h {
            for j in 0..w {
                let from = ((b * h + i) * w + j) * c;
                let to = ((b * ph + i + top) * pw + j + left) * c;
                data[to..to + c].copy_from_slice(&x.data[from..from + c]);
            }
        }
    }
    Input {
        shape: vec![n, ph, pw, c],
        data,
    }
}

/// Input shape, kernel height and width, output channels, stride, groups, and the padding
/// (top, bottom, left, right).
type ConvCase = (
    &'static [usize],
    usize,
    usize,
    usize,
    usize,
    (usize, usize, usize, usize),
);

/// Convolutions (dense, grouped, depthwise; padded and not) with non-finite inputs, then with
/// non-finite weights; and both gradients with a non-finite output gradient.
pub fn conv2d(t: &mut Runner, rng: &mut Rng) {
    let explicit = |top, bottom, left, right| Padding::Explicit {
        top,
        bottom,
        left,
        right,
    };
    let cases: [ConvCase; 9] = [
        (&[2, 7, 6, 3], 3, 8, 1, 1, (1, 1, 1, 1)),
        (&[1, 9, 9, 64], 3, 64, 1, 1, (1, 2, 0, 1)), // Winograd's refusal on the CPU (AVX-512)
        (&[3, 8, 9, 64], 3, 64, 1, 1, (1, 1, 1, 1)), // the same over several tasks
        (&[1, 6, 7, 16], 3, 16, 1, 1, (1, 2, 0, 1)), // the CPU's direct kernel (AVX-512)
        (&[1, 9, 9, 4], 3, 6, 2, 1, (0, 1, 0, 1)),
        (&[2, 5, 5, 2], 1, 5, 1, 1, (0, 0, 0, 0)),
        (&[1, 8, 7, 6], 3, 4, 1, 2, (2, 0, 1, 1)),
        (&[2, 7, 7, 5], 3, 5, 1, 5, (1, 1, 1, 1)),
        (&[1, 9, 8, 4], 3, 4, 2, 4, (0, 1, 1, 1)),
    ];
    for (shape, k, out, stride, groups, pads) in cases {
        let (top, bottom, left, right) = pads;
        let opts = Conv2dOptions::default()
            .stride(stride)
            .groups(groups)
            .padding(explicit(top, bottom, left, right));
        let valid = r::Conv::new(stride, 1, Padding::Valid, groups);
        let kernel_shape = [k, k, shape[3] / groups, out];
        // A few non-finite values: most outputs they reach see one alone, ±∞ rather than NaN.
        let variants = [
            ("inputs", FRACTION, 0.0),
            ("weights", 0.0, 0.1),
            ("inputs, a few", 0.002, 0.0),
            ("weights, a few", 0.0, 0.001),
        ];
        for (what, x_fraction, w_fraction) in variants {
            let x = Input::with_non_finite(rng, shape, x_fraction);
            let w = Input::with_non_finite(rng, &kernel_shape, w_fraction);
            let padded = zero_pad(&x, pads);
            let (s, want) = r::conv2d(&padded.f64(), &padded.shape, &w.f64(), &w.shape, &valid);
            let case =
                format!("conv {shape:?} k{k} stride {stride} groups {groups}, non-finite {what}");
            t.check(&case, &[x, w], |v| v[0].conv2d(&v[1], &opts), &exp(s, want));
        }
        // Gradients: a non-finite dy reaches the inputs and taps it was made from.
        let x = Input::random(rng, shape);
        let w = Input::random(rng, &kernel_shape);
        let padded = zero_pad(&x, pads);
        let (s, _) = r::conv2d(&padded.f64(), &padded.shape, &w.f64(), &w.shape, &valid);
        let dy = Input::with_non_finite(rng, &s, 0.05);
        let (dx_padded, dw) = r::conv2d_grads(
            &padded.f64(),
            &padded.shape,
            &w.f64(),
            &w.shape,
            &dy.f64(),
            &valid,
        );
        let dx = crop(&dx_padded, &padded.shape, pads);
        let case = format!("conv {shape:?} k{k} stride {stride} groups {groups}, non-finite dy");
        let x_shape = keel::Shape::from(shape.to_vec());
        t.check(
            &format!("{case}: input gradient"),
            &[dy.clone(), w],
            |v| v[0].conv2d_backward_input(&v[1], &x_shape, &opts),
            &exp(shape.to_vec(), dx),
        );
        let w_shape = keel::Shape::from(kernel_shape.to_vec());
        t.check(
            &format!("{case}: kernel gradient"),
            &[dy, x],
            |v| v[0].conv2d_backward_kernel(&v[1], &w_shape, &opts),
            &exp(kernel_shape.to_vec(), dw),
        );
    }
}

/// The inside of a padded NHWC gradient.
fn crop(x: &[f64], padded: &[usize], pads: (usize, usize, usize, usize)) -> Vec<f64> {
    let [n, ph, pw, c] = padded[..] else {
        panic!("crop takes NHWC")
    };
    let (top, bottom, left, right) = pads;
    let mut out = Vec::new();
    for b in 0..n {
        for i in top..ph - bottom {
            for j in left..pw - right {
                let at = ((b * ph + i) * pw + j) * c;
                out.extend_from_slice(&x[at..at + c]);
            }
        }
    }
    out
}

/// Max and average pooling, their gradients, and global pooling.
pub fn pool(t: &mut Runner, rng: &mut Rng) {
    for (shape, size, stride, same) in [
        (&[2, 7, 7, 3][..], 2, 2, false),
        (&[2, 9, 8, 5], 3, 2, true),
        (&[1, 6, 6, 2], 3, 1, true),
    ] {
        for max in [true, false] {
            let x = Input::with_non_finite(rng, shape, FRACTION / 2.0);
            crate::check_pool(t, rng, x, size, stride, same, max);
        }
    }
    let shape = [3, 4, 5, 7];
    let x = Input::with_non_finite(rng, &shape, 0.03);
    let (_, want) = r::reduce(&x.f64(), &shape, &[1, 2], false, |g| {
        r::max_of(g.iter().copied())
    });
    t.check(
        "global max pool",
        std::slice::from_ref(&x),
        |v| v[0].global_max_pool2d(),
        &exp(vec![3, 7], want),
    );
    let (_, want) = r::reduce(&x.f64(), &shape, &[1, 2], false, |g| {
        g.iter().sum::<f64>() / g.len() as f64
    });
    t.check(
        "global average pool",
        &[x],
        |v| v[0].global_avg_pool2d(),
        &exp(vec![3, 7], want),
    );
}

/// Sum, mean, max and min along short and long axes, argmax, softmax and log-softmax.
pub fn reductions(t: &mut Runner, rng: &mut Rng) {
    type F = fn(&[f64]) -> f64;
    let ops: [(&str, ReduceOp, F); 4] = [
        ("sum", ReduceOp::Sum, |g| g.iter().sum()),
        ("mean", ReduceOp::Mean, |g| {
            g.iter().sum::<f64>() / g.len() as f64
        }),
        ("max", ReduceOp::Max, |g| r::max_of(g.iter().copied())),
        ("min", ReduceOp::Min, |g| r::min_of(g.iter().copied())),
    ];
    // The long axis takes the workgroup-per-output kernel on wgpu; a row of only −∞ (or +∞)
    // must reduce to it, not to the largest finite number.
    for (shape, axis, fraction) in [(&[5, 3, 7][..], 1usize, FRACTION), (&[4, 3000], 1, 0.0004)] {
        for (name, op, f) in ops {
            let mut x = Input::with_non_finite(rng, shape, fraction);
            let row = x.data.len() / shape[0];
            let fill = if name == "min" {
                f32::INFINITY
            } else {
                f32::NEG_INFINITY
            };
            x.data[..row].fill(fill);
            let (s, want) = r::reduce(&x.f64(), shape, &[axis], false, f);
            t.check(
                &format!("{name} {shape:?} axis {axis}"),
                std::slice::from_ref(&x),
                |v| v[0].reduce(op, &[axis as isize], false),
                &exp(s, want),
            );
        }
    }
    // argmax: a NaN is the maximum, the first of them wins.
    let shape = [6, 9];
    let x = Input::with_non_finite(rng, &shape, FRACTION);
    let want: Vec<i32> = x
        .data
        .chunks(9)
        .map(|row| {
            (0..9).fold(0, |best, i| {
                if r::ranks_above(row[i] as f64, row[best] as f64) {
                    i
                } else {
                    best
                }
            }) as i32
        })
        .collect();
    t.check_i32("argmax", &[x], |v| v[0].argmax(1, false), &[6], &want);
    for log in [false, true] {
        let mut x = Input::with_non_finite(rng, &[6, 9], 0.04);
        x.data[..9].fill(f32::NEG_INFINITY);
        let want = r::softmax(&x.f64(), 9, log);
        let name = if log { "log_softmax" } else { "softmax" };
        t.check(
            name,
            std::slice::from_ref(&x),
            |v| {
                if log {
                    v[0].log_softmax()
                } else {
                    v[0].softmax()
                }
            },
            &exp(vec![6, 9], want),
        );
    }
}

/// Batch normalisation in inference form, plain and with a fused ReLU or ReLU6.
pub fn batch_norm(t: &mut Runner, rng: &mut Rng) {
    let x = Input::with_non_finite(rng, &[3, 4, 3, 5], FRACTION);
    crate::check_batch_norm(t, rng, x);
}
