//! Gradient tests: every backward rule against central finite differences of an f64 reference,
//! on every device (the CPU backend and the wgpu adapter). Each case is one line: the op on
//! `Var`s and the same function in f64. The loss is Σ rᵢ·yᵢ with fixed random weights r, so
//! every output element's gradient is exercised.
//!
//! Then the graph's behaviour (frozen parameters record nothing, no_grad, accumulation, errors)
//! and a small end-to-end training run on both devices.

// Shared with the op tests; not every helper is used here.
mod graph;
#[allow(dead_code)]
#[path = "../ops/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../ops/reference.rs"]
mod reference;
mod training;

use harness::{run_tests, Expected, Input, Rng, Runner, Test};
use keel::autograd::{Param, Var};
use keel::tensor::Activation;
use keel::{Conv2dOptions, Padding, Pool2dOptions, Tensor};
use reference as r;

fn main() {
    let tests: &[(&str, Test)] = &[
        ("matmul", matmul),
        ("elementwise", elementwise),
        ("unary", unary),
        ("reductions", reductions),
        ("layout", layout),
        ("conv2d", conv2d),
        ("pooling", pooling),
        ("softmax_and_losses", softmax_and_losses),
        ("batch_norm_and_dropout", batch_norm_and_dropout),
        (
            "graph_frozen_records_nothing",
            graph::frozen_records_nothing,
        ),
        (
            "graph_no_grad_and_accumulation",
            graph::no_grad_and_accumulation,
        ),
        ("graph_bad_input", graph::bad_input),
        ("training_two_layer_cnn", training::two_layer_cnn),
    ];
    run_tests(tests, 104_729);
}

/// Checks the gradients of Σ rᵢ·f(inputs)ᵢ with respect to every input: `op` computes f on
/// `Var`s of trainable parameters, `reference` computes f in f64; the expected gradients are
/// central differences of the reference.
fn grad_case(
    t: &mut Runner,
    rng: &mut Rng,
    case: &str,
    inputs: &[Input],
    op: impl Fn(&[Var]) -> keel::autograd::Result<Var>,
    reference: impl Fn(&[Vec<f64>]) -> Vec<f64>,
) {
    let x64: Vec<Vec<f64>> = inputs.iter().map(Input::f64).collect();
    let outputs = reference(&x64).len();
    let weights = Input::random(rng, &[outputs]);
    let w64 = weights.f64();
    let loss =
        |xs: &[Vec<f64>]| -> f64 { reference(xs).iter().zip(&w64).map(|(y, w)| y * w).sum() };
    let mut want = Vec::new();
    for j in 0..x64.len() {
        for i in 0..x64[j].len() {
            let h = 1e-6 * x64[j][i].abs().max(1.0);
            let mut plus = x64.clone();
            plus[j][i] += h;
            let mut minus = x64.clone();
            minus[j][i] -= h;
            want.push((loss(&plus) - loss(&minus)) / (2.0 * h));
        }
    }
    let n = inputs.len();
    let mut all = inputs.to_vec();
    all.push(weights);
    let total = want.len();
    t.check(
        case,
        &all,
        |tensors: &[Tensor]| -> keel::autograd::Result<Tensor> {
            let params: Vec<Param> = tensors[..n]
                .iter()
                .enumerate()
                .map(|(i, x)| Param::new(format!("input{i}"), x.clone()))
                .collect();
            let vars: Vec<Var> = params.iter().map(Param::var).collect();
            let y = op(&vars)?;
            let loss = y
                .reshape([outputs])?
                .mul(&Var::constant(tensors[n].clone()))?
                .sum_all()?;
            let grads = loss.backward()?;
            let flat = params
                .iter()
                .map(|p| match grads.get(p) {
                    Some(g) => g.reshape([g.elem_count()]),
                    None => Tensor::zeros([p.value().elem_count()], p.value().device()),
                })
                .collect::<keel::Result<Vec<_>>>()?;
            let refs: Vec<&Tensor> = flat.iter().collect();
            Ok(Tensor::concat(&refs, 0)?)
        },
        &Expected {
            shape: vec![total],
            data: want,
        },
    );
}

