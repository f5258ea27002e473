//! Layer configurations: what a built layer was made from, as data (Keras' `get_config`), so
//! that a model can be written next to its weights and built again by [`load_model`]
//! (crate::load_model) without the code that first made it.

use crate::layer::LayerSpec;
use crate::layers::{
    activation, batch_norm, conv2d, dense, depthwise_conv2d, dropout, flatten, global_avg_pool2d,
    global_max_pool2d, layer_norm, layer_scale, normalization, rescaling, rescaling_per_channel,
    residual, residual_if_same_shape, squeeze_excite, zero_padding2d, Activation, Factor, PoolSpec,
};
use crate::sequential::{sequential, SequentialSpec};
use keel_tensor::{Conv2dOptions, Padding, Pool2dOptions, PoolOp};
use serde::{Deserialize, Serialize};

/// `Padding` as it is written in a model file.
#[derive(Serialize, Deserialize)]
#[serde(remote = "Padding", rename_all = "lowercase")]
enum PaddingDef {
    Valid,
    Same,
    Explicit {
        top: usize,
        bottom: usize,
        left: usize,
        right: usize,
    },
}

/// Whether a rate is zero (and so left out of a model file).
fn is_zero(rate: &f32) -> bool {
    *rate == 0.0
}

/// Which pooling function, as written in a model file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolKind {
    /// Maximum.
    Max,
    /// Mean.
    Avg,
}

impl From<PoolOp> for PoolKind {
    fn from(op: PoolOp) -> Self {
        match op {
            PoolOp::Max => PoolKind::Max,
            PoolOp::Avg => PoolKind::Avg,
        }
    }
}

impl From<PoolKind> for PoolOp {
    fn from(kind: PoolKind) -> Self {
        match kind {
            PoolKind::Max => PoolOp::Max,
            PoolKind::Avg => PoolOp::Avg,
        }
    }
}

/// A built layer's configuration, tagged by its Keras class name. Every layer keel has can be
/// described and rebuilt; names are always explicit, so a rebuilt model has the same weight
/// names as the one that was saved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "class")]
pub enum LayerConfig {
    /// [`conv2d`]
    Conv2D {
        /// Layer name.
        name: String,
        /// Output channels.
        filters: usize,
        /// Kernel (rows, columns).
        kernel_size: (usize, usize),
        /// Stride (rows, columns).
        strides: (usize, usize),
        /// Border handling.
        #[serde(with = "PaddingDef")]
        padding: Padding,
        /// Dilation (rows, columns).
        dilation: (usize, usize),
        /// Channel groups.
        groups: usize,
        /// Whether there is a bias.
        use_bias: bool,
        /// Activation of the output.
        activation: Activation,
    },
    /// [`depthwise_conv2d`]
    DepthwiseConv2D {
        /// Layer name.
        name: String,
        /// Kernel (rows, columns).
        kernel_size: (usize, usize),
        /// Stride (rows, columns).
        strides: (usize, usize),
        /// Border handling.
        #[serde(with = "PaddingDef")]
        padding: Padding,
        /// Dilation (rows, columns).
        dilation: (usize, usize),
        /// Output channels per input channel.
        depth_multiplier: usize,
        /// Whether there is a bias.
        use_bias: bool,
        /// Activation of the output.
        activation: Activation,
    },
    /// [`dense`]
    Dense {
        /// Layer name.
        name: String,
        /// Output features.
        units: usize,
        /// Whether there is a bias.
        use_bias: bool,
        /// Activation of the output.
        activation: Activation,
    },
    /// [`dropout`]
    Dropout {
        /// Layer name.
        name: String,
        /// Fraction dropped while training.
        rate: f32,
    },
    /// [`batch_norm`]
    BatchNormalization {
        /// Layer name.
        name: String,
        /// Weight of the old moving statistics in each update.
        momentum: f32,
        /// Added to the variance.
        epsilon: f32,
    },
    /// [`rescaling`]
    Rescaling {
        /// Layer name.
        name: String,
        /// Factor, for every channel or per channel.
        scale: Factor,
        /// Added after scaling.
        offset: f32,
    },
    /// [`normalization`]
    Normalization {
        /// Layer name.
        name: String,
        /// Per-channel means.
        mean: Vec<f32>,
        /// Per-channel variances.
        variance: Vec<f32>,
    },
    /// [`activation`], `ReLU`, `Softmax`
    Activation {
        /// Layer name.
        name: String,
        /// The function.
        activation: Activation,
    },
    /// `MaxPooling2D` and `AveragePooling2D`
    Pooling2D {
        /// Layer name.
        name: String,
        /// Max or average.
        pool: PoolKind,
        /// Window (rows, columns).
        pool_size: (usize, usize),
        /// Stride (rows, columns).
        strides: (usize, usize),
        /// Border handling.
        #[serde(with = "PaddingDef")]
        padding: Padding,
    },
    /// `GlobalAveragePooling2D` and `GlobalMaxPooling2D`
    GlobalPooling2D {
        /// Layer name.
        name: String,
        /// Max or average.
        pool: PoolKind,
    },
    /// [`flatten`]
    Flatten {
        /// Layer name.
        name: String,
    },
    /// [`zero_padding2d`]
    ZeroPadding2D {
        /// Layer name.
        name: String,
        /// ((top, bottom), (left, right)).
        padding: [(usize, usize); 2],
    },
    /// [`residual`] and [`residual_if_same_shape`]
    Residual {
        /// The block (a `Sequential`).
        body: Box<LayerConfig>,
        /// Whether the shortcut is dropped when the block changes the shape.
        only_if_same_shape: bool,
        /// The shortcut's own layers (a `Sequential`), when it is not the identity.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        projection: Option<Box<LayerConfig>>,
        /// Stochastic depth's rate (0: none).
        #[serde(default, skip_serializing_if = "is_zero")]
        drop_path: f32,
    },
    /// [`layer_norm`]
    LayerNormalization {
        /// Layer name.
        name: String,
        /// Added to the variance.
        epsilon: f32,
    },
    /// [`layer_scale`]
    LayerScale {
        /// Layer name.
        name: String,
        /// γ's initial value.
        init: f32,
    },
    /// [`squeeze_excite`]
    SqueezeExcite {
        /// Layer name.
        name: String,
        /// Channels in the middle.
        squeeze: usize,
        /// Between the two convolutions.
        activation: Activation,
        /// On the scale.
        gate: Activation,
        /// The two convolutions' names, when not `NAME.fc1` and `NAME.fc2`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conv_names: Option<(String, String)>,
    },
    /// A [`Sequential`](crate::Sequential) model or block.
    Sequential {
        /// Model name.
        name: String,
        /// Its layers, in order.
        layers: Vec<LayerConfig>,
    },
}

