//! The layers, in Keras' vocabulary. Each is a spec (its configuration, built by a model once
//! the input shape is known) and the built layer.

mod activation;
mod conv;
mod dense;
mod dropout;
mod norm;
mod pool;
mod reshape;
mod residual;

pub use activation::{
    activation, relu, relu6, softmax, Activation, ActivationLayer, ActivationSpec,
};
pub use conv::{conv2d, depthwise_conv2d, Conv2D, Conv2DSpec, DepthwiseConv2DSpec};
pub use dense::{dense, Dense, DenseSpec};
pub use dropout::{dropout, Dropout, DropoutSpec};
pub use norm::{
    batch_norm, normalization, rescaling, BatchNormSpec, BatchNormalization, Normalization,
    NormalizationSpec, Rescaling, RescalingSpec,
};
pub use pool::{
    avg_pool2d, global_avg_pool2d, global_max_pool2d, max_pool2d, GlobalPool2D, GlobalPoolSpec,
    Pool2D, PoolSpec,
};
pub use reshape::{flatten, zero_padding2d, Flatten, FlattenSpec, ZeroPadding2D, ZeroPaddingSpec};
pub use residual::{residual, residual_if_same_shape, Residual, ResidualSpec};
