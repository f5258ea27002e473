//! Differentiable network ops: convolution, pooling, softmax, losses, batch normalisation in
//! training mode, dropout.

use crate::backward::Rule;
use crate::{Result, Var};
use keel_tensor::{Activation, Conv2dOptions, DType, Pool2dOptions, PoolOp, Tensor};

/// Batch statistics of one training-mode batch normalisation, for the running averages
/// (updated outside the graph).
pub struct BatchStats {
    /// Per-channel mean of the batch.
    pub mean: Tensor,
    /// Per-channel (biased) variance of the batch.
    pub variance: Tensor,
}

impl Var {
    /// 2-D convolution of an NHWC batch with an HWIO kernel (see [`Tensor::conv2d`]).
    pub fn conv2d(&self, kernel: &Var, options: &Conv2dOptions) -> Result<Var> {
        let (x, w) = (self.tensor(), kernel.tensor());
        let y = x.conv2d(w, options)?;
        Ok(Var::record("conv2d", y, &[self, kernel], || Rule::Conv2d {
            x: kernel.is_tracked().then(|| x.clone()),
            w: self.is_tracked().then(|| w.clone()),
            x_shape: x.shape().clone(),
            w_shape: w.shape().clone(),
            options: *options,
        }))
    }

    /// Depthwise convolution with a Keras-layout kernel [kh, kw, channels, multiplier].
    pub fn depthwise_conv2d(&self, kernel: &Var, options: &Conv2dOptions) -> Result<Var> {
        let channels = self.dims().last().copied().unwrap_or(0);
        let k = kernel.dims();
        if k.len() != 4 || k[2] != channels {
            // The tensor op words the error.
            self.tensor().depthwise_conv2d(kernel.tensor(), options)?;
        }
        let grouped = kernel.reshape([k[0], k[1], 1, k[2] * k[3]])?;
        self.conv2d(&grouped, &options.groups(channels))
    }

    fn pool(&self, options: &Pool2dOptions, op: PoolOp) -> Result<Var> {
        let x = self.tensor();
        let y = match op {
            PoolOp::Max => x.max_pool2d(options)?,
            PoolOp::Avg => x.avg_pool2d(options)?,
        };
        Ok(Var::record("pool2d", y, &[self], || Rule::Pool {
            x: x.clone(),
            options: *options,
            op,
        }))
    }

    /// Max pooling (gradient to the first maximum of each window).
    pub fn max_pool2d(&self, options: &Pool2dOptions) -> Result<Var> {
        self.pool(options, PoolOp::Max)
    }

    /// Average pooling (padding excluded, as in Keras).
    pub fn avg_pool2d(&self, options: &Pool2dOptions) -> Result<Var> {
        self.pool(options, PoolOp::Avg)
    }

    /// Mean over height and width: [N, H, W, C] → [N, C].
    pub fn global_avg_pool2d(&self) -> Result<Var> {
        let y = self.tensor().global_avg_pool2d()?;
        Ok(Var::record("global_avg_pool2d", y, &[self], || {
            Rule::GlobalAvg {
                input: self.shape().clone(),
            }
        }))
    }

    /// Max over height and width: [N, H, W, C] → [N, C].
    pub fn global_max_pool2d(&self) -> Result<Var> {
        let y = self.tensor().global_max_pool2d()?;
        Ok(Var::record("global_max_pool2d", y, &[self], || {
            Rule::GlobalMax {
                x: self.tensor().clone(),
            }
        }))
    }

    /// Softmax along the last axis.
    pub fn softmax(&self) -> Result<Var> {
        let y = self.tensor().softmax()?;
        Ok(Var::record("softmax", y.clone(), &[self], || {
            Rule::Softmax { y }
        }))
    }

    /// Log-softmax along the last axis.
    pub fn log_softmax(&self) -> Result<Var> {
        let y = self.tensor().log_softmax()?;
        Ok(Var::record("log_softmax", y.clone(), &[self], || {
            Rule::LogSoftmax { y }
        }))
    }