impl LayerConfig {
    /// The layer's name.
    pub fn name(&self) -> &str {
        match self {
            LayerConfig::Residual { body, .. } => body.name(),
            LayerConfig::Conv2D { name, .. }
            | LayerConfig::DepthwiseConv2D { name, .. }
            | LayerConfig::Dense { name, .. }
            | LayerConfig::Dropout { name, .. }
            | LayerConfig::BatchNormalization { name, .. }
            | LayerConfig::Rescaling { name, .. }
            | LayerConfig::Normalization { name, .. }
            | LayerConfig::Activation { name, .. }
            | LayerConfig::Pooling2D { name, .. }
            | LayerConfig::GlobalPooling2D { name, .. }
            | LayerConfig::Flatten { name }
            | LayerConfig::ZeroPadding2D { name, .. }
            | LayerConfig::SqueezeExcite { name, .. }
            | LayerConfig::LayerNormalization { name, .. }
            | LayerConfig::LayerScale { name, .. }
            | LayerConfig::Sequential { name, .. } => name,
        }
    }

    /// The activation of the layer's output, when it ends in one (a Dense or convolution layer,
    /// an activation layer, or a model whose last layer does).
    pub fn output_activation(&self) -> Activation {
        match self {
            LayerConfig::Conv2D { activation, .. }
            | LayerConfig::DepthwiseConv2D { activation, .. }
            | LayerConfig::Dense { activation, .. }
            | LayerConfig::Activation { activation, .. } => *activation,
            LayerConfig::Sequential { layers, .. } => layers
                .iter()
                .rev()
                .find(|l| !matches!(l, LayerConfig::Dropout { .. }))
                .map_or(Activation::Linear, LayerConfig::output_activation),
            _ => Activation::Linear,
        }
    }

