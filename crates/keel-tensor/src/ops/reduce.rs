//! Reductions along axes (sum, mean, max, min) and argmax.

use crate::op::ReduceOp;
use crate::tensor::{CpuData, Storage};
use crate::{cpu, gpu, DType, Result, Shape, Tensor};

impl Tensor {
    /// Reduces one axis, keeping it with length 1.
    pub(crate) fn reduce_axis(
        &self,
        name: &'static str,
        axis: usize,
        op: ReduceOp,
    ) -> Result<Tensor> {
        self.expect_dtype(name, DType::F32)?;
        let (outer, len, inner) = self.shape().split_at_axis(axis);
        let mut dims = self.dims().to_vec();
        dims[axis] = 1;
        let shape = Shape::new(dims);
        match self.storage() {
            Storage::Gpu(x) => Ok(self.with_gpu(
                gpu::ops::reduce(x, outer, len, inner, op)?,
                shape,
                DType::F32,
            )),
            Storage::Cpu(_) => {
                Ok(self.with_cpu(cpu::reduce(self.cpu_f32(), outer, len, inner, op), shape))
            }
        }
    }

    /// Reduces the given axes (negative counts from the end; empty means all axes).
    pub fn reduce(&self, op: ReduceOp, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let name = match op {
            ReduceOp::Sum => "sum",
            ReduceOp::Mean => "mean",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
        };
        let mut resolved = if axes.is_empty() {
            (0..self.rank()).collect::<Vec<_>>()
        } else {
            axes.iter()
                .map(|&a| self.shape().axis(name, a))
                .collect::<Result<Vec<_>>>()?
        };
        resolved.sort_unstable();
        resolved.dedup();
        let mut out = self.clone();
        for &axis in resolved.iter().rev() {
            out = out.reduce_axis(name, axis, op)?;
        }
        if keepdim {
            return Ok(out);
        }
        let kept: Vec<usize> = (0..self.rank())
            .filter(|a| !resolved.contains(a))
            .map(|a| self.dims()[a])
            .collect();
        out.reshape(kept)
    }

    /// Sum over `axes`.
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Sum, axes, keepdim)
    }
    /// Mean over `axes`.
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Mean, axes, keepdim)
    }
    /// Maximum over `axes`.
    pub fn max(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Max, axes, keepdim)
    }
    /// Minimum over `axes`.
    pub fn min(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Min, axes, keepdim)
    }
    /// Sum of all elements, as a scalar tensor (shape []).
    pub fn sum_all(&self) -> Result<Tensor> {
        self.sum(&[], false)
    }

    /// Index of the largest element along `axis` (the first on ties), as an i32 tensor.
    pub fn argmax(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        const OP: &str = "argmax";
        self.expect_dtype(OP, DType::F32)?;
        let axis = self.shape().axis(OP, axis)?;
        let (outer, len, inner) = self.shape().split_at_axis(axis);
        let mut dims = self.dims().to_vec();
        if keepdim {
            dims[axis] = 1;
        } else {
            dims.remove(axis);
        }
        let shape = Shape::new(dims);
        match self.storage() {
            Storage::Gpu(x) => {
                Ok(self.with_gpu(gpu::ops::argmax(x, outer, len, inner)?, shape, DType::I32))
            }
            Storage::Cpu(_) => {
                let idx = cpu::argmax(self.cpu_f32(), outer, len, inner);
                Ok(Tensor::from_storage(
                    Storage::Cpu(CpuData::I32(idx)),
                    shape,
                    DType::I32,
                    self.device().clone(),
                ))
            }
        }
    }
}
