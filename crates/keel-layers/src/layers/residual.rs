//! Residual blocks: y = x + block(x), Keras' `Add()([x, block(x)])` for a block in a sequence,
//! or y = projection(x) + block(x) where a strided or widening block needs a 1×1 convolution
//! on its shortcut (ResNet's `downsample`).

use crate::config::LayerConfig;
use crate::layer::{BuildContext, Layer, LayerSpec, Weight};
use crate::sequential::{Sequential, SequentialSpec};
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::Tensor;
use std::sync::atomic::{AtomicU64, Ordering};

/// A block of layers with an identity shortcut around it when the shapes allow (always, or only
/// when input and output shapes agree).
pub struct ResidualSpec {
    body: SequentialSpec,
    only_if_same_shape: bool,
    projection: Option<SequentialSpec>,
    drop_path: f32,
}

/// x + body(x); building fails if the body changes the shape.
pub fn residual(body: SequentialSpec) -> ResidualSpec {
    ResidualSpec {
        body,
        only_if_same_shape: false,
        projection: None,
        drop_path: 0.0,
    }
}

/// x + body(x) when the body keeps the shape, body(x) otherwise (MobileNetV2's inverted
/// residual blocks add the shortcut only at stride 1 with equal channels).
pub fn residual_if_same_shape(body: SequentialSpec) -> ResidualSpec {
    ResidualSpec {
        body,
        only_if_same_shape: true,
        projection: None,
        drop_path: 0.0,
    }
}

impl ResidualSpec {
    /// Runs the shortcut through `shortcut` (a 1×1 convolution and batch norm, say), which
    /// must give the body's output shape: y = shortcut(x) + body(x).
    pub fn projection(mut self, shortcut: SequentialSpec) -> Self {
        self.projection = Some(shortcut);
        self
    }

    /// Stochastic depth (torchvision's `StochasticDepth(rate, "row")`): while training, each
    /// sample's block output is dropped with probability `rate` and the kept ones scaled by
    /// 1 / (1 − rate), leaving the shortcut; inference is unchanged.
    pub fn drop_path(mut self, rate: f32) -> Self {
        self.drop_path = rate;
        self
    }
}

/// A built residual block.
pub struct Residual {
    body: Sequential,
    shortcut: bool,
    only_if_same_shape: bool,
    projection: Option<Sequential>,
    drop_path: f32,
    seed: u64,
    /// Training calls so far: the stochastic-depth masks' counter.
    calls: AtomicU64,
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
        if !(0.0..1.0).contains(&self.drop_path) {
            return Err(Error::layer(
                body.name(),
                format!("stochastic depth rate {} must be in [0, 1)", self.drop_path),
            ));
        }
        let (drop_path, seed, calls) = (self.drop_path, ctx.seed, AtomicU64::new(0));
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
                drop_path,
                seed,
                calls,
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
            drop_path,
            seed,
            calls,
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
        let mut y = self.body.forward(x, training)?;
        if training && self.shortcut && self.drop_path > 0.0 {
            let call = self.calls.fetch_add(1, Ordering::Relaxed);
            let mut per_sample = vec![1; y.dims().len()];
            per_sample[0] = y.dims()[0];
            let seed = self.seed ^ call.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mask = Tensor::dropout_mask(self.drop_path, seed, per_sample, y.tensor().device())?;
            y = y.mul(&Var::constant(mask))?;
        }
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
            drop_path: self.drop_path,
        }
    }
    fn draws(&self) -> Option<u64> {
        (self.drop_path > 0.0).then(|| self.calls.load(Ordering::Relaxed))
    }
    fn set_draws(&self, draws: u64) {
        self.calls.store(draws, Ordering::Relaxed);
    }
}