    /// The spec that builds this layer again.
    pub fn to_spec(&self) -> Box<dyn LayerSpec> {
        match self.clone() {
            LayerConfig::Conv2D {
                name,
                filters,
                kernel_size,
                strides,
                padding,
                dilation,
                groups,
                use_bias,
                activation,
            } => Box::new(
                conv2d(filters, kernel_size.0)
                    .kernel_size(kernel_size)
                    .options(Conv2dOptions {
                        stride: strides,
                        padding,
                        dilation,
                        groups,
                    })
                    .use_bias(use_bias)
                    .activation(activation)
                    .name(name),
            ),
            LayerConfig::DepthwiseConv2D {
                name,
                kernel_size,
                strides,
                padding,
                dilation,
                depth_multiplier,
                use_bias,
                activation,
            } => Box::new(
                depthwise_conv2d(kernel_size.0)
                    .kernel_size(kernel_size)
                    .options(Conv2dOptions {
                        stride: strides,
                        padding,
                        dilation,
                        groups: 1,
                    })
                    .depth_multiplier(depth_multiplier)
                    .use_bias(use_bias)
                    .activation(activation)
                    .name(name),
            ),
            LayerConfig::Dense {
                name,
                units,
                use_bias,
                activation,
            } => Box::new(
                dense(units)
                    .use_bias(use_bias)
                    .activation(activation)
                    .name(name),
            ),
            LayerConfig::Dropout { name, rate } => Box::new(dropout(rate).name(name)),
            LayerConfig::BatchNormalization {
                name,
                momentum,
                epsilon,
            } => Box::new(batch_norm().momentum(momentum).epsilon(epsilon).name(name)),
            LayerConfig::Rescaling {
                name,
                scale,
                offset,
            } => Box::new(
                match scale {
                    Factor::All(scale) => rescaling(scale, offset),
                    Factor::PerChannel(scale) => rescaling_per_channel(&scale, offset),
                }
                .name(name),
            ),
            LayerConfig::Normalization {
                name,
                mean,
                variance,
            } => Box::new(normalization(&mean, &variance).name(name)),
            LayerConfig::Activation {
                name,
                activation: a,
            } => Box::new(activation(a).name(name)),
            LayerConfig::Pooling2D {
                name,
                pool,
                pool_size,
                strides,
                padding,
            } => Box::new(PoolSpec::new(
                pool.into(),
                Pool2dOptions {
                    size: pool_size,
                    stride: strides,
                    padding,
                },
                name,
            )),
            LayerConfig::GlobalPooling2D { name, pool } => match pool {
                PoolKind::Max => Box::new(global_max_pool2d().name(name)),
                PoolKind::Avg => Box::new(global_avg_pool2d().name(name)),
            },
            LayerConfig::Flatten { name } => Box::new(flatten().name(name)),
            LayerConfig::ZeroPadding2D { name, padding } => {
                Box::new(zero_padding2d(padding[0], padding[1]).name(name))
            }
            LayerConfig::Residual {
                body,
                only_if_same_shape,
                projection,
                drop_path,
            } => {
                let body = body.to_sequential_spec();
                let spec = if only_if_same_shape {
                    residual_if_same_shape(body)
                } else {
                    residual(body)
                };
                let spec = spec.drop_path(drop_path);
                match projection {
                    Some(p) => Box::new(spec.projection(p.to_sequential_spec())),
                    None => Box::new(spec),
                }
            }
            LayerConfig::LayerNormalization { name, epsilon } => {
                Box::new(layer_norm().epsilon(epsilon).name(name))
            }
            LayerConfig::LayerScale { name, init } => Box::new(layer_scale(init).name(name)),
            LayerConfig::SqueezeExcite {
                name,
                squeeze,
                activation,
                gate,
                conv_names,
            } => {
                let spec = squeeze_excite(squeeze)
                    .activation(activation)
                    .gate(gate)
                    .name(name);
                Box::new(match conv_names {
                    Some((reduce, expand)) => spec.conv_names(reduce, expand),
                    None => spec,
                })
            }
            LayerConfig::Sequential { .. } => Box::new(self.to_sequential_spec()),
        }
    }

    /// A `Sequential` configuration as a model spec; any other layer as a one-layer model
    /// named after it.
    pub fn to_sequential_spec(&self) -> SequentialSpec {
        match self {
            LayerConfig::Sequential { name, layers } => sequential(name.clone())
                .extend(layers.iter().map(LayerConfig::to_spec).collect::<Vec<_>>()),
            other => sequential(other.name().to_string()).extend(vec![other.to_spec()]),
        }
    }
}