fn matmul(t: &mut Runner, rng: &mut Rng) {
    for &(m, k, n) in &[(1, 1, 1), (3, 7, 5), (13, 4, 1)] {
        let a = Input::random(rng, &[m, k]);
        let b = Input::random(rng, &[k, n]);
        grad_case(
            t,
            rng,
            &format!("matmul {m}x{k}x{n}"),
            &[a, b],
            |v| v[0].matmul(&v[1]),
            move |x| r::matmul(&x[0], &x[1], 1, m, n, k, false, false, false, false),
        );
    }
    // A batch against a shared matrix (a Dense layer on [batch, time, features]).
    let a = Input::random(rng, &[2, 3, 5]);
    let b = Input::random(rng, &[5, 7]);
    grad_case(
        t,
        rng,
        "matmul batched, shared rhs",
        &[a, b],
        |v| v[0].matmul(&v[1]),
        |x| r::matmul(&x[0], &x[1], 2, 3, 7, 5, false, false, false, true),
    );
    let x = Input::random(rng, &[5, 3]);
    let bias = Input::random(rng, &[3]);
    grad_case(
        t,
        rng,
        "bias_add",
        &[x, bias],
        |v| v[0].bias_add(&v[1]),
        |x| r::broadcast(&x[0], &[5, 3], &x[1], &[3], |a, b| a + b).1,
    );
}

fn elementwise(t: &mut Runner, rng: &mut Rng) {
    type F = fn(&Var, &Var) -> keel::autograd::Result<Var>;
    type G = fn(f64, f64) -> f64;
    let ops: [(&str, F, G); 6] = [
        ("add", |a, b| a.add(b), |a, b| a + b),
        ("sub", |a, b| a.sub(b), |a, b| a - b),
        ("mul", |a, b| a.mul(b), |a, b| a * b),
        ("div", |a, b| a.div(b), |a, b| a / b),
        ("maximum", |a, b| a.maximum(b), f64::max),
        ("minimum", |a, b| a.minimum(b), f64::min),
    ];
    let shapes: [(&[usize], &[usize]); 3] =
        [(&[3, 7], &[3, 7]), (&[5, 1, 3], &[4, 1]), (&[1], &[2, 3])];
    for (sa, sb) in shapes {
        for (name, op, f) in ops {
            let a = Input::random(rng, sa);
            let b = if name == "div" {
                Input::random_in(rng, sb, 0.5, 2.0)
            } else {
                Input::random(rng, sb)
            };
            let (sa, sb) = (sa.to_vec(), sb.to_vec());
            grad_case(
                t,
                rng,
                &format!("{name} {sa:?} {sb:?}"),
                &[a, b],
                |v| op(&v[0], &v[1]),
                move |x| r::broadcast(&x[0], &sa, &x[1], &sb, f).1,
            );
        }
    }
}

fn unary(t: &mut Runner, rng: &mut Rng) {
    type F = fn(&Var) -> keel::autograd::Result<Var>;
    type G = fn(f64) -> f64;
    let ops: [(&str, F, G, f32, f32); 17] = [
        ("relu", |x| x.relu(), |x| x.max(0.0), -2.0, 2.0),
        ("relu6", |x| x.relu6(), |x| x.clamp(0.0, 6.0), -3.0, 9.0),
        (
            "sigmoid",
            |x| x.sigmoid(),
            |x| 1.0 / (1.0 + (-x).exp()),
            -4.0,
            4.0,
        ),
        ("tanh", |x| x.tanh(), f64::tanh, -3.0, 3.0),
        ("exp", |x| x.exp(), f64::exp, -2.0, 2.0),
        ("log", |x| x.log(), f64::ln, 0.2, 3.0),
        ("sqrt", |x| x.sqrt(), f64::sqrt, 0.2, 3.0),
        ("neg", |x| x.neg(), |x| -x, -1.0, 1.0),
        ("abs", |x| x.abs(), f64::abs, -1.0, 1.0),
        (
            "affine",
            |x| x.affine(2.5, -1.0),
            |x| 2.5 * x - 1.0,
            -1.0,
            1.0,
        ),
        ("add_scalar", |x| x.add_scalar(0.5), |x| x + 0.5, -1.0, 1.0),
        (
            "mul_scalar",
            |x| x.mul_scalar(-3.0),
            |x| -3.0 * x,
            -1.0,
            1.0,
        ),
        ("powf 3", |x| x.powf(3.0), |x| x * x * x, -1.5, 1.5),
        ("silu", |x| x.silu(), |x| x / (1.0 + (-x).exp()), -4.0, 4.0),
        (
            "hard_sigmoid",
            |x| x.hard_sigmoid(),
            |x| (x + 3.0).clamp(0.0, 6.0) / 6.0,
            -5.0,
            5.0,
        ),
        ("gelu", |x| x.gelu(), r::gelu, -3.0, 3.0),
        (
            "hard_swish",
            |x| x.hard_swish(),
            |x| x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
            -5.0,
            5.0,
        ),
    ];
    for (name, op, f, lo, hi) in ops {
        for shape in [&[1][..], &[3, 7]] {
            let x = Input::random_in(rng, shape, lo, hi);
            grad_case(
                t,
                rng,
                &format!("{name} {shape:?}"),
                &[x],
                |v| op(&v[0]),
                move |x| x[0].iter().map(|&v| f(v)).collect(),
            );
        }
    }
}

