//! Differentiable versions of the tensor ops: each computes the tensor op and records the rule
//! of `backward.rs` when a trainable parameter flows in.

use crate::backward::{unary_saves_output, Rule};
use crate::{Result, Var};
use keel_tensor::{BinaryOp, Shape, Tensor, UnaryOp};
use std::ops::Range;

impl Var {
    /// Elementwise `op`.
    pub fn unary(&self, op: UnaryOp) -> Result<Var> {
        let y = self.tensor().unary(op)?;
        Ok(Var::record("unary", y.clone(), &[self], || Rule::Unary {
            op,
            saved: unary_saves_output(op)
                .map(|output| if output { y } else { self.tensor().clone() }),
        }))
    }

    /// max(x, 0)
    pub fn relu(&self) -> Result<Var> {
        self.unary(UnaryOp::Relu)
    }
    /// min(max(x, 0), 6)
    pub fn relu6(&self) -> Result<Var> {
        self.unary(UnaryOp::Relu6)
    }

    /// x · sigmoid(x) (SiLU, swish).
    pub fn silu(&self) -> Result<Var> {
        self.unary(UnaryOp::Silu)
    }

    /// min(max(x + 3, 0), 6) / 6.
    pub fn hard_sigmoid(&self) -> Result<Var> {
        self.unary(UnaryOp::HardSigmoid)
    }

    /// x · min(max(x + 3, 0), 6) / 6 (hard-swish).
    pub fn hard_swish(&self) -> Result<Var> {
        self.unary(UnaryOp::HardSwish)
    }

    /// The exact GELU, x · Φ(x).
    pub fn gelu(&self) -> Result<Var> {
        self.unary(UnaryOp::Gelu)
    }
    /// 1 / (1 + e^-x)
    pub fn sigmoid(&self) -> Result<Var> {
        self.unary(UnaryOp::Sigmoid)
    }
    /// tanh(x)
    pub fn tanh(&self) -> Result<Var> {
        self.unary(UnaryOp::Tanh)
    }
    /// e^x
    pub fn exp(&self) -> Result<Var> {
        self.unary(UnaryOp::Exp)
    }
    /// ln(x)
    pub fn log(&self) -> Result<Var> {
        self.unary(UnaryOp::Log)
    }
    /// √x
    pub fn sqrt(&self) -> Result<Var> {
        self.unary(UnaryOp::Sqrt)
    }
    /// −x
    pub fn neg(&self) -> Result<Var> {
        self.unary(UnaryOp::Neg)
    }
    /// |x|
    pub fn abs(&self) -> Result<Var> {
        self.unary(UnaryOp::Abs)
    }
    /// x + s
    pub fn add_scalar(&self, s: f32) -> Result<Var> {
        self.unary(UnaryOp::Affine { mul: 1.0, add: s })
    }
    /// x · s
    pub fn mul_scalar(&self, s: f32) -> Result<Var> {
        self.unary(UnaryOp::Affine { mul: s, add: 0.0 })
    }
    /// x · mul + add
    pub fn affine(&self, mul: f32, add: f32) -> Result<Var> {
        self.unary(UnaryOp::Affine { mul, add })
    }
    /// x^s
    pub fn powf(&self, s: f32) -> Result<Var> {
        self.unary(UnaryOp::PowScalar(s))
    }

    fn binary(&self, rhs: &Var, op: BinaryOp) -> Result<Var> {
        let (a, b) = (self.tensor(), rhs.tensor());
        let y = a.binary(b, op)?;
        let rule = || match op {
            BinaryOp::Add => Rule::Add {
                a: a.shape().clone(),
                b: b.shape().clone(),
            },
            BinaryOp::Sub => Rule::Sub {
                a: a.shape().clone(),
                b: b.shape().clone(),
            },
            BinaryOp::Mul => Rule::Mul {
                a: a.clone(),
                b: b.clone(),
            },
            BinaryOp::Div => Rule::Div {
                a: a.shape().clone(),
                b: b.clone(),
                y: y.clone(),
            },
            BinaryOp::Max | BinaryOp::Min => Rule::Extremum {
                a: a.clone(),
                b: b.clone(),
                max: op == BinaryOp::Max,
            },
            BinaryOp::Greater
            | BinaryOp::Equal
            | BinaryOp::ReluGrad
            | BinaryOp::Relu6Grad
            | BinaryOp::SiluGrad
            | BinaryOp::HardSwishGrad => {
                unreachable!("comparisons and gradients are not differentiable ops of Var")
            }
        };
        Ok(Var::record(op.name(), y.clone(), &[self, rhs], rule))
    }

    /// a + b (broadcasting)
    pub fn add(&self, rhs: &Var) -> Result<Var> {
        self.binary(rhs, BinaryOp::Add)
    }
    /// a − b (broadcasting)
    pub fn sub(&self, rhs: &Var) -> Result<Var> {
        self.binary(rhs, BinaryOp::Sub)
    }
    /// a · b (broadcasting)
    pub fn mul(&self, rhs: &Var) -> Result<Var> {
        self.binary(rhs, BinaryOp::Mul)
    }
    /// a / b (broadcasting)
    pub fn div(&self, rhs: &Var) -> Result<Var> {
        self.binary(rhs, BinaryOp::Div)
    }
    /// max(a, b) (broadcasting; ties split the gradient)
    pub fn maximum(&self, rhs: &Var) -> Result<Var> {
        self.binary(rhs, BinaryOp::Max)
    }
    /// min(a, b) (broadcasting; ties split the gradient)
    pub fn minimum(&self, rhs: &Var) -> Result<Var> {
        self.binary(rhs, BinaryOp::Min)
    }

