//! Softmax and log-softmax along the last axis.

use crate::tensor::Storage;
use crate::{cpu, gpu, DType, Error, Result, Tensor};

impl Tensor {
    fn softmax_impl(&self, log: bool) -> Result<Tensor> {
        let name = if log { "log_softmax" } else { "softmax" };
        self.expect_dtype(name, DType::F32)?;
        let Some(&cols) = self.dims().last() else {
            return Err(Error::invalid(name, "needs at least one dimension"));
        };
        let rows = self.elem_count() / cols;
        let shape = self.shape().clone();
        match self.storage() {
            Storage::Gpu(x) => {
                Ok(self.with_gpu(gpu::ops::softmax(x, rows, cols, log)?, shape, DType::F32))
            }
            Storage::Cpu(_) => Ok(self.with_cpu(cpu::softmax(self.cpu_f32(), cols, log), shape)),
        }
    }

    /// exp(x − max) / Σ exp(x − max) along the last axis.
    pub fn softmax(&self) -> Result<Tensor> {
        self.softmax_impl(false)
    }

    /// x − max − log Σ exp(x − max) along the last axis.
    pub fn log_softmax(&self) -> Result<Tensor> {
        self.softmax_impl(true)
    }
}