fn reductions(t: &mut Runner, rng: &mut Rng) {
    let shape = [3usize, 4, 5];
    for (axes, keepdim) in [
        (&[1usize][..], false),
        (&[0, 2], true),
        (&[2], false),
        (&[0, 1, 2], false),
    ] {
        let iaxes: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
        let x = Input::random(rng, &shape);
        for (name, kind) in [("sum", 0), ("mean", 1), ("max", 2), ("min", 3)] {
            let ia = iaxes.clone();
            let ax = axes.to_vec();
            grad_case(
                t,
                rng,
                &format!("{name} {axes:?} keepdim={keepdim}"),
                std::slice::from_ref(&x),
                move |v| match kind {
                    0 => v[0].sum(&ia, keepdim),
                    1 => v[0].mean(&ia, keepdim),
                    2 => v[0].max(&ia, keepdim),
                    _ => v[0].min(&ia, keepdim),
                },
                move |x| {
                    r::reduce(&x[0], &shape, &ax, keepdim, |vals| match kind {
                        0 => vals.iter().sum(),
                        1 => vals.iter().sum::<f64>() / vals.len() as f64,
                        2 => vals.iter().copied().fold(f64::MIN, f64::max),
                        _ => vals.iter().copied().fold(f64::MAX, f64::min),
                    })
                    .1
                },
            );
        }
    }
}

fn layout(t: &mut Runner, rng: &mut Rng) {
    let shape = [2usize, 3, 1, 5];
    let x = Input::random(rng, &shape);
    grad_case(
        t,
        rng,
        "reshape",
        std::slice::from_ref(&x),
        |v| v[0].reshape([6, 5]),
        |x| x[0].clone(),
    );
    grad_case(
        t,
        rng,
        "flatten",
        std::slice::from_ref(&x),
        |v| v[0].flatten(),
        |x| x[0].clone(),
    );
    let perm = [0usize, 3, 1, 2];
    grad_case(
        t,
        rng,
        "permute",
        std::slice::from_ref(&x),
        move |v| v[0].permute(&perm),
        move |x| {
            let out: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
            let st = r::strides(&shape);
            (0..x[0].len())
                .map(|i| {
                    let idx = r::unravel(i, &out);
                    x[0][idx
                        .iter()
                        .enumerate()
                        .map(|(d, &c)| c * st[perm[d]])
                        .sum::<usize>()]
                })
                .collect()
        },
    );
    let a = Input::random(rng, &[2, 3]);
    let b = Input::random(rng, &[2, 4]);
    grad_case(
        t,
        rng,
        "concat",
        &[a, b],
        |v| Var::concat(&[&v[0], &v[1]], 1),
        |x| {
            (0..2)
                .flat_map(|row| {
                    x[0][row * 3..row * 3 + 3]
                        .iter()
                        .chain(&x[1][row * 4..row * 4 + 4])
                        .copied()
                        .collect::<Vec<_>>()
                })
                .collect()
        },
    );
    let m = Input::random(rng, &[4, 5]);
    grad_case(
        t,
        rng,
        "slice",
        std::slice::from_ref(&m),
        |v| v[0].slice(&[1..3, 2..5]),
        |x| {
            (1..3)
                .flat_map(|r| (2..5).map(move |c| (r, c)))
                .map(|(r, c)| x[0][r * 5 + c])
                .collect()
        },
    );
    grad_case(
        t,
        rng,
        "pad",
        &[m],
        |v| v[0].pad(&[(1, 0), (2, 1)], 0.0),
        |x| {
            let mut out = vec![0.0; 5 * 8];
            for r in 0..4 {
                for c in 0..5 {
                    out[(r + 1) * 8 + c + 2] = x[0][r * 5 + c];
                }
            }
            out
        },
    );
}

