//! BatchNormalization, and the input preprocessing layers Rescaling and Normalization.

use crate::config::LayerConfig;
use crate::init::constant;
use crate::layer::{BuildContext, Fused, Layer, LayerSpec, Role, Weight};
use crate::{Error, Result};
use keel_autograd::{no_grad, Param, Var};
use keel_tensor::{Activation, Tensor};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};

/// Keras `BatchNormalization(momentum=0.99, epsilon=1e-3)` over the last axis.
pub struct BatchNormSpec {
    name: Option<String>,
    momentum: f32,
    epsilon: f32,
}

/// A BatchNormalization spec with Keras' defaults (momentum 0.99, epsilon 1e-3).
pub fn batch_norm() -> BatchNormSpec {
    BatchNormSpec {
        name: None,
        momentum: 0.99,
        epsilon: 1e-3,
    }
}

spec_setters!(BatchNormSpec: name);

impl BatchNormSpec {
    /// Weight of the old moving statistics in each update (Keras' convention; PyTorch's
    /// `momentum=0.1` is 0.9 here).
    pub fn momentum(mut self, m: f32) -> Self {
        self.momentum = m;
        self
    }
    /// Added to the variance before the square root.
    pub fn epsilon(mut self, e: f32) -> Self {
        self.epsilon = e;
        self
    }
}

/// A built batch-normalisation layer. Frozen (`set_trainable(false)`), it always runs in
/// inference mode on its moving statistics, as in Keras.
pub struct BatchNormalization {
    name: String,
    gamma: Param,
    beta: Param,
    moving_mean: Param,
    moving_variance: Param,
    momentum: f32,
    epsilon: f32,
    shape: Vec<usize>,
    trainable: AtomicBool,
}

impl LayerSpec for BatchNormSpec {
    fn base_name(&self) -> &'static str {
        "batch_normalization"
    }
    fn build(self: Box<Self>, ctx: &BuildContext<'_>) -> Result<Box<dyn Layer>> {
        let name = self.name.unwrap_or_else(|| ctx.default_name.clone());
        let Some(&c) = ctx.input.last() else {
            return Err(Error::layer(&name, "needs an input with a channel axis"));
        };
        let stat = |suffix: &str, value: f32| -> Result<Param> {
            let p = Param::new(format!("{name}/{suffix}"), constant(c, value, ctx.device)?);
            Ok(p)
        };
        let moving_mean = stat("moving_mean", 0.0)?;
        let moving_variance = stat("moving_variance", 1.0)?;
        moving_mean.set_trainable(false);
        moving_variance.set_trainable(false);
        Ok(Box::new(BatchNormalization {
            gamma: stat("gamma", 1.0)?,
            beta: stat("beta", 0.0)?,
            moving_mean,
            moving_variance,
            name,
            momentum: self.momentum,
            epsilon: self.epsilon,
            shape: ctx.input.to_vec(),
            trainable: AtomicBool::new(true),
        }))
    }
}

impl BatchNormalization {
    /// Training-mode forward pass on the batch's statistics, then `activation`, as one graph
    /// node; the moving statistics take a step towards the batch's.
    fn forward_batch_statistics(&self, x: &Var, activation: Activation) -> Result<Var> {
        let (y, stats) = x
            .batch_norm_train_act(
                &self.gamma.var(),
                &self.beta.var(),
                self.epsilon,
                activation,
            )
            .map_err(|e| Error::layer(&self.name, e.to_string()))?;
        no_grad(|| -> Result<()> {
            self.update_moving(&self.moving_mean, &stats.mean)?;
            self.update_moving(&self.moving_variance, &stats.variance)
        })?;
        Ok(y)
    }

    /// moving ← moving · momentum + batch · (1 − momentum), outside the graph.
    fn update_moving(&self, moving: &Param, batch: &Tensor) -> Result<()> {
        let m = self.momentum;
        let next = moving
            .value()
            .mul_scalar(m)?
            .add(&batch.mul_scalar(1.0 - m)?)?;
        moving.set_value(next)?;
        Ok(())
    }
}

