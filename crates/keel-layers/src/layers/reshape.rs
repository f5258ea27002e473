//! Layers that only move data: Flatten and ZeroPadding2D.

use crate::config::LayerConfig;
use crate::layer::{BuildContext, Layer, LayerSpec};
use crate::{Error, Result};
use keel_autograd::Var;

/// Keras `Flatten()`: [h, w, c] → [h·w·c], in NHWC order (Keras' order).
pub struct FlattenSpec {
    name: Option<String>,
}

/// A Flatten spec.
pub fn flatten() -> FlattenSpec {
    FlattenSpec { name: None }
}

spec_setters!(FlattenSpec: name);

/// A built Flatten layer.
pub struct Flatten {
    name: String,
    input: Vec<usize>,
    shape: Vec<usize>,
}

impl Flatten {
    /// The [h, w, c] map it flattens, when its input is an image.
    pub fn flattened_from(&self) -> Option<[usize; 3]> {
        match *self.input {
            [h, w, c] => Some([h, w, c]),
            _ => None,
        }
    }
}

impl LayerSpec for FlattenSpec {
    fn base_name(&self) -> &'static str {
        "flatten"
    }
    fn build(self: Box<Self>, ctx: &BuildContext<'_>) -> Result<Box<dyn Layer>> {
        Ok(Box::new(Flatten {
            name: self.name.unwrap_or_else(|| ctx.default_name.clone()),
            input: ctx.input.to_vec(),
            shape: vec![ctx.input.iter().product()],
        }))
    }
}

impl Layer for Flatten {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "Flatten"
    }
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }
    fn forward(&self, x: &Var, _training: bool) -> Result<Var> {
        Ok(x.flatten()?)
    }
    fn config(&self) -> LayerConfig {
        LayerConfig::Flatten {
            name: self.name.clone(),
        }
    }
}

/// Keras `ZeroPadding2D(((top, bottom), (left, right)))`.
pub struct ZeroPaddingSpec {
    name: Option<String>,
    pads: [(usize, usize); 2],
}

/// Zero padding of ((top, bottom), (left, right)) pixels.
pub fn zero_padding2d(top_bottom: (usize, usize), left_right: (usize, usize)) -> ZeroPaddingSpec {
    ZeroPaddingSpec {
        name: None,
        pads: [top_bottom, left_right],
    }
}

spec_setters!(ZeroPaddingSpec: name);

/// A built ZeroPadding2D layer.
pub struct ZeroPadding2D {
    name: String,
    pads: [(usize, usize); 2],
    shape: Vec<usize>,
}

impl LayerSpec for ZeroPaddingSpec {
    fn base_name(&self) -> &'static str {
        "zero_padding2d"
    }
    fn build(self: Box<Self>, ctx: &BuildContext<'_>) -> Result<Box<dyn Layer>> {
        let name = self.name.unwrap_or_else(|| ctx.default_name.clone());
        let &[h, w, c] = ctx.input else {
            return Err(Error::layer(
                &name,
                format!("expects [height, width, channels], got {:?}", ctx.input),
            ));
        };
        let [(t, b), (l, r)] = self.pads;
        Ok(Box::new(ZeroPadding2D {
            name,
            pads: self.pads,
            shape: vec![h + t + b, w + l + r, c],
        }))
    }
}

impl Layer for ZeroPadding2D {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "ZeroPadding2D"
    }
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }
    fn forward(&self, x: &Var, _training: bool) -> Result<Var> {
        let [hp, wp] = self.pads;
        Ok(x.pad(&[(0, 0), hp, wp, (0, 0)], 0.0)?)
    }
    fn zero_padding(&self) -> Option<[(usize, usize); 2]> {
        Some(self.pads)
    }
    fn config(&self) -> LayerConfig {
        LayerConfig::ZeroPadding2D {
            name: self.name.clone(),
            padding: self.pads,
        }
    }
}
