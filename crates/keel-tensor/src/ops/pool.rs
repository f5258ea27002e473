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
