//! Residual blocks: y = x + block(x), Keras' `Add()([x, block(x)])` for a block in a sequence.

use crate::config::LayerConfig;
use crate::layer::{BuildContext, Layer, LayerSpec, Weight};
use crate::sequential::{Sequential, SequentialSpec};
use crate::{Error, Result};
use keel_autograd::Var;

/// A block of layers with an identity shortcut around it when the shapes allow (always, or only
/// when input and output shapes agree).
pub struct ResidualSpec {
    body: SequentialSpec,
    only_if_same_shape: bool,
}

/// x + body(x); building fails if the body changes the shape.
pub fn residual(body: SequentialSpec) -> ResidualSpec {
    ResidualSpec {
        body,
        only_if_same_shape: false,
    }
}

/// x + body(x) when the body keeps the shape, body(x) otherwise (MobileNetV2's inverted
/// residual blocks add the shortcut only at stride 1 with equal channels).
pub fn residual_if_same_shape(body: SequentialSpec) -> ResidualSpec {
    ResidualSpec {
        body,
        only_if_same_shape: true,
    }
}

/// A built residual block.
pub struct Residual {
    body: Sequential,
    shortcut: bool,
    only_if_same_shape: bool,
}

impl LayerSpec for ResidualSpec {
    fn base_name(&self) -> &'static str {
        "residual"
    }
    fn downsampling(&self) -> (usize, usize) {
        self.body.downsampling()
    }
    fn build(self: Box<Self>, ctx: &BuildContext<'_>) -> Result<Box<dyn Layer>> {
        let body = self.body.build_on(ctx)?;
        let same = body.output_shape() == ctx.input;
        if !same && !self.only_if_same_shape {
            return Err(Error::layer(
                body.name(),
                format!(
                    "a residual block must keep the shape: input {:?}, output {:?}",
                    ctx.input,
                    body.output_shape()
                ),
            ));
        }
        Ok(Box::new(Residual {
            body,
            shortcut: same,
            only_if_same_shape: self.only_if_same_shape,
        }))
    }
}

impl Layer for Residual {
    fn name(&self) -> &str {
        self.body.name()
    }
    fn kind(&self) -> &'static str {
        if self.shortcut {
            "Residual"
        } else {
            "Sequential"
        }
    }
    fn output_shape(&self) -> &[usize] {
        self.body.output_shape()
    }
    fn forward(&self, x: &Var, training: bool) -> Result<Var> {
        let y = self.body.forward(x, training)?;
        if self.shortcut {
            Ok(x.add(&y)?)
        } else {
            Ok(y)
        }
    }
    fn weights(&self) -> Vec<Weight> {
        self.body.weights()
    }
    fn set_trainable(&self, trainable: bool) {
        self.body.set_trainable(trainable)
    }
    fn children(&self) -> Vec<&dyn Layer> {
        self.body.children()
    }
    fn config(&self) -> LayerConfig {
        LayerConfig::Residual {
            body: Box::new(self.body.config()),
            only_if_same_shape: self.only_if_same_shape,
        }
    }
}
