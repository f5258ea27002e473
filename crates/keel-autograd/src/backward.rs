//! The backward rules, one per op: how the gradient `g` of an op's output becomes the gradients
//! of its inputs. Each rule keeps only the tensors it needs (saved at record time); `needs[i]`
//! says whether input `i` is tracked, so untracked inputs cost nothing.

use crate::Result;
use keel_tensor::{
    Activation, AffineActivation, BinaryOp, Conv2dOptions, Padding, Pool2dOptions, PoolOp, Shape,
    Tensor, UnaryOp,
};
use std::ops::Range;

/// What an op saved for its backward pass.
pub(crate) enum Rule {
    /// a + b (broadcasting)
    Add { a: Shape, b: Shape },
    /// a − b (broadcasting)
    Sub { a: Shape, b: Shape },
    /// a · b (broadcasting)
    Mul { a: Tensor, b: Tensor },
    /// a / b (broadcasting); y = a / b
    Div { a: Shape, b: Tensor, y: Tensor },
    /// max(a, b) or min(a, b) (broadcasting); ties split the gradient in half
    Extremum { a: Tensor, b: Tensor, max: bool },
    /// a · b over the last two axes (either may be a shared matrix)
    Matmul { a: Tensor, b: Tensor },
    /// x + bias along the last axis
    BiasAdd,
    /// an elementwise function; `saved` is its input or output, whichever the derivative uses
    Unary { op: UnaryOp, saved: Option<Tensor> },
    /// sum (scale 1) or mean (scale 1/n) over `axes` of a tensor of shape `input`
    Sum {
        input: Shape,
        axes: Vec<usize>,
        scale: f32,
    },
    /// max or min over `axes`; ties share the gradient equally
    Extreme {
        x: Tensor,
        y: Tensor,
        axes: Vec<usize>,
    },
    /// reshape (and flatten) from `input`
    Reshape { input: Shape },
    /// permute by `dims`
    Permute { dims: Vec<usize> },
    /// concat along `axis` of inputs with these sizes along it
    Concat { axis: usize, sizes: Vec<usize> },
    /// slice of a tensor of shape `input`
    Slice {
        input: Shape,
        ranges: Vec<Range<usize>>,
    },
    /// zero or constant padding
    Pad {
        input: Shape,
        pads: Vec<(usize, usize)>,
    },
    /// conv2d; x is kept only when the kernel needs a gradient, w only when the input does
    Conv2d {
        x: Option<Tensor>,
        w: Option<Tensor>,
        x_shape: Shape,
        w_shape: Shape,
        options: Conv2dOptions,
    },
    /// training-mode batch normalisation of x (inputs x, γ, β) with the batch's `mean`,
    /// std = √(var + ε), scale = γ / std and shift = β − mean · scale, then `activation`
    BatchNormTrain {
        x: Tensor,
        mean: Tensor,
        std: Tensor,
        scale: Tensor,
        shift: Tensor,
        activation: Activation,
    },
    /// max or average pooling of x
    Pool {
        x: Tensor,
        options: Pool2dOptions,
        op: PoolOp,
    },
    /// global average pooling of a tensor of shape `input`
    GlobalAvg { input: Shape },
    /// global max pooling of x
    GlobalMax { x: Tensor },
    /// softmax along the last axis; y is its output
    Softmax { y: Tensor },
    /// log-softmax along the last axis; y is its output
    LogSoftmax { y: Tensor },
    /// mean cross-entropy of logits against target distributions
    SoftmaxCrossEntropy { log_probs: Tensor, targets: Tensor },
}

impl Rule {
    /// The row a profile times this rule under: `∂` and the op, with the kernel for a
    /// convolution (`∂ conv 3×3 depthwise stride 2`).
    pub(crate) fn label(&self, op: &str) -> String {
        let Rule::Conv2d {
            w_shape, options, ..
        } = self
        else {
            return format!("∂ {op}");
        };
        let &[kh, kw, per_group, _] = w_shape.dims() else {
            return format!("∂ {op}");
        };
        let depthwise = if options.groups > 1 && per_group == 1 {
            " depthwise"
        } else {
            ""
        };
        let stride = match options.stride {
            (1, 1) => String::new(),
            (h, w) if h == w => format!(" stride {h}"),
            (h, w) => format!(" stride {h}×{w}"),
        };
        format!("∂ conv {kh}×{kw}{depthwise}{stride}")
    }

