//! Residual blocks: y = x + block(x), Keras' `Add()([x, block(x)])` for a block in a sequence,
//! or y = projection(x) + block(x) where a strided or widening block needs a 1×1 convolution
//! on its shortcut (ResNet's `downsample`).

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
    projection: Option<SequentialSpec>,
}

/// x + body(x); building fails if the body changes the shape.
pub fn residual(body: SequentialSpec) -> ResidualSpec {
    ResidualSpec {
        body,
        only_if_same_shape: false,
        projection: None,
    }
}

/// x + body(x) when the body keeps the shape, body(x) otherwise (MobileNetV2's inverted
/// residual blocks add the shortcut only at stride 1 with equal channels).
pub fn residual_if_same_shape(body: SequentialSpec) -> ResidualSpec {
    ResidualSpec {
        body,
        only_if_same_shape: true,
        projection: None,
    }
}

impl ResidualSpec {
    /// Runs the shortcut through `shortcut` (a 1×1 convolution and batch norm, say), which
    /// must give the body's output shape: y = shortcut(x) + body(x).
    pub fn projection(mut self, shortcut: SequentialSpec) -> Self {
        self.projection = Some(shortcut);
        self
    }
}

/// A built residual block.
pub struct Residual {
    body: Sequential,
    shortcut: bool,
    only_if_same_shape: bool,
    projection: Option<Sequential>,
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
        if let Some(spec) = self.projection {
            let projection = spec.build_on(ctx)?;
            if projection.output_shape() != body.output_shape() {
                return Err(Error::layer(
                    body.name(),
                    format!(
                        "the shortcut `{}` gives {:?}, the block {:?}: they must be equal to be added",
                        projection.name(),
                        projection.output_shape(),
                        body.output_shape()
                    ),
                ));
            }
            return Ok(Box::new(Residual {
                body,
                shortcut: true,
                only_if_same_shape: false,
                projection: Some(projection),
            }));
        }
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
            projection: None,
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
        match (&self.projection, self.shortcut) {
            (Some(p), _) => Ok(p.forward(x, training)?.add(&y)?),
            (None, true) => Ok(x.add(&y)?),
            (None, false) => Ok(y),
        }
    }
    fn weights(&self) -> Vec<Weight> {
        let mut weights = self.body.weights();
        weights.extend(self.projection.iter().flat_map(|p| p.weights()));
        weights
    }
    fn set_trainable(&self, trainable: bool) {
        self.body.set_trainable(trainable);
        if let Some(p) = &self.projection {
            p.set_trainable(trainable);
        }
    }
    fn children(&self) -> Vec<&dyn Layer> {
        let mut children = self.body.children();
        children.extend(self.projection.iter().flat_map(|p| p.children()));
        children
    }
    fn config(&self) -> LayerConfig {
        LayerConfig::Residual {
            body: Box::new(self.body.config()),
            only_if_same_shape: self.only_if_same_shape,
            projection: self.projection.as_ref().map(|p| Box::new(p.config())),
        }
    }
}
