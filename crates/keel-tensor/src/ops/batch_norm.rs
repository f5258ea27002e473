//! Batch normalisation in inference form, as one fused per-channel affine pass
//! (optionally followed by ReLU or ReLU6 in the same pass).

use crate::op::Activation;
use crate::tensor::Storage;
use crate::{cpu, gpu, DType, Error, Result, Tensor};

impl Tensor {
    /// `y = act(x · scale[c] + shift[c])` along the last (channel) axis, in one pass.
    pub fn channel_affine(
        &self,
        scale: &Tensor,
        shift: &Tensor,
        act: Activation,
    ) -> Result<Tensor> {
        const OP: &str = "channel_affine";
        let c = self.dims().last().copied().unwrap_or(0);
        for v in [scale, shift] {
            self.same_device(OP, v)?;
            v.expect_dtype(OP, DType::F32)?;
            if v.rank() != 1 || v.dims()[0] != c {
                return Err(Error::shapes(
                    OP,
                    self.shape(),
                    v.shape(),
                    format!("per-channel vectors must have {c} values (the last axis)"),
                ));
            }
        }
        self.expect_dtype(OP, DType::F32)?;
        let shape = self.shape().clone();
        match self.storage() {
            Storage::Gpu(x) => {
                let (Storage::Gpu(sc), Storage::Gpu(sh)) = (scale.storage(), shift.storage())
                else {
                    unreachable!("same device checked above")
                };
                let y = gpu::ops::channel_affine(x, self.elem_count(), sc, sh, c, act)?;
                Ok(self.with_gpu(y, shape, DType::F32))
            }
            Storage::Cpu(_) => Ok(self.with_cpu(
                cpu::channel_affine(self.cpu_f32(), scale.cpu_f32(), shift.cpu_f32(), act),
                shape,
            )),
        }
    }

    /// Batch normalisation with fixed statistics: (x − mean) / √(var + eps) · gamma + beta,
    /// along the last (channel) axis.
    pub fn batch_norm(
        &self,
        gamma: &Tensor,
        beta: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        eps: f32,
    ) -> Result<Tensor> {
        self.batch_norm_act(gamma, beta, mean, var, eps, Activation::None)
    }

    /// [`batch_norm`](Self::batch_norm) followed by an activation, fused into one pass over the data.
    pub fn batch_norm_act(
        &self,
        gamma: &Tensor,
        beta: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        eps: f32,
        act: Activation,
    ) -> Result<Tensor> {
        if eps < 0.0 {
            return Err(Error::invalid(
                "batch_norm",
                format!("epsilon must not be negative, got {eps}"),
            ));
        }
        // The statistics are per-channel vectors: folding them costs O(C), the pass over x O(NHWC).
        let scale = gamma.div(&var.add_scalar(eps)?.sqrt()?)?;
        let shift = beta.sub(&mean.mul(&scale)?)?;
        self.channel_affine(&scale, &shift, act)
    }
}