impl Layer for BatchNormalization {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "BatchNormalization"
    }
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }
    fn forward(&self, x: &Var, training: bool) -> Result<Var> {
        if training && self.trainable.load(Ordering::Relaxed) {
            return self.forward_batch_statistics(x, Activation::None);
        }
        if let Some(y) = self.forward_fused(x, training, &Fused::default()) {
            return y;
        }
        let (gamma, beta) = (self.gamma.var(), self.beta.var());
        let (mean, var) = (self.moving_mean.value(), self.moving_variance.value());
        // scale = γ / √(var + ε), shift = β − mean · scale; y = x · scale + shift.
        let inv_std = Var::constant(var.add_scalar(self.epsilon)?.sqrt()?);
        let scale = gamma.div(&inv_std)?;
        let shift = beta.sub(&Var::constant(mean).mul(&scale)?)?;
        Ok(x.mul(&scale)?.add(&shift)?)
    }
    fn inference_affine(&self, training: bool) -> Option<Result<(Tensor, Tensor)>> {
        let batch_statistics = training && self.trainable.load(Ordering::Relaxed);
        if batch_statistics || self.gamma.var().is_tracked() || self.beta.var().is_tracked() {
            return None;
        }
        // scale = γ / √(var + ε), shift = β − mean · scale: O(C) work.
        let affine = || -> Result<(Tensor, Tensor)> {
            let var = self.moving_variance.value();
            let scale = self
                .gamma
                .value()
                .div(&var.add_scalar(self.epsilon)?.sqrt()?)?;
            let shift = self
                .beta
                .value()
                .sub(&self.moving_mean.value().mul(&scale)?)?;
            Ok((scale, shift))
        };
        Some(affine())
    }
    fn forward_fused(&self, x: &Var, training: bool, fused: &Fused) -> Option<Result<Var>> {
        if fused.padding.is_some() || fused.affine.is_some() {
            return None;
        }
        if training && self.trainable.load(Ordering::Relaxed) {
            return Some(self.forward_batch_statistics(x, fused.activation));
        }
        if x.is_tracked() {
            return None;
        }
        let affine = self.inference_affine(training)?;
        Some(affine.and_then(|(scale, shift)| {
            let y = x
                .tensor()
                .channel_affine(&scale, &shift, fused.activation)?;
            Ok(Var::constant(y))
        }))
    }
    fn weights(&self) -> Vec<Weight> {
        Weight::of(
            &self.name,
            &[
                (Role::Gamma, &self.gamma),
                (Role::Beta, &self.beta),
                (Role::MovingMean, &self.moving_mean),
                (Role::MovingVariance, &self.moving_variance),
            ],
        )
    }
    fn set_trainable(&self, trainable: bool) {
        self.trainable.store(trainable, Ordering::Relaxed);
        self.gamma.set_trainable(trainable);
        self.beta.set_trainable(trainable);
    }
    fn config(&self) -> LayerConfig {
        LayerConfig::BatchNormalization {
            name: self.name.clone(),
            momentum: self.momentum,
            epsilon: self.epsilon,
        }
    }
}

/// A Rescaling factor: one for every channel, or one per channel (Keras' `scale` is either).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Factor {
    /// The same factor for every channel.
    All(f32),
    /// One factor per channel.
    PerChannel(Vec<f32>),
}

/// Keras `Rescaling(scale, offset)`: y = x · scale + offset.
pub struct Rescaling {
    name: String,
    scale: Factor,
    offset: f32,
    /// The per-channel factors, on the device.
    factors: Option<Tensor>,
    shape: Vec<usize>,
}

/// The spec of a [`Rescaling`] layer.
pub struct RescalingSpec {
    name: Option<String>,
    scale: Factor,
    offset: f32,
}

spec_setters!(RescalingSpec: name);
spec_setters!(NormalizationSpec: name);

/// y = x · scale + offset (e.g. `rescaling(1.0 / 127.5, -1.0)` for MobileNet's [-1, 1] inputs).
pub fn rescaling(scale: f32, offset: f32) -> RescalingSpec {
    RescalingSpec {
        name: None,
        scale: Factor::All(scale),
        offset,
    }
}

/// y = x · scale_c + offset, one factor per channel c.
pub fn rescaling_per_channel(scale: &[f32], offset: f32) -> RescalingSpec {
    RescalingSpec {
        name: None,
        scale: Factor::PerChannel(scale.to_vec()),
        offset,
    }
}

/// The channels of an input shape, or an error naming the layer.
fn channels(name: &str, input: &[usize]) -> Result<usize> {
    input
        .last()
        .copied()
        .ok_or_else(|| Error::layer(name, "needs an input with a channel axis"))
}

