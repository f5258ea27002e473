//! The layers, in Keras' vocabulary. Each is a spec (its configuration, built by a model once
//! the input shape is known) and the built layer.

/// The builder methods layer specs share, each setting one field in Keras' vocabulary:
/// `spec_setters!(Conv2DSpec: name, strides, padding, use_bias, activation, kernel_size);`
/// (`kernel_size` also gives the crate an `options` setter for the whole `Conv2dOptions`).
macro_rules! spec_setters {
    ($spec:ty: $($setter:ident),+) => {
        impl $spec {
            $(spec_setters!(@ $setter);)+
        }
    };
    (@ name) => {
        /// Names the layer.
        pub fn name(mut self, name: impl Into<String>) -> Self {
            self.name = Some(name.into());
            self
        }
    };
    (@ strides) => {
        /// Stride along both axes.
        pub fn strides(mut self, s: usize) -> Self {
            self.options = self.options.stride(s);
            self
        }
    };
    (@ padding) => {
        /// `valid`, `same` or explicit padding.
        pub fn padding(mut self, p: keel_tensor::Padding) -> Self {
            self.options = self.options.padding(p);
            self
        }
    };
    (@ use_bias) => {
        /// Whether to add a bias (Keras `use_bias`).
        pub fn use_bias(mut self, b: bool) -> Self {
            self.use_bias = b;
            self
        }
    };
    (@ kernel_size) => {
        /// A kernel of (rows, columns).
        pub fn kernel_size(mut self, kernel: (usize, usize)) -> Self {
            self.kernel = kernel;
            self
        }
        pub(crate) fn options(mut self, options: keel_tensor::Conv2dOptions) -> Self {
            self.options = options;
            self
        }
    };
    (@ activation) => {
        /// Activation applied to the output.
        pub fn activation(mut self, a: crate::layers::Activation) -> Self {
            self.activation = a;
            self
        }
    };
}

mod activation;
mod conv;
mod dense;
mod dropout;
mod kernel_bias;
mod layer_norm;
mod norm;
mod pool;
mod reshape;
mod residual;
mod squeeze_excite;

pub use activation::{
    activation, relu, relu6, softmax, Activation, ActivationLayer, ActivationSpec,
};
pub use conv::{conv2d, depthwise_conv2d, Conv2D, Conv2DSpec, DepthwiseConv2DSpec};
pub use dense::{dense, Dense, DenseSpec};
pub use dropout::{dropout, Dropout, DropoutSpec};
pub use layer_norm::{
    layer_norm, layer_scale, LayerNormSpec, LayerNormalization, LayerScale, LayerScaleSpec,
};
pub use norm::{
    batch_norm, normalization, rescaling, rescaling_per_channel, BatchNormSpec, BatchNormalization,
    Factor, Normalization, NormalizationSpec, Rescaling, RescalingSpec,
};
pub use pool::{
    avg_pool2d, global_avg_pool2d, global_max_pool2d, max_pool2d, GlobalPool2D, GlobalPoolSpec,
    Pool2D, PoolSpec,
};
pub use reshape::{flatten, zero_padding2d, Flatten, FlattenSpec, ZeroPadding2D, ZeroPaddingSpec};
pub use residual::{residual, residual_if_same_shape, Residual, ResidualSpec};
pub use squeeze_excite::{squeeze_excite, SqueezeExcite, SqueezeExciteSpec};
