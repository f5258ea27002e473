//! Dense: a matrix product over the last axis, a bias, an activation.

use crate::config::LayerConfig;
use crate::init::glorot_uniform;
use crate::layer::{BuildContext, Layer, LayerSpec, Role, Weight};
use crate::layers::kernel_bias::KernelBias;
use crate::layers::Activation;
use crate::{Error, Result};
use keel_autograd::Var;

/// Keras `Dense(units, activation=None, use_bias=True)`.
pub struct DenseSpec {
    name: Option<String>,
    units: usize,
    activation: Activation,
    use_bias: bool,
}

/// A Dense spec with Keras' defaults (a bias, no activation).
pub fn dense(units: usize) -> DenseSpec {
    DenseSpec {
        name: None,
        units,
        activation: Activation::Linear,
        use_bias: true,
    }
}

spec_setters!(DenseSpec: name, use_bias, activation);

/// A built Dense layer.
pub struct Dense {
    name: String,
    params: KernelBias,
    activation: Activation,
    shape: Vec<usize>,
    flattened_from: Option<[usize; 3]>,
}

impl LayerSpec for DenseSpec {
    fn base_name(&self) -> &'static str {
        "dense"
    }
    fn build(self: Box<Self>, ctx: &BuildContext<'_>) -> Result<Box<dyn Layer>> {
        let name = self.name.unwrap_or_else(|| ctx.default_name.clone());
        let Some(&features) = ctx.input.last() else {
            return Err(Error::layer(
                &name,
                "needs an input with at least one axis besides the batch",
            ));
        };
        if self.units == 0 {
            return Err(Error::layer(
                &name,
                "a Dense layer needs at least 1 unit, got 0",
            ));
        }
        let kernel = glorot_uniform(
            &[features, self.units],
            features,
            self.units,
            ctx.seed,
            ctx.device,
        )?;
        let bias = self.use_bias.then_some(self.units);
        let mut shape = ctx.input.to_vec();
        *shape.last_mut().expect("checked above") = self.units;
        Ok(Box::new(Dense {
            params: KernelBias::new(&name, Role::DenseKernel, kernel, bias, ctx.device)?,
            name,
            activation: self.activation,
            shape,
            flattened_from: ctx.flattened_from,
        }))
    }
}

impl Layer for Dense {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "Dense"
    }
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }
    fn forward(&self, x: &Var, _training: bool) -> Result<Var> {
        let y = x
            .matmul(&self.params.kernel.var())
            .map_err(|e| Error::layer(&self.name, e.to_string()))?;
        let y = self.params.add_bias(y)?;
        self.activation.apply(&y)
    }
    fn weights(&self) -> Vec<Weight> {
        self.params.weights(&self.name, self.flattened_from)
    }
    fn config(&self) -> LayerConfig {
        LayerConfig::Dense {
            name: self.name.clone(),
            units: self.shape.last().copied().unwrap_or(0),
            use_bias: self.params.bias.is_some(),
            activation: self.activation,
        }
    }
    fn set_trainable(&self, trainable: bool) {
        self.params.set_trainable(trainable)
    }
}
