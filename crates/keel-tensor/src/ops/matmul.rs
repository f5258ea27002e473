//! Batched matrix multiplication with optional transposes.

use crate::op::MatmulDims;
use crate::tensor::Storage;
use crate::{cpu, gpu, DType, Error, Result, Shape, Tensor};

impl Tensor {
    /// Matrix product over the last two axes: [..., m, k] · [..., k, n] → [..., m, n].
    /// Leading (batch) axes must be equal, or one operand may be a plain matrix shared by all.
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.matmul_t(rhs, false, false)
    }

    /// Like [`matmul`](Self::matmul) with either operand read transposed (no copy is made):
    /// `trans_a` reads self as [..., k, m], `trans_b` reads rhs as [..., n, k]. rhs may be kept
    /// as f16 ([`DType::F16`]); the arithmetic is f32 either way.
    pub fn matmul_t(&self, rhs: &Tensor, trans_a: bool, trans_b: bool) -> Result<Tensor> {
        const OP: &str = "matmul";
        self.same_device(OP, rhs)?;
        self.expect_dtype(OP, DType::F32)?;
        if rhs.dtype() != DType::F16 {
            rhs.expect_dtype(OP, DType::F32)?;
        }
        let (a, b) = (self.dims(), rhs.dims());
        if a.len() < 2 || b.len() < 2 {
            return Err(Error::shapes(
                OP,
                self.shape(),
                rhs.shape(),
                "both operands need at least 2 dimensions",
            ));
        }
        let (ra, ca) = (a[a.len() - 2], a[a.len() - 1]);
        let (rb, cb) = (b[b.len() - 2], b[b.len() - 1]);
        let (m, k) = if trans_a { (ca, ra) } else { (ra, ca) };
        let (k2, n) = if trans_b { (cb, rb) } else { (rb, cb) };
        if k != k2 {
            return Err(Error::shapes(
                OP,
                self.shape(),
                rhs.shape(),
                format!("inner dimensions differ: {k} vs {k2} (transposed: {trans_a}, {trans_b})"),
            ));
        }
        let (batch_a, batch_b) = (&a[..a.len() - 2], &b[..b.len() - 2]);
        let batch_dims = match (batch_a.is_empty(), batch_b.is_empty()) {
            (_, true) => batch_a.to_vec(),
            (true, false) => batch_b.to_vec(),
            _ if batch_a == batch_b => batch_a.to_vec(),
            _ => {
                return Err(Error::shapes(
                    OP,
                    self.shape(),
                    rhs.shape(),
                    "batch dimensions differ",
                ))
            }
        };
        let batch: usize = batch_dims.iter().product();
        let d = MatmulDims {
            batch,
            m,
            n,
            k,
            trans_a,
            trans_b,
            a_batch_stride: if batch_a.is_empty() { 0 } else { m * k },
            b_batch_stride: if batch_b.is_empty() { 0 } else { k * n },
        };
        let mut out_dims = batch_dims;
        out_dims.extend([m, n]);
        let shape = Shape::new(out_dims);
        match (self.storage(), rhs.storage()) {
            (Storage::Gpu(x), Storage::Gpu(y)) => {
                let operand = gpu::Operand::of(rhs.dtype());
                Ok(self.with_gpu(gpu::ops::matmul(x, y, operand, d)?, shape, DType::F32))
            }
            _ => Ok(self.with_cpu(cpu::matmul(self.cpu_f32(), rhs.cpu_f32(), d), shape)),
        }
    }
}
