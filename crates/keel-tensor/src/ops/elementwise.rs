//! Unary, scalar and broadcasting binary ops, and bias addition.

use crate::op::{BinaryOp, UnaryOp};
use crate::shape::{broadcast_shapes, StridedView};
use crate::tensor::Storage;
use crate::{cpu, gpu, DType, Error, Result, Tensor};

impl Tensor {
    /// Applies an elementwise function.
    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        self.expect_dtype("unary", DType::F32)?;
        let shape = self.shape().clone();
        match self.storage() {
            Storage::Cpu(_) => Ok(self.with_cpu(cpu::unary(self.cpu_f32(), op), shape)),
            Storage::Gpu(b) => Ok(self.with_gpu(
                gpu::ops::unary(b, self.elem_count(), op)?,
                shape,
                DType::F32,
            )),
        }
    }

    /// max(x, 0)
    pub fn relu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Relu)
    }
    /// min(max(x, 0), 6), MobileNet's activation.
    pub fn relu6(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Relu6)
    }

    /// x · sigmoid(x) (SiLU, swish).
    pub fn silu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Silu)
    }

    /// min(max(x + 3, 0), 6) / 6.
    pub fn hard_sigmoid(&self) -> Result<Tensor> {
        self.unary(UnaryOp::HardSigmoid)
    }

    /// x · min(max(x + 3, 0), 6) / 6 (hard-swish).
    pub fn hard_swish(&self) -> Result<Tensor> {
        self.unary(UnaryOp::HardSwish)
    }

    /// The exact GELU, x · Φ(x).
    pub fn gelu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Gelu)
    }
    /// Logistic sigmoid.
    pub fn sigmoid(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sigmoid)
    }
    /// Hyperbolic tangent.
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Tanh)
    }
    /// e^x
    pub fn exp(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Exp)
    }
    /// Natural logarithm.
    pub fn log(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log)
    }
    /// Square root.
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqrt)
    }
    /// −x
    pub fn neg(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Neg)
    }
    /// |x|
    pub fn abs(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Abs)
    }
    /// x + s
    pub fn add_scalar(&self, s: f32) -> Result<Tensor> {
        self.unary(UnaryOp::Affine { mul: 1.0, add: s })
    }
    /// x − s
    pub fn sub_scalar(&self, s: f32) -> Result<Tensor> {
        self.unary(UnaryOp::Affine { mul: 1.0, add: -s })
    }
    /// x · s
    pub fn mul_scalar(&self, s: f32) -> Result<Tensor> {
        self.unary(UnaryOp::Affine { mul: s, add: 0.0 })
    }
    /// x / s
    pub fn div_scalar(&self, s: f32) -> Result<Tensor> {
        if s == 0.0 {
            return Err(Error::invalid("div_scalar", "division by zero"));
        }
        self.unary(UnaryOp::Affine {
            mul: 1.0 / s,
            add: 0.0,
        })
    }
    /// x · mul + add in one pass.
    pub fn affine(&self, mul: f32, add: f32) -> Result<Tensor> {
        self.unary(UnaryOp::Affine { mul, add })
    }
    /// max(x, s)
    pub fn maximum_scalar(&self, s: f32) -> Result<Tensor> {
        self.unary(UnaryOp::MaxScalar(s))
    }
    /// min(x, s)
    pub fn minimum_scalar(&self, s: f32) -> Result<Tensor> {
        self.unary(UnaryOp::MinScalar(s))
    }
    /// x^s
    pub fn powf(&self, s: f32) -> Result<Tensor> {
        self.unary(UnaryOp::PowScalar(s))
    }
    /// Clamps to [lo, hi].
    pub fn clamp(&self, lo: f32, hi: f32) -> Result<Tensor> {
        self.maximum_scalar(lo)?.minimum_scalar(hi)
    }
    /// 1 where x > s, else 0
    pub fn above(&self, s: f32) -> Result<Tensor> {
        self.unary(UnaryOp::Above(s))
    }
    /// −1, 0 or 1 by the sign of x
    pub fn sign(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sign)
    }

    /// Applies a binary function with NumPy broadcasting.
    pub fn binary(&self, rhs: &Tensor, op: BinaryOp) -> Result<Tensor> {
        let name = op.name();
        self.same_device(name, rhs)?;
        self.expect_dtype(name, DType::F32)?;
        rhs.expect_dtype(name, DType::F32)?;
        let shape = broadcast_shapes(name, self.shape(), rhs.shape())?;
        let av = StridedView::broadcast_to(self.shape(), &shape);
        let bv = StridedView::broadcast_to(rhs.shape(), &shape);
        match (self.storage(), rhs.storage()) {
            (Storage::Gpu(a), Storage::Gpu(b)) => {
                Ok(self.with_gpu(gpu::ops::binary(a, &av, b, &bv, op)?, shape, DType::F32))
            }
            _ => Ok(self.with_cpu(
                cpu::binary(self.cpu_f32(), &av, rhs.cpu_f32(), &bv, op),
                shape,
            )),
        }
    }

    /// self + rhs (broadcasting)
    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Add)
    }
    /// self − rhs (broadcasting)
    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Sub)
    }
    /// self · rhs (broadcasting)
    pub fn mul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Mul)
    }
    /// self / rhs (broadcasting)
    pub fn div(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Div)
    }
    /// Elementwise max (broadcasting)
    pub fn maximum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Max)
    }
    /// Elementwise min (broadcasting)
    pub fn minimum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Min)
    }
    /// 1 where a > b, else 0 (broadcasting)
    pub fn greater(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Greater)
    }
    /// 1 where a = b, else 0 (broadcasting)
    pub fn equal(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Equal)
    }

    /// Adds a bias vector along the last axis (Dense and Conv2D outputs).
    pub fn bias_add(&self, bias: &Tensor) -> Result<Tensor> {
        let last = self.dims().last().copied().unwrap_or(0);
        if bias.rank() != 1 || bias.dims()[0] != last {
            return Err(Error::shapes(
                "bias_add",
                self.shape(),
                bias.shape(),
                format!("the bias must be a vector of {last} values (the last axis)"),
            ));
        }
        self.add(bias)
    }
}