/// One convolution case: gradients to the input and to the kernel.
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
    let opts = Conv2dOptions::default()
        .stride(stride)
        .dilation(dilation)
        .padding(padding)
        .groups(groups);
    let (xs, ws) = (x.to_vec(), wi.shape.clone());
    grad_case(
        t,
        rng,
        &format!("conv2d x{x:?} k{kernel:?}→{out_c} s{stride} d{dilation} {padding:?} g{groups}"),
        &[xi, wi],
        move |v| v[0].conv2d(&v[1], &opts),
        move |v| r::conv2d(&v[0], &xs, &v[1], &ws, &c).1,
    );
}

fn conv2d(t: &mut Runner, rng: &mut Rng) {
    conv_case(t, rng, &[2, 5, 5, 3], (3, 3), 4, 1, 1, Padding::Valid, 1);
    conv_case(t, rng, &[1, 7, 6, 3], (3, 3), 5, 2, 1, Padding::Same, 1);
    conv_case(t, rng, &[2, 6, 6, 1], (4, 4), 3, 1, 1, Padding::Same, 1); // even kernel, pad (1, 2)
    conv_case(t, rng, &[1, 7, 7, 2], (3, 3), 3, 1, 2, Padding::Valid, 1); // dilation 2
    let explicit = Padding::Explicit {
        top: 2,
        bottom: 0,
        left: 1,
        right: 1,
    };
    conv_case(t, rng, &[1, 5, 5, 2], (3, 3), 2, 2, 1, explicit, 1);
    conv_case(t, rng, &[1, 5, 5, 6], (3, 3), 4, 1, 1, Padding::Same, 2); // groups
    conv_case(t, rng, &[2, 7, 7, 3], (3, 3), 3, 2, 1, Padding::Same, 3); // depthwise, stride 2
    conv_case(t, rng, &[1, 5, 5, 3], (3, 3), 6, 1, 1, Padding::Same, 3); // depthwise, multiplier 2
                                                                         // Depthwise with a 16-channel block and a tail: 3×3 stride 2, and 5×5 dilation 2.
    conv_case(t, rng, &[2, 6, 5, 19], (3, 3), 19, 2, 1, Padding::Same, 19);
    conv_case(t, rng, &[1, 7, 6, 17], (5, 5), 17, 1, 2, Padding::Same, 17);
    // The Keras-layout entry point: kernel [kh, kw, C, multiplier].
    let x = Input::random(rng, &[1, 5, 5, 2]);
    let w = Input::random(rng, &[3, 3, 2, 2]);
    let c = r::Conv::new(1, 1, Padding::Same, 2);
    grad_case(
        t,
        rng,
        "depthwise_conv2d keras layout",
        &[x, w],
        |v| v[0].depthwise_conv2d(&v[1], &Conv2dOptions::default().padding(Padding::Same)),
        move |v| r::conv2d(&v[0], &[1, 5, 5, 2], &v[1], &[3, 3, 1, 4], &c).1,
    );
}

