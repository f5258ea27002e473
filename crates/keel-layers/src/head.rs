//! Classification heads over a backbone's feature map, and the model that stacks them.

use crate::layer::LayerSpec;
use crate::layers::{dense, dropout, flatten, global_avg_pool2d, Activation};
use crate::sequential::{sequential, Prebuilt, Sequential};
use crate::{Error, Layer, Result};
use keel_tensor::memory::MemoryEstimate;
use keel_tensor::Device;

/// How a head turns the [h, w, c] feature map into a vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// Keras `Flatten()`: all h·w·c values (25,088 for VGG16's 7×7×512).
    Flatten,
    /// Keras `GlobalAveragePooling2D()`: one mean per channel (512 for VGG16).
    GlobalAverage,
}

/// A head: pooling, optional hidden Dense layers, and the output Dense layer.
#[derive(Clone, Debug)]
pub struct HeadSpec {
    /// Flatten or global average pooling.
    pub pooling: Pooling,
    /// Units of the hidden Dense layers, in order.
    pub hidden: Vec<usize>,
    /// Activation of the hidden layers (ReLU by default).
    pub hidden_activation: Activation,
    /// Dropout rate after each hidden layer (none by default).
    pub dropout: Option<f32>,
    /// Number of classes.
    pub classes: usize,
    /// Activation of the output layer: `Linear` (logits, the default, for losses from logits)
    /// or `Softmax` (probabilities, Keras' `Dense(n, activation="softmax")`).
    pub output_activation: Activation,
}

/// `Flatten()` then `Dense(classes)`.
pub fn flatten_head(classes: usize) -> HeadSpec {
    HeadSpec {
        pooling: Pooling::Flatten,
        hidden: Vec::new(),
        hidden_activation: Activation::Relu,
        dropout: None,
        classes,
        output_activation: Activation::Linear,
    }
}

/// `GlobalAveragePooling2D()` then `Dense(classes)`.
pub fn gap_head(classes: usize) -> HeadSpec {
    HeadSpec {
        pooling: Pooling::GlobalAverage,
        ..flatten_head(classes)
    }
}

impl HeadSpec {
    /// Hidden Dense layers of these sizes before the output layer.
    pub fn hidden(mut self, units: &[usize]) -> Self {
        self.hidden = units.to_vec();
        self
    }
    /// Activation of the hidden layers.
    pub fn hidden_activation(mut self, a: Activation) -> Self {
        self.hidden_activation = a;
        self
    }
    /// Dropout after each hidden layer.
    pub fn dropout(mut self, rate: f32) -> Self {
        self.dropout = Some(rate);
        self
    }
    /// Activation of the output layer.
    pub fn output_activation(mut self, a: Activation) -> Self {
        self.output_activation = a;
        self
    }

    /// Checks the sizes before anything is built: at least 1 class, hidden layers of at least
    /// 1 unit, a dropout rate in [0, 1).
    pub fn check(&self) -> Result<()> {
        let problem = if self.classes == 0 {
            Some("a head needs at least 1 class, got 0".to_string())
        } else if let Some(i) = self.hidden.iter().position(|&u| u == 0) {
            Some(format!(
                "hidden layer {} of the head has 0 units: each needs at least 1",
                i + 1
            ))
        } else {
            self.dropout
                .filter(|r| !(0.0..1.0).contains(r))
                .map(|r| format!("a dropout rate of {r}: it must be in [0, 1)"))
        };
        problem.map_or(Ok(()), |msg| Err(Error::layer("head", msg)))
    }

    /// The element counts of the head's weights (each Dense layer's kernel, then its bias) over
    /// an [h, w, c] feature map, without building it.
    pub fn weight_sizes(&self, feature_map: &[usize]) -> Vec<u64> {
        let mut inputs: u64 = match self.pooling {
            Pooling::Flatten => feature_map.iter().map(|&d| d as u64).product(),
            Pooling::GlobalAverage => feature_map.last().map_or(0, |&c| c as u64),
        };
        let mut sizes = Vec::new();
        for &units in self.hidden.iter().chain([&self.classes]) {
            sizes.extend([inputs * units as u64, units as u64]);
            inputs = units as u64;
        }
        sizes
    }

    /// The head's layers, in order.
    pub fn layers(&self) -> Vec<Box<dyn LayerSpec>> {
        let mut specs: Vec<Box<dyn LayerSpec>> = vec![match self.pooling {
            Pooling::Flatten => Box::new(flatten()),
            Pooling::GlobalAverage => Box::new(global_avg_pool2d()),
        }];
        for &units in &self.hidden {
            specs.push(Box::new(dense(units).activation(self.hidden_activation)));
            if let Some(rate) = self.dropout {
                specs.push(Box::new(dropout(rate)));
            }
        }
        specs.push(Box::new(
            dense(self.classes).activation(self.output_activation),
        ));
        specs
    }
}

/// A backbone with a head on top, as one model named `model`: the backbone is its first layer
/// (shown as one row by `summary()`, as in Keras), the head's layers follow. Head weights are
/// initialised from `seed` on the backbone's device.
pub fn with_head(
    backbone: Sequential,
    head: &HeadSpec,
    device: &Device,
    seed: u64,
) -> Result<Sequential> {
    if backbone.output_shape().len() != 3 {
        return Err(Error::layer(
            backbone.name(),
            format!(
                "a head needs an [h, w, c] feature map, the backbone outputs {:?}",
                backbone.output_shape()
            ),
        ));
    }
    head.check()?;
    let parameters: u64 = head.weight_sizes(backbone.output_shape()).iter().sum();
    MemoryEstimate::new()
        .add("head weights", parameters * 4)
        .check(&format!(
            "a head of {parameters} parameters over {:?} features",
            backbone.output_shape()
        ))?;
    let input = backbone.input_shape().to_vec();
    sequential("model")
        .add(Prebuilt(backbone))
        .extend(head.layers())
        .build(&input, device, seed)
}