impl LayerSpec for RescalingSpec {
    fn base_name(&self) -> &'static str {
        "rescaling"
    }
    fn build(self: Box<Self>, ctx: &BuildContext<'_>) -> Result<Box<dyn Layer>> {
        let name = self.name.unwrap_or_else(|| ctx.default_name.clone());
        let factors = match &self.scale {
            Factor::All(_) => None,
            Factor::PerChannel(scale) => {
                let c = channels(&name, ctx.input)?;
                if scale.len() != c {
                    return Err(Error::layer(
                        &name,
                        format!("{} factors for {c} channels", scale.len()),
                    ));
                }
                Some(Tensor::from_slice(scale, [c], ctx.device)?)
            }
        };
        Ok(Box::new(Rescaling {
            name,
            scale: self.scale,
            offset: self.offset,
            factors,
            shape: ctx.input.to_vec(),
        }))
    }
}

impl Layer for Rescaling {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "Rescaling"
    }
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }
    fn forward(&self, x: &Var, _training: bool) -> Result<Var> {
        match (&self.scale, &self.factors) {
            (_, Some(factors)) => Ok(x
                .mul(&Var::constant(factors.clone()))?
                .add_scalar(self.offset)?),
            (Factor::All(scale), None) => Ok(x.affine(*scale, self.offset)?),
            (Factor::PerChannel(_), None) => unreachable!("built with its factors"),
        }
    }
    fn config(&self) -> LayerConfig {
        LayerConfig::Rescaling {
            name: self.name.clone(),
            scale: self.scale.clone(),
            offset: self.offset,
        }
    }
}

/// Keras `Normalization` per channel: y = (x − mean) / max(√variance, 10⁻⁷), its mean and
/// variance being weights (statistics a file sets, never trained), as Keras keeps them.
pub struct Normalization {
    name: String,
    mean: Param,
    variance: Param,
    initial: (Vec<f32>, Vec<f32>),
    shape: Vec<usize>,
}

/// The spec of a [`Normalization`] layer.
pub struct NormalizationSpec {
    name: Option<String>,
    mean: Vec<f32>,
    variance: Vec<f32>,
}

/// Per-channel standardisation with the given statistics (e.g. ImageNet's, for torchvision
/// models: mean (0.485, 0.456, 0.406)·255 …); empty slices start at mean 0 and variance 1, as
/// Keras' `Normalization()` does before its statistics are loaded.
pub fn normalization(mean: &[f32], variance: &[f32]) -> NormalizationSpec {
    NormalizationSpec {
        name: None,
        mean: mean.to_vec(),
        variance: variance.to_vec(),
    }
}

impl LayerSpec for NormalizationSpec {
    fn base_name(&self) -> &'static str {
        "normalization"
    }
    fn build(self: Box<Self>, ctx: &BuildContext<'_>) -> Result<Box<dyn Layer>> {
        let name = self.name.unwrap_or_else(|| ctx.default_name.clone());
        let c = channels(&name, ctx.input)?;
        let given = |values: &[f32], default: f32| -> Result<Tensor> {
            match values.len() {
                0 => constant(c, default, ctx.device),
                n if n == c => Ok(Tensor::from_slice(values, [c], ctx.device)?),
                n => Err(Error::layer(
                    &name,
                    format!("{n} statistics for {c} channels"),
                )),
            }
        };
        let mean = Param::new(format!("{name}/mean"), given(&self.mean, 0.0)?);
        let variance = Param::new(format!("{name}/variance"), given(&self.variance, 1.0)?);
        mean.set_trainable(false);
        variance.set_trainable(false);
        Ok(Box::new(Normalization {
            mean,
            variance,
            initial: (self.mean, self.variance),
            name,
            shape: ctx.input.to_vec(),
        }))
    }
}

impl Layer for Normalization {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "Normalization"
    }
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }
    fn forward(&self, x: &Var, _training: bool) -> Result<Var> {
        let std = Var::constant(self.variance.value().sqrt()?.maximum_scalar(1e-7)?);
        Ok(x.sub(&Var::constant(self.mean.value()))?.div(&std)?)
    }
    fn weights(&self) -> Vec<Weight> {
        Weight::of(
            &self.name,
            &[(Role::Mean, &self.mean), (Role::Variance, &self.variance)],
        )
    }
    fn config(&self) -> LayerConfig {
        LayerConfig::Normalization {
            name: self.name.clone(),
            mean: self.initial.0.clone(),
            variance: self.initial.1.clone(),
        }
    }
}
