//! Max and average pooling, and their global (whole-image) forms.

use crate::geometry::{pool2d_geometry, Pool2dOptions};
use crate::op::{PoolOp, ReduceOp};
use crate::tensor::Storage;
use crate::{cpu, gpu, DType, Error, Result, Shape, Tensor};

impl Tensor {
    fn pool2d(&self, name: &'static str, options: &Pool2dOptions, op: PoolOp) -> Result<Tensor> {
        self.expect_dtype(name, DType::F32)?;
        let g = pool2d_geometry(name, self.shape(), options)?;
        let shape = g.out_shape();
        match self.storage() {
            Storage::Gpu(x) => Ok(self.with_gpu(gpu::ops::pool2d(x, &g, op)?, shape, DType::F32)),
            Storage::Cpu(_) => Ok(self.with_cpu(cpu::pool2d(self.cpu_f32(), &g, op), shape)),
        }
    }

    /// Max pooling of an NHWC batch (padded positions are ignored).
    pub fn max_pool2d(&self, options: &Pool2dOptions) -> Result<Tensor> {
        self.pool2d("max_pool2d", options, PoolOp::Max)
    }

    /// Average pooling of an NHWC batch; at the border only real pixels are averaged (Keras).
    pub fn avg_pool2d(&self, options: &Pool2dOptions) -> Result<Tensor> {
        self.pool2d("avg_pool2d", options, PoolOp::Avg)
    }

    /// Gradient of [`max_pool2d`](Self::max_pool2d) or [`avg_pool2d`](Self::avg_pool2d) with
    /// respect to their input `self`, given the gradient `dy` of their output. Max sends each
    /// output's gradient to the first maximum of its window (row-major), average spreads it over
    /// the window's real pixels.
    pub fn pool2d_backward(
        &self,
        dy: &Tensor,
        options: &Pool2dOptions,
        op: PoolOp,
    ) -> Result<Tensor> {
        let name = match op {
            PoolOp::Max => "max_pool2d_backward",
            PoolOp::Avg => "avg_pool2d_backward",
        };
        self.same_device(name, dy)?;
        self.expect_dtype(name, DType::F32)?;
        dy.expect_dtype(name, DType::F32)?;
        let g = pool2d_geometry(name, self.shape(), options)?;
        if dy.shape() != &g.out_shape() {
            return Err(Error::shapes(
                name,
                self.shape(),
                dy.shape(),
                format!(
                    "the output gradient must have the pooled shape {}",
                    g.out_shape()
                ),
            ));
        }
        let shape = self.shape().clone();
        match (self.storage(), dy.storage()) {
            (Storage::Gpu(x), Storage::Gpu(d)) => Ok(self.with_gpu(
                gpu::backward::pool2d_backward(x, d, &g, op)?,
                shape,
                DType::F32,
            )),
            _ => Ok(self.with_cpu(
                cpu::pool2d_backward(self.cpu_f32(), dy.cpu_f32(), &g, op),
                shape,
            )),
        }
    }

    fn global_pool(&self, name: &'static str, op: ReduceOp) -> Result<Tensor> {
        let &[n, h, w, c] = self.dims() else {
            return Err(Error::invalid(
                name,
                format!(
                    "expected an NHWC input of rank 4, got shape {}",
                    self.shape()
                ),
            ));
        };
        self.reshape([n, h * w, c])?
            .reduce_axis(name, 1, op)?
            .reshape(Shape::new([n, c]))
    }

    /// Mean over height and width: [N, H, W, C] → [N, C] (Keras' GlobalAveragePooling2D).
    pub fn global_avg_pool2d(&self) -> Result<Tensor> {
        self.global_pool("global_avg_pool2d", ReduceOp::Mean)
    }

    /// Max over height and width: [N, H, W, C] → [N, C].
    pub fn global_max_pool2d(&self) -> Result<Tensor> {
        self.global_pool("global_max_pool2d", ReduceOp::Max)
    }
}
