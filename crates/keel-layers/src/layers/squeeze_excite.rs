//! Squeeze-and-excitation (Hu et al.; torchvision's `SqueezeExcitation`): each channel scaled by
//! a gate computed from the mean of the whole map, y = x · gate(fc2(act(fc1(mean(x))))), fc1 and
//! fc2 being 1×1 convolutions with bias named `NAME.fc1` and `NAME.fc2` as in torchvision.

use super::{conv2d, Activation};
use crate::config::LayerConfig;
use crate::layer::{BuildContext, Layer, LayerSpec, Weight};
use crate::{Error, Result};
use keel_autograd::Var;

/// The spec of a [`SqueezeExcite`] block.
pub struct SqueezeExciteSpec {
    name: Option<String>,
    conv_names: Option<(String, String)>,
    squeeze: usize,
    activation: Activation,
    gate: Activation,
}

spec_setters!(SqueezeExciteSpec: name);

/// Squeeze-and-excitation down to `squeeze` channels, with `activation` between the two 1×1
/// convolutions and `gate` on the scale (ReLU and sigmoid by default).
pub fn squeeze_excite(squeeze: usize) -> SqueezeExciteSpec {
    SqueezeExciteSpec {
        name: None,
        conv_names: None,
        squeeze,
        activation: Activation::Relu,
        gate: Activation::Sigmoid,
    }
}

impl SqueezeExciteSpec {
    /// The activation between the convolutions (EfficientNet: SiLU).
    pub fn activation(mut self, a: Activation) -> Self {
        self.activation = a;
        self
    }
    /// The function that makes the scale (MobileNetV3: hard sigmoid).
    pub fn gate(mut self, g: Activation) -> Self {
        self.gate = g;
        self
    }
    /// Names the two convolutions (Keras' EfficientNet: `block1a_se_reduce`,
    /// `block1a_se_expand`) instead of `NAME.fc1` and `NAME.fc2`.
    pub fn conv_names(mut self, reduce: impl Into<String>, expand: impl Into<String>) -> Self {
        self.conv_names = Some((reduce.into(), expand.into()));
        self
    }
}

/// A built squeeze-and-excitation block.
pub struct SqueezeExcite {
    name: String,
    fc1: Box<dyn Layer>,
    fc2: Box<dyn Layer>,
    activation: Activation,
    gate: Activation,
    squeeze: usize,
    conv_names: Option<(String, String)>,
    shape: Vec<usize>,
}

impl LayerSpec for SqueezeExciteSpec {
    fn base_name(&self) -> &'static str {
        "squeeze_excite"
    }
    fn build(self: Box<Self>, ctx: &BuildContext<'_>) -> Result<Box<dyn Layer>> {
        let name = self.name.unwrap_or_else(|| ctx.default_name.clone());
        let &[_, _, channels] = ctx.input else {
            return Err(Error::layer(
                &name,
                format!("takes an [h, w, channels] map, got {:?}", ctx.input),
            ));
        };
        if self.squeeze == 0 {
            return Err(Error::layer(&name, "squeezes to at least 1 channel, got 0"));
        }
        let (reduce, expand) = self
            .conv_names
            .clone()
            .unwrap_or_else(|| (format!("{name}.fc1"), format!("{name}.fc2")));
        let on = |input: &[usize], filters: usize, conv: &str, seed: u64| {
            Box::new(conv2d(filters, 1).name(conv)).build(&BuildContext {
                input,
                device: ctx.device,
                seed,
                default_name: conv.to_string(),
                flattened_from: None,
            })
        };
        let fc1 = on(&[1, 1, channels], self.squeeze, &reduce, ctx.seed)?;
        let fc2 = on(&[1, 1, self.squeeze], channels, &expand, ctx.seed ^ 0x5E)?;
        Ok(Box::new(SqueezeExcite {
            name,
            fc1,
            fc2,
            activation: self.activation,
            gate: self.gate,
            squeeze: self.squeeze,
            conv_names: self.conv_names,
            shape: ctx.input.to_vec(),
        }))
    }
}

impl Layer for SqueezeExcite {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "SqueezeExcite"
    }
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }
    fn forward(&self, x: &Var, training: bool) -> Result<Var> {
        let squeezed = x.mean(&[1, 2], true)?;
        let hidden = self
            .activation
            .apply(&self.fc1.forward(&squeezed, training)?)?;
        let scale = self.gate.apply(&self.fc2.forward(&hidden, training)?)?;
        Ok(x.mul(&scale)?)
    }
    fn weights(&self) -> Vec<Weight> {
        let mut weights = self.fc1.weights();
        weights.extend(self.fc2.weights());
        weights
    }
    fn set_trainable(&self, trainable: bool) {
        self.fc1.set_trainable(trainable);
        self.fc2.set_trainable(trainable);
    }
    fn config(&self) -> LayerConfig {
        LayerConfig::SqueezeExcite {
            name: self.name.clone(),
            squeeze: self.squeeze,
            activation: self.activation,
            gate: self.gate,
            conv_names: self.conv_names.clone(),
        }
    }
}
