//! Per-position normalisations of the channels: LayerNormalization over the last axis (Keras'
//! `LayerNormalization`, PyTorch's `LayerNorm` on channels-last data, ConvNeXt's `LayerNorm2d`),
//! and ConvNeXt's layer scale, a learned factor per channel.

use crate::config::LayerConfig;
use crate::init::constant;
use crate::layer::{BuildContext, Layer, LayerSpec, Role, Weight};
use crate::{Error, Result};
use keel_autograd::{Param, Var};

/// The spec of a [`LayerNormalization`] layer.
pub struct LayerNormSpec {
    name: Option<String>,
    epsilon: f32,
}

spec_setters!(LayerNormSpec: name);

/// Keras `LayerNormalization(epsilon=1e-3)` over the last axis: y = (x − mean) / √(var + ε) ·
/// γ + β, mean and variance over each position's channels.
pub fn layer_norm() -> LayerNormSpec {
    LayerNormSpec {
        name: None,
        epsilon: 1e-3,
    }
}

impl LayerNormSpec {
    /// Added to the variance before the square root (PyTorch's default is 1e-5, ConvNeXt's 1e-6).
    pub fn epsilon(mut self, e: f32) -> Self {
        self.epsilon = e;
        self
    }
}

/// A built layer normalisation.
pub struct LayerNormalization {
    name: String,
    gamma: Param,
    beta: Param,
    epsilon: f32,
    shape: Vec<usize>,
}

/// The channels of an input shape, or an error naming the layer.
fn channels(name: &str, input: &[usize]) -> Result<usize> {
    input
        .last()
        .copied()
        .ok_or_else(|| Error::layer(name, "needs an input with a channel axis"))
}

impl LayerSpec for LayerNormSpec {
    fn base_name(&self) -> &'static str {
        "layer_normalization"
    }
    fn build(self: Box<Self>, ctx: &BuildContext<'_>) -> Result<Box<dyn Layer>> {
        let name = self.name.unwrap_or_else(|| ctx.default_name.clone());
        let c = channels(&name, ctx.input)?;
        Ok(Box::new(LayerNormalization {
            gamma: Param::new(format!("{name}/gamma"), constant(c, 1.0, ctx.device)?),
            beta: Param::new(format!("{name}/beta"), constant(c, 0.0, ctx.device)?),
            name,
            epsilon: self.epsilon,
            shape: ctx.input.to_vec(),
        }))
    }
}

impl Layer for LayerNormalization {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "LayerNormalization"
    }
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }
    fn forward(&self, x: &Var, _training: bool) -> Result<Var> {
        let centred = x.sub(&x.mean(&[-1], true)?)?;
        let variance = centred.mul(&centred)?.mean(&[-1], true)?;
        let normed = centred.div(&variance.add_scalar(self.epsilon)?.sqrt()?)?;
        Ok(normed.mul(&self.gamma.var())?.add(&self.beta.var())?)
    }
    fn weights(&self) -> Vec<Weight> {
        Weight::of(
            &self.name,
            &[(Role::Gamma, &self.gamma), (Role::Beta, &self.beta)],
        )
    }
    fn set_trainable(&self, trainable: bool) {
        self.gamma.set_trainable(trainable);
        self.beta.set_trainable(trainable);
    }
    fn config(&self) -> LayerConfig {
        LayerConfig::LayerNormalization {
            name: self.name.clone(),
            epsilon: self.epsilon,
        }
    }
}

/// The spec of a [`LayerScale`] layer.
pub struct LayerScaleSpec {
    name: Option<String>,
    init: f32,
}

spec_setters!(LayerScaleSpec: name);

/// y = x · γ, one learned γ per channel starting at `init` (ConvNeXt's layer scale, 1e-6).
pub fn layer_scale(init: f32) -> LayerScaleSpec {
    LayerScaleSpec { name: None, init }
}

/// A built layer scale.
pub struct LayerScale {
    name: String,
    gamma: Param,
    init: f32,
    shape: Vec<usize>,
}

impl LayerSpec for LayerScaleSpec {
    fn base_name(&self) -> &'static str {
        "layer_scale"
    }
    fn build(self: Box<Self>, ctx: &BuildContext<'_>) -> Result<Box<dyn Layer>> {
        let name = self.name.unwrap_or_else(|| ctx.default_name.clone());
        let c = channels(&name, ctx.input)?;
        Ok(Box::new(LayerScale {
            gamma: Param::new(format!("{name}/gamma"), constant(c, self.init, ctx.device)?),
            name,
            init: self.init,
            shape: ctx.input.to_vec(),
        }))
    }
}

impl Layer for LayerScale {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "LayerScale"
    }
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }
    fn forward(&self, x: &Var, _training: bool) -> Result<Var> {
        Ok(x.mul(&self.gamma.var())?)
    }
    fn weights(&self) -> Vec<Weight> {
        vec![Weight {
            layer: self.name.clone(),
            role: Role::LayerScale,
            param: self.gamma.clone(),
            flattened_from: None,
        }]
    }
    fn set_trainable(&self, trainable: bool) {
        self.gamma.set_trainable(trainable);
    }
    fn config(&self) -> LayerConfig {
        LayerConfig::LayerScale {
            name: self.name.clone(),
            init: self.init,
        }
    }
}