    /// Gradients of the inputs (in the op's input order) from the output gradient `g`;
    /// `None` where `needs` is false.
    pub(crate) fn apply(self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let need = |i: usize| needs.get(i).copied().unwrap_or(false);
        let grads = match self {
            Rule::Add { a, b } => vec![
                when(need(0), || sum_to(g, &a))?,
                when(need(1), || sum_to(g, &b))?,
            ],
            Rule::Sub { a, b } => vec![
                when(need(0), || sum_to(g, &a))?,
                when(need(1), || sum_to(&g.neg()?, &b))?,
            ],
            Rule::Mul { a, b } => vec![
                when(need(0), || sum_to(&g.mul(&b)?, a.shape()))?,
                when(need(1), || sum_to(&g.mul(&a)?, b.shape()))?,
            ],
            Rule::Div { a, b, y } => vec![
                when(need(0), || sum_to(&g.div(&b)?, &a))?,
                when(need(1), || sum_to(&g.mul(&y)?.div(&b)?.neg()?, b.shape()))?,
            ],
            Rule::Extremum { a, b, max } => {
                // The share of a: 1 where it wins, ½ on ties, 0 where it loses.
                let (winner, loser) = if max { (&a, &b) } else { (&b, &a) };
                let share_a = winner.greater(loser)?.add(&a.equal(&b)?.mul_scalar(0.5)?)?;
                vec![
                    when(need(0), || sum_to(&g.mul(&share_a)?, a.shape()))?,
                    when(need(1), || {
                        sum_to(&g.mul(&share_a.affine(-1.0, 1.0)?)?, b.shape())
                    })?,
                ]
            }
            Rule::Matmul { a, b } => vec![
                when(need(0), || sum_to(&g.matmul_t(&b, false, true)?, a.shape()))?,
                when(need(1), || matmul_rhs_grad(&a, &b, g))?,
            ],
            Rule::BiasAdd => {
                let lead: Vec<isize> = (0..g.rank() as isize - 1).collect();
                vec![
                    when(need(0), || Ok(g.clone()))?,
                    when(need(1), || {
                        if lead.is_empty() {
                            Ok(g.clone())
                        } else {
                            g.sum(&lead, false)
                        }
                    })?,
                ]
            }
            Rule::Unary { op, saved } => vec![Some(unary_grad(op, saved.as_ref(), g)?)],
            Rule::Sum { input, axes, scale } => {
                let g = g.reshape(keep_dims(&input, &axes))?;
                let g = if scale == 1.0 {
                    g
                } else {
                    g.mul_scalar(scale)?
                };
                vec![Some(g.broadcast_to(input)?)]
            }
            Rule::Extreme { x, y, axes } => {
                let keep = keep_dims(x.shape(), &axes);
                let mask = x.equal(&y.reshape(keep.clone())?)?;
                let ax: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
                let count = mask.sum(&ax, true)?;
                vec![Some(mask.mul(&g.reshape(keep)?.div(&count)?)?)]
            }
            Rule::Reshape { input } => vec![Some(g.reshape(input)?)],
            Rule::Permute { dims } => {
                let mut inverse = vec![0; dims.len()];
                for (i, &d) in dims.iter().enumerate() {
                    inverse[d] = i;
                }
                vec![Some(g.permute(&inverse)?)]
            }
            Rule::Concat { axis, sizes } => {
                let mut start = 0;
                let mut grads = Vec::with_capacity(sizes.len());
                for (i, &len) in sizes.iter().enumerate() {
                    grads.push(when(need(i), || g.narrow(axis as isize, start, len))?);
                    start += len;
                }
                grads
            }
            Rule::Slice { input, ranges } => {
                let pads: Vec<(usize, usize)> = (0..input.rank())
                    .map(|i| match ranges.get(i) {
                        Some(r) => (r.start, input.dims()[i] - r.end),
                        None => (0, 0),
                    })
                    .collect();
                vec![Some(g.pad(&pads, 0.0)?)]
            }
            Rule::Pad { input, pads } => {
                let ranges: Vec<Range<usize>> = pads
                    .iter()
                    .zip(input.dims())
                    .map(|(&(before, _), &d)| before..before + d)
                    .collect();
                vec![Some(g.slice(&ranges)?)]
            }
            Rule::Conv2d {
                x,
                w,
                x_shape,
                w_shape,
                options,
            } => vec![
                when(need(0), || {
                    g.conv2d_backward_input(w.as_ref().expect("saved"), &x_shape, &options)
                })?,
                when(need(1), || {
                    g.conv2d_backward_kernel(x.as_ref().expect("saved"), &w_shape, &options)
                })?,
            ],
            Rule::BatchNormTrain {
                x,
                mean,
                std,
                scale,
                shift,
                activation,
            } => {
                // With g′ = g · act′(x · scale + shift) and x̂ = (x − mean) / std: dβ = Σ g′,
                // dγ = Σ g′·x̂, and dx = scale · (g′ − Σg′ / n − x̂ · Σ(g′·x̂) / n), which is
                // a·g′ + b·x + k per channel.
                let through = AffineActivation {
                    scale: &scale,
                    shift: &shift,
                    activation,
                };
                let (sum_g, sum_gc) = g.channel_grad_sums(&x, &mean, Some(through))?;
                let rows = (x.elem_count() / mean.elem_count().max(1)) as f32;
                let input = || {
                    let b = scale
                        .mul(&sum_gc)?
                        .div(&std.mul(&std)?)?
                        .mul_scalar(-1.0 / rows)?;
                    let k = scale
                        .mul(&sum_g)?
                        .mul_scalar(-1.0 / rows)?
                        .sub(&b.mul(&mean)?)?;
                    g.channel_combine(&x, (&scale, &b, &k), Some(through))
                };
                vec![
                    when(need(0), input)?,
                    when(need(1), || sum_gc.div(&std))?,
                    when(need(2), || Ok(sum_g.clone()))?,
                ]
            }
            Rule::Pool { x, options, op } => vec![Some(x.pool2d_backward(g, &options, op)?)],
            Rule::GlobalAvg { input } => {
                let &[n, h, w, c] = input.dims() else {
                    unreachable!("global pooling validated its NHWC input")
                };
                let g = g.reshape([n, 1, 1, c])?.mul_scalar(1.0 / (h * w) as f32)?;
                vec![Some(g.broadcast_to(input)?)]
            }
            Rule::GlobalMax { x } => {
                let &[n, h, w, c] = x.dims() else {
                    unreachable!("global pooling validated its NHWC input")
                };
                let window = Pool2dOptions {
                    size: (h, w),
                    stride: (1, 1),
                    padding: Padding::Valid,
                };
                let g = g.reshape([n, 1, 1, c])?;
                vec![Some(x.pool2d_backward(&g, &window, PoolOp::Max)?)]
            }
            Rule::Softmax { y } => {
                let dot = g.mul(&y)?.sum(&[-1], true)?;
                vec![Some(y.mul(&g.sub(&dot)?)?)]
            }
            Rule::LogSoftmax { y } => {
                let total = g.sum(&[-1], true)?;
                vec![Some(g.sub(&y.exp()?.mul(&total)?)?)]
            }
            Rule::SoftmaxCrossEntropy { log_probs, targets } => {
                // (softmax · Σ targets − targets) / rows (softmax − targets for one-hot rows),
                // times the incoming scalar gradient.
                let rows = log_probs.elem_count() / log_probs.dims().last().copied().unwrap_or(1);
                let mass = targets.sum(&[-1], true)?;
                let per_row = log_probs
                    .exp()?
                    .mul(&mass)?
                    .sub(&targets)?
                    .mul_scalar(1.0 / rows.max(1) as f32)?;
                vec![Some(per_row.mul(g)?)]
            }
        };
        Ok(grads)
    }
}

