//! Batch normalisation: the inference form as one fused per-channel affine pass (optionally
//! followed by an activation in the same pass), and the per-channel passes of the training form
//! (batch statistics, the backward pass's sums and its input gradient).

use crate::op::Activation;
use crate::tensor::Storage;
use crate::{cpu, gpu, DType, Error, Result, Tensor};

/// An activation that followed a per-channel affine map, `act(x · scale + shift)`: the
/// training-mode batch-norm gradient passes ([`Tensor::channel_grad_sums`],
/// [`Tensor::channel_combine`]) multiply the incoming gradient by its derivative on the fly.
#[derive(Clone, Copy, Debug)]
pub struct AffineActivation<'a> {
    /// Per-channel scale of the affine map.
    pub scale: &'a Tensor,
    /// Per-channel shift of the affine map.
    pub shift: &'a Tensor,
    /// The activation after it.
    pub activation: Activation,
}

impl<'a> AffineActivation<'a> {
    fn check(&self, op: &'static str, g: &Tensor) -> Result<()> {
        g.channels(op, &[self.scale, self.shift]).map(|_| ())
    }

    fn on_cpu(self) -> cpu::Through<'a> {
        cpu::Through {
            scale: self.scale.cpu_f32(),
            shift: self.shift.cpu_f32(),
            activation: self.activation,
        }
    }
}

impl Tensor {
    /// `y = act(x · scale[c] + shift[c])` along the last (channel) axis, in one pass.
    pub fn channel_affine(
        &self,
        scale: &Tensor,
        shift: &Tensor,
        act: Activation,
    ) -> Result<Tensor> {
        const OP: &str = "channel_affine";
        let c = self.channels(OP, &[scale, shift])?;
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

    /// Per-channel mean and biased variance over every axis but the last (the batch statistics
    /// of a training-mode batch normalisation), each of shape `[C]`. On the CPU one pass over the
    /// data, with sums taken about the first pixel's values so a large mean costs no precision.
    pub fn channel_moments(&self) -> Result<(Tensor, Tensor)> {
        const OP: &str = "channel_moments";
        let c = self.channels(OP, &[])?;
        if self.rank() < 2 || self.elem_count() == 0 {
            return Err(Error::invalid(
                OP,
                format!(
                    "needs at least one pixel of {c} channels, got shape {}",
                    self.shape()
                ),
            ));
        }
        match self.storage() {
            Storage::Gpu(_) => {
                let axes = self.leading_axes();
                let mean = self.mean(&axes, false)?;
                let centered = self.sub(&mean)?;
                Ok((mean, centered.mul(&centered)?.mean(&axes, false)?))
            }
            Storage::Cpu(_) => {
                let (mean, var) = cpu::channel_moments(self.cpu_f32(), c);
                Ok((
                    self.with_cpu(mean, [c].into()),
                    self.with_cpu(var, [c].into()),
                ))
            }
        }
    }

    /// Per-channel Σ g and Σ g·(x − mean) over every axis but the last, with this tensor as the
    /// gradient g (same shape as `x`; `mean` one value per channel): the sums of the backward
    /// pass of a training-mode batch normalisation, one pass over g and x on the CPU. With
    /// `through`, g is first multiplied by the derivative of the activation that followed.
    pub fn channel_grad_sums(
        &self,
        x: &Tensor,
        mean: &Tensor,
        through: Option<AffineActivation<'_>>,
    ) -> Result<(Tensor, Tensor)> {
        const OP: &str = "channel_grad_sums";
        let c = self.channels(OP, &[mean])?;
        self.same_shape(OP, x)?;
        through.map_or(Ok(()), |t| t.check(OP, self))?;
        match self.storage() {
            Storage::Gpu(_) => {
                let axes = self.leading_axes();
                let g = self.through_activation(x, through)?;
                let centered = x.sub(mean)?;
                Ok((g.sum(&axes, false)?, g.mul(&centered)?.sum(&axes, false)?))
            }
            Storage::Cpu(_) => {
                let (sum, dot) = cpu::channel_grad_sums(
                    self.cpu_f32(),
                    x.cpu_f32(),
                    mean.cpu_f32(),
                    through.map(AffineActivation::on_cpu),
                );
                Ok((
                    self.with_cpu(sum, [c].into()),
                    self.with_cpu(dot, [c].into()),
                ))
            }
        }
    }

    /// `a[c] · g + b[c] · x + k[c]` elementwise with this tensor as g, `x` of its shape and
    /// `a`, `b`, `k` one value per channel (the last axis): the input gradient of a
    /// training-mode batch normalisation, in one pass on the CPU. With `through`, g is first
    /// multiplied by the derivative of the activation that followed.
    pub fn channel_combine(
        &self,
        x: &Tensor,
        (a, b, k): (&Tensor, &Tensor, &Tensor),
        through: Option<AffineActivation<'_>>,
    ) -> Result<Tensor> {
        const OP: &str = "channel_combine";
        self.channels(OP, &[a, b, k])?;
        self.same_shape(OP, x)?;
        through.map_or(Ok(()), |t| t.check(OP, self))?;
        match self.storage() {
            Storage::Gpu(_) => {
                let g = self.through_activation(x, through)?;
                g.mul(a)?.add(&x.mul(b)?)?.add(k)
            }
            Storage::Cpu(_) => {
                let y = cpu::channel_combine(
                    self.cpu_f32(),
                    x.cpu_f32(),
                    (a.cpu_f32(), b.cpu_f32(), k.cpu_f32()),
                    through.map(AffineActivation::on_cpu),
                );
                Ok(self.with_cpu(y, self.shape().clone()))
            }
        }
    }

    /// This gradient times the derivative of `through`'s activation at its input (computed from
    /// `x`), as separate passes (the wgpu form of the fused CPU loops).
    fn through_activation(
        &self,
        x: &Tensor,
        through: Option<AffineActivation<'_>>,
    ) -> Result<Tensor> {
        let Some((t, op)) = through.and_then(|t| t.activation.gradient().map(|op| (t, op))) else {
            return Ok(self.clone());
        };
        let input = x.channel_affine(t.scale, t.shift, Activation::None)?;
        self.binary(&input, op)
    }

    /// The channel count (last axis) of this f32 tensor, after checking that each of
    /// `per_channel` is an f32 vector of that many values on the same device.
    fn channels(&self, op: &'static str, per_channel: &[&Tensor]) -> Result<usize> {
        self.expect_dtype(op, DType::F32)?;
        let c = self.dims().last().copied().unwrap_or(0);
        for v in per_channel {
            self.same_device(op, v)?;
            v.expect_dtype(op, DType::F32)?;
            if v.rank() != 1 || v.dims()[0] != c {
                return Err(Error::shapes(
                    op,
                    self.shape(),
                    v.shape(),
                    format!("per-channel vectors must have {c} values (the last axis)"),
                ));
            }
        }
        Ok(c)
    }

    /// An error unless `other` is an f32 tensor of this shape on the same device.
    fn same_shape(&self, op: &'static str, other: &Tensor) -> Result<()> {
        self.same_device(op, other)?;
        other.expect_dtype(op, DType::F32)?;
        if other.shape() != self.shape() {
            return Err(Error::shapes(
                op,
                self.shape(),
                other.shape(),
                "shapes must match",
            ));
        }
        Ok(())
    }

    /// Every axis but the last.
    fn leading_axes(&self) -> Vec<isize> {
        (0..self.rank() as isize - 1).collect()
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