    /// Matrix product over the last two axes (see [`Tensor::matmul`]).
    pub fn matmul(&self, rhs: &Var) -> Result<Var> {
        let y = self.tensor().matmul(rhs.tensor())?;
        Ok(Var::record("matmul", y, &[self, rhs], || Rule::Matmul {
            a: self.tensor().clone(),
            b: rhs.tensor().clone(),
        }))
    }

    /// Adds a bias vector along the last axis.
    pub fn bias_add(&self, bias: &Var) -> Result<Var> {
        let y = self.tensor().bias_add(bias.tensor())?;
        Ok(Var::record("bias_add", y, &[self, bias], || Rule::BiasAdd))
    }

    fn reduce_sum(&self, axes: &[isize], keepdim: bool, mean: bool) -> Result<Var> {
        let t = self.tensor();
        let y = if mean {
            t.mean(axes, keepdim)?
        } else {
            t.sum(axes, keepdim)?
        };
        let axes = normalize(t.shape(), axes)?;
        let n: usize = axes.iter().map(|&a| t.dims()[a]).product();
        let name = if mean { "mean" } else { "sum" };
        Ok(Var::record(name, y, &[self], || Rule::Sum {
            input: t.shape().clone(),
            axes,
            scale: if mean { 1.0 / n as f32 } else { 1.0 },
        }))
    }

    /// Sum over `axes` (negative counts from the end).
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Result<Var> {
        self.reduce_sum(axes, keepdim, false)
    }
    /// Mean over `axes`.
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Result<Var> {
        self.reduce_sum(axes, keepdim, true)
    }
    /// Sum of every element, as a scalar.
    pub fn sum_all(&self) -> Result<Var> {
        let axes: Vec<isize> = (0..self.tensor().rank() as isize).collect();
        self.sum(&axes, false)
    }
    /// Mean of every element, as a scalar.
    pub fn mean_all(&self) -> Result<Var> {
        let axes: Vec<isize> = (0..self.tensor().rank() as isize).collect();
        self.mean(&axes, false)
    }

    fn extreme(&self, axes: &[isize], keepdim: bool, max: bool) -> Result<Var> {
        let t = self.tensor();
        let y = if max {
            t.max(axes, keepdim)?
        } else {
            t.min(axes, keepdim)?
        };
        let axes = normalize(t.shape(), axes)?;
        Ok(Var::record("max", y.clone(), &[self], || Rule::Extreme {
            x: t.clone(),
            y,
            axes,
        }))
    }

    /// Maximum over `axes` (ties share the gradient).
    pub fn max(&self, axes: &[isize], keepdim: bool) -> Result<Var> {
        self.extreme(axes, keepdim, true)
    }
    /// Minimum over `axes` (ties share the gradient).
    pub fn min(&self, axes: &[isize], keepdim: bool) -> Result<Var> {
        self.extreme(axes, keepdim, false)
    }

    /// The same elements in a new shape.
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Var> {
        let y = self.tensor().reshape(shape)?;
        Ok(Var::record("reshape", y, &[self], || Rule::Reshape {
            input: self.shape().clone(),
        }))
    }

    /// [N, ...] → [N, product of the rest] (Keras' Flatten).
    pub fn flatten(&self) -> Result<Var> {
        let dims = self.dims();
        let n = dims.first().copied().unwrap_or(1);
        let rest: usize = dims.iter().skip(1).product();
        self.reshape([n, rest])
    }

    /// Reorders the axes (see [`Tensor::permute`]).
    pub fn permute(&self, dims: &[usize]) -> Result<Var> {
        let y = self.tensor().permute(dims)?;
        Ok(Var::record("permute", y, &[self], || Rule::Permute {
            dims: dims.to_vec(),
        }))
    }

    /// Joins values along `axis`.
    pub fn concat(vars: &[&Var], axis: isize) -> Result<Var> {
        let tensors: Vec<&Tensor> = vars.iter().map(|v| v.tensor()).collect();
        let y = Tensor::concat(&tensors, axis)?;
        let axis = y.shape().axis("concat", axis)?;
        Ok(Var::record("concat", y, vars, || Rule::Concat {
            axis,
            sizes: vars.iter().map(|v| v.dims()[axis]).collect(),
        }))
    }

    /// The sub-tensor `ranges[i]` along each leading axis `i`.
    pub fn slice(&self, ranges: &[Range<usize>]) -> Result<Var> {
        let y = self.tensor().slice(ranges)?;
        Ok(Var::record("slice", y, &[self], || Rule::Slice {
            input: self.shape().clone(),
            ranges: ranges.to_vec(),
        }))
    }

    /// `len` entries of `axis` from `start`.
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Var> {
        let axis = self.shape().axis("narrow", axis)?;
        let mut ranges: Vec<Range<usize>> = self.dims()[..axis].iter().map(|&d| 0..d).collect();
        ranges.push(start..start + len);
        self.slice(&ranges)
    }

    /// Pads every axis with `(before, after)` elements of `value`.
    pub fn pad(&self, pads: &[(usize, usize)], value: f32) -> Result<Var> {
        let y = self.tensor().pad(pads, value)?;
        Ok(Var::record("pad", y, &[self], || Rule::Pad {
            input: self.shape().clone(),
            pads: pads.to_vec(),
        }))
    }
}

/// Axes as non-negative indices.
fn normalize(shape: &Shape, axes: &[isize]) -> Result<Vec<usize>> {
    Ok(axes
        .iter()
        .map(|&a| shape.axis("reduce", a))
        .collect::<keel_tensor::Result<_>>()?)
}