fn pooling(t: &mut Runner, rng: &mut Rng) {
    for (shape, size, stride, same) in [
        (&[1, 7, 7, 3][..], 2, 2, false),
        (&[2, 5, 5, 2], 3, 2, true),
        (&[1, 6, 4, 1], 3, 1, true), // overlapping windows
    ] {
        for max in [true, false] {
            let x = Input::random(rng, shape);
            let opts = Pool2dOptions::new(size).stride(stride).padding(if same {
                Padding::Same
            } else {
                Padding::Valid
            });
            let s = shape.to_vec();
            grad_case(
                t,
                rng,
                &format!(
                    "{} {shape:?} size {size} stride {stride} same={same}",
                    if max { "max_pool" } else { "avg_pool" }
                ),
                &[x],
                move |v| {
                    if max {
                        v[0].max_pool2d(&opts)
                    } else {
                        v[0].avg_pool2d(&opts)
                    }
                },
                move |v| r::pool(&v[0], &s, (size, size), (stride, stride), same, max).1,
            );
        }
    }
    for shape in [[2usize, 3, 5, 3], [1, 1, 1, 4]] {
        let x = Input::random(rng, &shape);
        grad_case(
            t,
            rng,
            &format!("global_avg_pool {shape:?}"),
            std::slice::from_ref(&x),
            |v| v[0].global_avg_pool2d(),
            move |v| {
                r::reduce(&v[0], &shape, &[1, 2], false, |g| {
                    g.iter().sum::<f64>() / g.len() as f64
                })
                .1
            },
        );
        grad_case(
            t,
            rng,
            &format!("global_max_pool {shape:?}"),
            &[x],
            |v| v[0].global_max_pool2d(),
            move |v| {
                r::reduce(&v[0], &shape, &[1, 2], false, |g| {
                    g.iter().copied().fold(f64::MIN, f64::max)
                })
                .1
            },
        );
    }
}

/// f64 mean cross-entropy of logits rows against targets.
fn cross_entropy(logits: &[f64], targets: &[f64], classes: usize) -> f64 {
    let logp = r::softmax(logits, classes, true);
    let rows = logits.len() / classes;
    -logp.iter().zip(targets).map(|(l, t)| l * t).sum::<f64>() / rows as f64
}

fn softmax_and_losses(t: &mut Runner, rng: &mut Rng) {
    for shape in [[1usize, 1], [3, 7], [2, 13]] {
        let x = Input::random_in(rng, &shape, -3.0, 3.0);
        let cols = shape[1];
        grad_case(
            t,
            rng,
            &format!("softmax {shape:?}"),
            std::slice::from_ref(&x),
            |v| v[0].softmax(),
            move |v| r::softmax(&v[0], cols, false),
        );
        grad_case(
            t,
            rng,
            &format!("log_softmax {shape:?}"),
            &[x],
            |v| v[0].log_softmax(),
            move |v| r::softmax(&v[0], cols, true),
        );
    }
    // Sparse labels and soft targets.
    let labels = [2i32, 0, 4];
    let one_hot: Vec<f64> = labels
        .iter()
        .flat_map(|&l| (0..5).map(move |c| f64::from(u8::from(c == l))))
        .collect();
    let logits = Input::random_in(rng, &[3, 5], -3.0, 3.0);
    let targets = one_hot.clone();
    grad_case(
        t,
        rng,
        "sparse_softmax_cross_entropy [3, 5]",
        std::slice::from_ref(&logits),
        move |v| {
            let l = Tensor::from_i32(labels.to_vec(), [3], v[0].tensor().device())?;
            v[0].sparse_softmax_cross_entropy(&l)
        },
        move |v| vec![cross_entropy(&v[0], &targets, 5)],
    );
    let soft = Input::random_in(rng, &[3, 5], 0.0, 0.4);
    let soft64 = soft.f64();
    let soft_data = soft.data.clone();
    grad_case(
        t,
        rng,
        "softmax_cross_entropy soft targets [3, 5]",
        &[logits],
        move |v| {
            let s = Tensor::from_slice(&soft_data, [3, 5], v[0].tensor().device())?;
            v[0].softmax_cross_entropy(&s)
        },
        move |v| vec![cross_entropy(&v[0], &soft64, 5)],
    );
    // Logits of ±1e4: the loss and its gradient stay finite and exact.
    let big = Input {
        shape: vec![2, 3],
        data: vec![1e4, -1e4, 0.0, -1e4, 1e4, 9990.0],
    };
    let want_grad = {
        let p = r::softmax(&big.f64(), 3, false);
        let t = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        p.iter()
            .zip(t)
            .map(|(p, t)| (p - t) / 2.0)
            .collect::<Vec<_>>()
    };
    t.check(
        "cross-entropy gradient at logits of ±1e4",
        &[big],
        |x: &[Tensor]| -> keel::autograd::Result<Tensor> {
            let p = Param::new("logits", x[0].clone());
            let l = Tensor::from_i32(vec![0, 2], [2], x[0].device())?;
            let loss = p.var().sparse_softmax_cross_entropy(&l)?;
            let g = loss.backward()?;
            Ok(g.get(&p).expect("reached").clone())
        },
        &Expected {
            shape: vec![2, 3],
            data: want_grad,
        },
    );
}