/// `Some(f())` when the input needs a gradient.
fn when(need: bool, f: impl FnOnce() -> keel_tensor::Result<Tensor>) -> Result<Option<Tensor>> {
    Ok(if need { Some(f()?) } else { None })
}

/// Sums a broadcast gradient back down to `shape` (extra leading axes and stretched 1s).
fn sum_to(g: &Tensor, shape: &Shape) -> keel_tensor::Result<Tensor> {
    if g.shape() == shape {
        return Ok(g.clone());
    }
    let lead = g.rank() - shape.rank();
    let axes: Vec<isize> = (0..g.rank())
        .filter(|&i| i < lead || (shape.dims()[i - lead] == 1 && g.dims()[i] != 1))
        .map(|i| i as isize)
        .collect();
    let summed = if axes.is_empty() {
        g.clone()
    } else {
        g.sum(&axes, true)?
    };
    summed.reshape(shape.clone())
}

/// dL/db of a · b; a shared matrix b used by a batch of a gets one GEMM over the whole batch.
fn matmul_rhs_grad(a: &Tensor, b: &Tensor, g: &Tensor) -> keel_tensor::Result<Tensor> {
    if b.rank() == 2 && a.rank() > 2 {
        let k = a.dims()[a.rank() - 1];
        let n = g.dims()[g.rank() - 1];
        let rows = a.elem_count() / k;
        return a
            .reshape([rows, k])?
            .matmul_t(&g.reshape([rows, n])?, true, false);
    }
    sum_to(&a.matmul_t(g, true, false)?, b.shape())
}