    /// Mean cross-entropy between the softmax of these logits [N, classes] and target
    /// distributions of the same shape (one-hot rows, or soft labels). Computed from the
    /// log-softmax, so logits of ±1e4 neither overflow nor lose the gradient.
    pub fn softmax_cross_entropy(&self, targets: &Tensor) -> Result<Var> {
        let logits = self.tensor();
        let log_probs = logits.log_softmax()?;
        let rows = logits.elem_count() / logits.dims().last().copied().unwrap_or(1).max(1);
        let loss = targets
            .mul(&log_probs)?
            .sum_all()?
            .mul_scalar(-1.0 / rows.max(1) as f32)?;
        Ok(Var::record("softmax_cross_entropy", loss, &[self], || {
            Rule::SoftmaxCrossEntropy {
                log_probs,
                targets: targets.clone(),
            }
        }))
    }

    /// Like [`softmax_cross_entropy`](Var::softmax_cross_entropy) with integer class labels
    /// (an i32 tensor `[N]`) instead of target distributions.
    pub fn sparse_softmax_cross_entropy(&self, labels: &Tensor) -> Result<Var> {
        let classes = self.dims().last().copied().unwrap_or(0);
        let targets = one_hot(labels, classes)?;
        self.softmax_cross_entropy(&targets)
    }

    /// Batch normalisation in training mode over every axis but the last (channels):
    /// (x − mean) / √(var + ε) · γ + β with the batch's mean and biased variance, differentiable
    /// through all of them. Returns the output and the batch statistics.
    pub fn batch_norm_train(
        &self,
        gamma: &Var,
        beta: &Var,
        epsilon: f32,
    ) -> Result<(Var, BatchStats)> {
        self.batch_norm_train_act(gamma, beta, epsilon, Activation::None)
    }

    /// [`batch_norm_train`](Var::batch_norm_train) followed by `activation`, as one node in
    /// the graph: the statistics take one pass over x, the output one more, and the backward
    /// pass two (the activation's derivative applied inside them).
    pub fn batch_norm_train_act(
        &self,
        gamma: &Var,
        beta: &Var,
        epsilon: f32,
        activation: Activation,
    ) -> Result<(Var, BatchStats)> {
        let x = self.tensor();
        let (mean, variance) = x.channel_moments()?;
        let std = variance.add_scalar(epsilon)?.sqrt()?;
        let scale = gamma.tensor().div(&std)?;
        let shift = beta.tensor().sub(&mean.mul(&scale)?)?;
        let y = x.channel_affine(&scale, &shift, activation)?;
        let y = Var::record("batch_norm_train", y, &[self, gamma, beta], || {
            Rule::BatchNormTrain {
                x: x.clone(),
                mean: mean.clone(),
                std,
                scale,
                shift,
                activation,
            }
        });
        Ok((y, BatchStats { mean, variance }))
    }

    /// Inverted dropout: zeroes each element with probability `rate` and scales the rest by
    /// 1 / (1 − rate). The mask comes from `seed` alone, so it is the same on every device.
    pub fn dropout(&self, rate: f32, seed: u64) -> Result<Var> {
        if !(0.0..1.0).contains(&rate) {
            return Err(keel_tensor::Error::InvalidArgument {
                op: "dropout",
                msg: format!("rate {rate} must be in [0, 1)"),
            }
            .into());
        }
        if rate == 0.0 {
            return Ok(self.clone());
        }
        let mask = Tensor::dropout_mask(rate, seed, self.shape().clone(), self.tensor().device())?;
        self.mul(&Var::constant(mask))
    }
}

/// Rows of `classes` zeros with a 1 at each label (labels: i32 `[N]`); out-of-range labels give
/// all-zero rows.
pub fn one_hot(labels: &Tensor, classes: usize) -> Result<Tensor> {
    let n = labels.elem_count();
    let index: Vec<f32> = (0..classes).map(|c| c as f32).collect();
    let index = Tensor::from_vec(index, [1, classes], labels.device())?;
    Ok(labels
        .to_dtype(DType::F32)?
        .reshape([n, 1])?
        .equal(&index)?)
}