fn batch_norm_and_dropout(t: &mut Runner, rng: &mut Rng) {
    // A small batch, and ones whose pixels cross the CPU's 64-pixel blocks with a mean far from
    // 0, alone and followed by each activation (γ up to 4 puts outputs across every kink).
    let cases = [
        ([2usize, 3, 2, 3], 0.0, Activation::None),
        ([2, 9, 4, 5], 20.0, Activation::None),
        ([2, 9, 4, 5], 0.0, Activation::Relu),
        ([2, 9, 4, 5], 0.0, Activation::Relu6),
        ([2, 9, 4, 5], -3.0, Activation::Silu),
        ([2, 9, 4, 5], 3.0, Activation::HardSwish),
    ];
    for (shape, offset, act) in cases {
        let c = shape[3];
        let mut x = Input::random(rng, &shape);
        x.data.iter_mut().for_each(|v| *v += offset);
        let gamma = Input::random_in(rng, &[c], 0.5, 4.0);
        let beta = Input::random(rng, &[c]);
        grad_case(
            t,
            rng,
            &format!("batch_norm_train_act {shape:?}, mean ≈ {offset}, {act:?}"),
            &[x, gamma, beta],
            |v| Ok(v[0].batch_norm_train_act(&v[1], &v[2], 1e-3, act)?.0),
            |v| {
                let n = v[0].len() / c;
                let mean: Vec<f64> = (0..c)
                    .map(|ch| v[0].iter().skip(ch).step_by(c).sum::<f64>() / n as f64)
                    .collect();
                let var: Vec<f64> = (0..c)
                    .map(|ch| {
                        v[0].iter()
                            .skip(ch)
                            .step_by(c)
                            .map(|x| (x - mean[ch]).powi(2))
                            .sum::<f64>()
                            / n as f64
                    })
                    .collect();
                v[0].iter()
                    .enumerate()
                    .map(|(i, x)| {
                        let ch = i % c;
                        let y = (x - mean[ch]) / (var[ch] + 1e-3).sqrt() * v[1][ch] + v[2][ch];
                        r::activation(act, y)
                    })
                    .collect()
            },
        );
    }
    // Dropout: the seeded mask is the same on every device, and the gradient is that mask.
    let x = Input::random(rng, &[4, 25]);
    let mask = {
        let dev = keel::Device::cpu();
        let ones = Var::constant(Tensor::ones([4, 25], &dev).expect("cpu tensor"));
        ones.dropout(0.3, 42)
            .expect("dropout")
            .tensor()
            .to_vec()
            .expect("cpu read")
    };
    let kept = mask.iter().filter(|&&m| m > 0.0).count();
    t.expect(
        (55..=85).contains(&kept)
            && mask
                .iter()
                .all(|&m| m == 0.0 || (m - 1.0 / 0.7).abs() < 1e-6),
        "dropout mask keeps about 70% and scales by 1/0.7",
        || format!("{kept} of 100 kept"),
    );
    grad_case(
        t,
        rng,
        "dropout 0.3",
        &[x],
        |v| v[0].dropout(0.3, 42),
        move |v| {
            v[0].iter()
                .zip(&mask)
                .map(|(x, m)| x * f64::from(*m))
                .collect()
        },
    );
}