/// `shape` with the reduced axes kept as 1s.
fn keep_dims(shape: &Shape, axes: &[usize]) -> Shape {
    let mut dims = shape.dims().to_vec();
    for &a in axes {
        dims[a] = 1;
    }
    Shape::new(dims)
}

/// Whether an elementwise op's derivative reads its output (`Some(true)`), its input
/// (`Some(false)`) or neither (`None`).
pub(crate) fn unary_saves_output(op: UnaryOp) -> Option<bool> {
    match op {
        UnaryOp::Relu | UnaryOp::Sigmoid | UnaryOp::Tanh | UnaryOp::Exp | UnaryOp::Sqrt => {
            Some(true)
        }
        UnaryOp::Relu6
        | UnaryOp::Silu
        | UnaryOp::HardSigmoid
        | UnaryOp::HardSwish
        | UnaryOp::Gelu
        | UnaryOp::GeluDerivative
        | UnaryOp::Log
        | UnaryOp::Abs
        | UnaryOp::PowScalar(_)
        | UnaryOp::MaxScalar(_)
        | UnaryOp::MinScalar(_) => Some(false),
        UnaryOp::Neg | UnaryOp::Affine { .. } | UnaryOp::Above(_) | UnaryOp::Sign => None,
    }
}

/// g · f′, with f′ written in terms of the saved input x or output y.
fn unary_grad(op: UnaryOp, saved: Option<&Tensor>, g: &Tensor) -> keel_tensor::Result<Tensor> {
    let s = || saved.expect("the rule saved what unary_saves_output asked for");
    match op {
        UnaryOp::Relu => g.binary(s(), BinaryOp::ReluGrad),
        UnaryOp::Relu6 => g.binary(s(), BinaryOp::Relu6Grad),
        UnaryOp::Sigmoid => g.mul(&s().mul(&s().affine(-1.0, 1.0)?)?),
        UnaryOp::Tanh => g.mul(&s().mul(s())?.affine(-1.0, 1.0)?),
        UnaryOp::Exp => g.mul(s()),
        UnaryOp::Log => g.div(s()),
        UnaryOp::Sqrt => g.div(s())?.mul_scalar(0.5),
        UnaryOp::Neg => g.neg(),
        UnaryOp::Abs => g.mul(&s().sign()?),
        UnaryOp::Affine { mul, .. } => g.mul_scalar(mul),
        UnaryOp::PowScalar(p) => g.mul(&s().powf(p - 1.0)?.mul_scalar(p)?),
        UnaryOp::MaxScalar(v) => g.mul(&s().above(v)?),
        UnaryOp::MinScalar(v) => g.mul(&s().above(v)?.affine(-1.0, 1.0)?),
        UnaryOp::Above(_) | UnaryOp::Sign => g.mul_scalar(0.0),
        UnaryOp::Silu => g.binary(s(), BinaryOp::SiluGrad),
        // 1/6 inside (−3, 3), 0 outside.
        UnaryOp::HardSigmoid => g.mul(
            &s().above(-3.0)?
                .sub(&s().above(3.0)?)?
                .mul_scalar(1.0 / 6.0)?,
        ),
        UnaryOp::Gelu => g.mul(&s().unary(UnaryOp::GeluDerivative)?),
        // φ(x) · (2 − x²)
        UnaryOp::GeluDerivative => {
            let pdf = s()
                .mul(s())?
                .mul_scalar(-0.5)?
                .exp()?
                .mul_scalar(0.398_942_3)?;
            g.mul(&pdf.mul(&s().mul(s())?.affine(-1.0, 2.0)?)?)
        }
        UnaryOp::HardSwish => g.binary(s(), BinaryOp::HardSwishGrad),
    }
}
