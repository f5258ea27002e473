//! Pooling layers: MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D.

use crate::config::LayerConfig;
use crate::layer::{BuildContext, Layer, LayerSpec};
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::{Pool2dOptions, PoolOp};

/// Keras `MaxPooling2D` / `AveragePooling2D(pool_size, strides=pool_size, padding="valid")`.
pub struct PoolSpec {
    name: Option<String>,
    op: PoolOp,
    options: Pool2dOptions,
}

/// Max pooling with Keras' defaults (strides = pool size, `valid`).
pub fn max_pool2d(size: usize) -> PoolSpec {
    PoolSpec {
        name: None,
        op: PoolOp::Max,
        options: Pool2dOptions::new(size),
    }
}

/// Average pooling with Keras' defaults (strides = pool size, `valid`).
pub fn avg_pool2d(size: usize) -> PoolSpec {
    PoolSpec {
        name: None,
        op: PoolOp::Avg,
        options: Pool2dOptions::new(size),
    }
}

spec_setters!(PoolSpec: name, strides, padding);

impl PoolSpec {
    pub(crate) fn new(op: PoolOp, options: Pool2dOptions, name: String) -> PoolSpec {
        PoolSpec {
            name: Some(name),
            op,
            options,
        }
    }
}

/// A built pooling layer.
pub struct Pool2D {
    name: String,
    op: PoolOp,
    options: Pool2dOptions,
    shape: Vec<usize>,
}

impl LayerSpec for PoolSpec {
    fn base_name(&self) -> &'static str {
        match self.op {
            PoolOp::Max => "max_pooling2d",
            PoolOp::Avg => "average_pooling2d",
        }
    }
    fn downsampling(&self) -> (usize, usize) {
        self.options.stride
    }
    fn build(self: Box<Self>, ctx: &BuildContext<'_>) -> Result<Box<dyn Layer>> {
        let name = self.name.unwrap_or_else(|| ctx.default_name.clone());
        let &[h, w, c] = ctx.input else {
            return Err(Error::layer(
                &name,
                format!("expects [height, width, channels], got {:?}", ctx.input),
            ));
        };
        let probe = keel_tensor::Shape::new([1, h, w, c]);
        let dims = keel_tensor::pool2d_output_shape(&probe, &self.options)
            .map_err(|e| Error::layer(&name, e.to_string()))?;
        Ok(Box::new(Pool2D {
            name,
            op: self.op,
            options: self.options,
            shape: dims.dims()[1..].to_vec(),
        }))
    }
}

impl Layer for Pool2D {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        match self.op {
            PoolOp::Max => "MaxPooling2D",
            PoolOp::Avg => "AveragePooling2D",
        }
    }
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }
    fn forward(&self, x: &Var, _training: bool) -> Result<Var> {
        Ok(match self.op {
            PoolOp::Max => x.max_pool2d(&self.options)?,
            PoolOp::Avg => x.avg_pool2d(&self.options)?,
        })
    }
    fn config(&self) -> LayerConfig {
        LayerConfig::Pooling2D {
            name: self.name.clone(),
            pool: self.op.into(),
            pool_size: self.options.size,
            strides: self.options.stride,
            padding: self.options.padding,
        }
    }
}

/// Keras `GlobalAveragePooling2D` / `GlobalMaxPooling2D`: `[h, w, c]` → `[c]`.
pub struct GlobalPoolSpec {
    name: Option<String>,
    op: PoolOp,
}

/// Mean over height and width (Keras `GlobalAveragePooling2D`).
pub fn global_avg_pool2d() -> GlobalPoolSpec {
    GlobalPoolSpec {
        name: None,
        op: PoolOp::Avg,
    }
}

/// Max over height and width (Keras `GlobalMaxPooling2D`).
pub fn global_max_pool2d() -> GlobalPoolSpec {
    GlobalPoolSpec {
        name: None,
        op: PoolOp::Max,
    }
}

spec_setters!(GlobalPoolSpec: name);

/// A built global pooling layer.
pub struct GlobalPool2D {
    name: String,
    op: PoolOp,
    shape: Vec<usize>,
}

impl LayerSpec for GlobalPoolSpec {
    fn base_name(&self) -> &'static str {
        match self.op {
            PoolOp::Max => "global_max_pooling2d",
            PoolOp::Avg => "global_average_pooling2d",
        }
    }
    fn build(self: Box<Self>, ctx: &BuildContext<'_>) -> Result<Box<dyn Layer>> {
        let name = self.name.unwrap_or_else(|| ctx.default_name.clone());
        let &[_, _, c] = ctx.input else {
            return Err(Error::layer(
                &name,
                format!("expects [height, width, channels], got {:?}", ctx.input),
            ));
        };
        Ok(Box::new(GlobalPool2D {
            name,
            op: self.op,
            shape: vec![c],
        }))
    }
}

impl Layer for GlobalPool2D {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        match self.op {
            PoolOp::Max => "GlobalMaxPooling2D",
            PoolOp::Avg => "GlobalAveragePooling2D",
        }
    }
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }
    fn forward(&self, x: &Var, _training: bool) -> Result<Var> {
        Ok(match self.op {
            PoolOp::Max => x.global_max_pool2d()?,
            PoolOp::Avg => x.global_avg_pool2d()?,
        })
    }
    fn config(&self) -> LayerConfig {
        LayerConfig::GlobalPooling2D {
            name: self.name.clone(),
            pool: self.op.into(),
        }
    }
}
