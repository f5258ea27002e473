//! Activations: as a layer of their own (`ReLU`, `Softmax`, …) or as the `activation` option of
//! Dense and convolution layers.

use crate::config::LayerConfig;
use crate::layer::{BuildContext, Layer, LayerSpec};
use crate::Result;
use keel_autograd::Var;

/// An activation function (Keras' `activation=` strings).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// Identity (`None` / `"linear"`).
    #[default]
    Linear,
    /// max(x, 0)
    Relu,
    /// min(max(x, 0), 6)
    Relu6,
    /// 1 / (1 + e^-x)
    Sigmoid,
    /// tanh(x)
    Tanh,
    /// Softmax over the last axis.
    Softmax,
    /// x · sigmoid(x) (Keras' `silu`, `swish`)
    Silu,
    /// min(max(x + 3, 0), 6) / 6 (Keras 3's `hard_sigmoid`, PyTorch's `Hardsigmoid`)
    #[serde(rename = "hard_sigmoid")]
    HardSigmoid,
    /// x · min(max(x + 3, 0), 6) / 6 (Keras' `hard_silu`, `hard_swish`; PyTorch's `Hardswish`)
    #[serde(rename = "hard_silu")]
    HardSwish,
    /// x · Φ(x), the exact GELU (Keras' `gelu` with `approximate=False`)
    Gelu,
}

impl Activation {
    /// Applies the function.
    pub fn apply(self, x: &Var) -> Result<Var> {
        Ok(match self {
            Activation::Linear => x.clone(),
            Activation::Relu => x.relu()?,
            Activation::Relu6 => x.relu6()?,
            Activation::Sigmoid => x.sigmoid()?,
            Activation::Tanh => x.tanh()?,
            Activation::Softmax => x.softmax()?,
            Activation::Silu => x.silu()?,
            Activation::HardSigmoid => x.hard_sigmoid()?,
            Activation::HardSwish => x.hard_swish()?,
            Activation::Gelu => x.gelu()?,
        })
    }

    /// The same function as a tensor op can apply in another op's pass (ReLU, ReLU6, SiLU,
    /// hard-swish), or `None`.
    pub fn fusable(self) -> Option<keel_tensor::Activation> {
        match self {
            Activation::Relu => Some(keel_tensor::Activation::Relu),
            Activation::Relu6 => Some(keel_tensor::Activation::Relu6),
            Activation::Silu => Some(keel_tensor::Activation::Silu),
            Activation::HardSwish => Some(keel_tensor::Activation::HardSwish),
            _ => None,
        }
    }

    /// Keras' name for it.
    pub fn keras_name(self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Relu => "relu",
            Activation::Relu6 => "relu6",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Softmax => "softmax",
            Activation::Silu => "silu",
            Activation::HardSigmoid => "hard_sigmoid",
            Activation::HardSwish => "hard_silu",
            Activation::Gelu => "gelu",
        }
    }

    /// Parses a Keras activation name (`relu`, `softmax`, …; `swish` and `hard_swish` too).
    pub fn from_name(name: &str) -> Option<Activation> {
        match name {
            "swish" => return Some(Activation::Silu),
            "hard_swish" => return Some(Activation::HardSwish),
            _ => {}
        }
        [
            Activation::Linear,
            Activation::Relu,
            Activation::Relu6,
            Activation::Sigmoid,
            Activation::Tanh,
            Activation::Softmax,
            Activation::Silu,
            Activation::HardSigmoid,
            Activation::HardSwish,
            Activation::Gelu,
        ]
        .into_iter()
        .find(|a| a.keras_name() == name)
    }
}

/// An activation as a layer (Keras `ReLU()`, `ReLU(max_value=6)`, `Softmax()`, `Activation(...)`).
pub struct ActivationLayer {
    name: String,
    function: Activation,
    shape: Vec<usize>,
}

/// The spec of an [`ActivationLayer`].
pub struct ActivationSpec {
    name: Option<String>,
    function: Activation,
}

spec_setters!(ActivationSpec: name);

/// Keras `ReLU()`.
pub fn relu() -> ActivationSpec {
    ActivationSpec {
        name: None,
        function: Activation::Relu,
    }
}

/// Keras `ReLU(max_value=6)`.
pub fn relu6() -> ActivationSpec {
    ActivationSpec {
        name: None,
        function: Activation::Relu6,
    }
}

/// Keras `Softmax()`.
pub fn softmax() -> ActivationSpec {
    ActivationSpec {
        name: None,
        function: Activation::Softmax,
    }
}

/// Keras `Activation(name)`.
pub fn activation(function: Activation) -> ActivationSpec {
    ActivationSpec {
        name: None,
        function,
    }
}

impl LayerSpec for ActivationSpec {
    fn base_name(&self) -> &'static str {
        match self.function {
            Activation::Relu | Activation::Relu6 => "re_lu",
            Activation::Softmax => "softmax",
            _ => "activation",
        }
    }
    fn build(self: Box<Self>, ctx: &BuildContext<'_>) -> Result<Box<dyn Layer>> {
        Ok(Box::new(ActivationLayer {
            name: self.name.unwrap_or_else(|| ctx.default_name.clone()),
            function: self.function,
            shape: ctx.input.to_vec(),
        }))
    }
}

impl Layer for ActivationLayer {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        match self.function {
            Activation::Relu | Activation::Relu6 => "ReLU",
            Activation::Softmax => "Softmax",
            _ => "Activation",
        }
    }
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }
    fn forward(&self, x: &Var, _training: bool) -> Result<Var> {
        self.function.apply(x)
    }
    fn fusable_activation(&self) -> Option<keel_tensor::Activation> {
        self.function.fusable()
    }
    fn config(&self) -> LayerConfig {
        LayerConfig::Activation {
            name: self.name.clone(),
            activation: self.function,
        }
    }
}
