//! The `Layer` trait, the weights a layer owns, and how layers are built on a known input shape.

use crate::config::LayerConfig;
use crate::Result;
use keel_autograd::{Param, Var};
use keel_tensor::{Device, Tensor};

/// A built layer: its weights exist and its input and output shapes are known.
pub trait Layer: Send + Sync {
    /// The layer's name (unique within its model, e.g. `block1_conv1`).
    fn name(&self) -> &str;
    /// The Keras class name shown by `summary()` (e.g. `Conv2D`).
    fn kind(&self) -> &'static str;
    /// Output shape without the batch axis (e.g. `[7, 7, 512]`).
    fn output_shape(&self) -> &[usize];
    /// Applies the layer. `training` turns on dropout and batch statistics (for trainable
    /// batch-normalisation layers).
    fn forward(&self, x: &Var, training: bool) -> Result<Var>;
    /// Every weight, trainable or not (batch-norm moving statistics included).
    fn weights(&self) -> Vec<Weight> {
        Vec::new()
    }
    /// Freezes (`false`) or unfreezes (`true`) the layer and everything inside it.
    fn set_trainable(&self, _trainable: bool) {}
    /// Layers nested inside this one (a backbone inside a model, a block's layers).
    fn children(&self) -> Vec<&dyn Layer> {
        Vec::new()
    }
    /// What the layer was built from, to build it again (Keras' `get_config`).
    fn config(&self) -> LayerConfig;
    /// How many random draws the layer has made (dropout masks), so that a resumed training
    /// run draws the masks an uninterrupted one would; `None` for layers that draw none.
    fn draws(&self) -> Option<u64> {
        None
    }
    /// Restores the count [`draws`](Layer::draws) returned.
    fn set_draws(&self, _draws: u64) {}
    /// The ((top, bottom), (left, right)) zeros this layer only adds around a map (a
    /// ZeroPadding2D), which the layer after it may take as its own padding.
    fn zero_padding(&self) -> Option<[(usize, usize); 2]> {
        None
    }
    /// The per-channel (scale, shift) this layer only applies, y = x · scale + shift, in
    /// inference with nothing to differentiate (a batch norm on its moving statistics), which
    /// the layer before it may apply to its output.
    fn inference_affine(&self, _training: bool) -> Option<Result<(Tensor, Tensor)>> {
        None
    }
    /// The activation this layer only is (ReLU, ReLU6), which the layer before it may apply.
    fn fusable_activation(&self) -> Option<keel_tensor::Activation> {
        None
    }
    /// Applies the layer together with the work of the layers around it in `fused`, in its own
    /// passes over memory, when it can take all of it; `None` when it cannot, and those layers
    /// run as they are.
    fn forward_fused(&self, _x: &Var, _training: bool, _fused: &Fused) -> Option<Result<Var>> {
        None
    }
}

/// The work of a layer's neighbours it may take on (see [`Layer::forward_fused`]): the zero
/// padding before it, and after it a per-channel affine map and an activation.
#[derive(Default)]
pub struct Fused {
    /// ((top, bottom), (left, right)) zeros around the input.
    pub padding: Option<[(usize, usize); 2]>,
    /// y · scale + shift per output channel.
    pub affine: Option<(Tensor, Tensor)>,
    /// Then this activation.
    pub activation: keel_tensor::Activation,
}

/// What a weight is, which fixes its names and its layout in Keras and PyTorch files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A convolution kernel: HWIO here and in Keras, OIHW in PyTorch.
    ConvKernel,
    /// A depthwise kernel: [kh, kw, C, multiplier] here and in Keras, [C·multiplier, 1, kh, kw]
    /// in PyTorch.
    DepthwiseKernel,
    /// A Dense kernel: [in, out] here and in Keras, [out, in] in PyTorch.
    DenseKernel,
    /// A bias vector.
    Bias,
    /// Batch-norm scale.
    Gamma,
    /// Batch-norm offset.
    Beta,
    /// Batch-norm moving mean (never trainable).
    MovingMean,
    /// Batch-norm moving variance (never trainable).
    MovingVariance,
    /// A per-channel factor (ConvNeXt's layer scale): `[C]` here, `[C, 1, 1]` in PyTorch.
    LayerScale,
    /// An input Normalization's mean (never trainable).
    Mean,
    /// An input Normalization's variance (never trainable).
    Variance,
}

impl Role {
    /// The weight's name in Keras (`block1_conv1/kernel`).
    pub fn keras_name(self) -> &'static str {
        match self {
            Role::ConvKernel | Role::DenseKernel => "kernel",
            Role::DepthwiseKernel => "depthwise_kernel",
            Role::Bias => "bias",
            Role::Gamma => "gamma",
            Role::Beta => "beta",
            Role::MovingMean => "moving_mean",
            Role::MovingVariance => "moving_variance",
            Role::LayerScale => "gamma",
            Role::Mean => "mean",
            Role::Variance => "variance",
        }
    }

    /// The weight's name in PyTorch (`features.0.0.weight`).
    pub fn torch_name(self) -> &'static str {
        match self {
            Role::ConvKernel | Role::DepthwiseKernel | Role::DenseKernel | Role::Gamma => "weight",
            Role::Bias | Role::Beta => "bias",
            Role::MovingMean => "running_mean",
            Role::MovingVariance => "running_var",
            Role::LayerScale => "layer_scale",
            Role::Mean => "mean",
            Role::Variance => "variance",
        }
    }

    /// Whether the weight is a statistic rather than something an optimizer trains.
    pub fn is_statistic(self) -> bool {
        matches!(
            self,
            Role::MovingMean | Role::MovingVariance | Role::Mean | Role::Variance
        )
    }
}

/// A weight of a layer.
#[derive(Clone)]
pub struct Weight {
    /// The owning layer's name.
    pub layer: String,
    /// What it is.
    pub role: Role,
    /// The value (shared with the layer).
    pub param: Param,
    /// For a Dense kernel right after a Flatten of an [h, w, c] map: that shape, so that a
    /// PyTorch kernel (which flattens channels first) can be reordered on load.
    pub flattened_from: Option<[usize; 3]>,
}

impl Weight {
    /// The weights of layer `layer`, one per (role, value) pair, none after a Flatten.
    pub(crate) fn of(layer: &str, params: &[(Role, &Param)]) -> Vec<Weight> {
        params
            .iter()
            .map(|&(role, param)| Weight {
                layer: layer.to_string(),
                role,
                param: param.clone(),
                flattened_from: None,
            })
            .collect()
    }

    /// Keras key: `layer/kernel`.
    pub fn keras_key(&self) -> String {
        format!("{}/{}", self.layer, self.role.keras_name())
    }

    /// PyTorch key: `layer.weight`.
    pub fn torch_key(&self) -> String {
        format!("{}.{}", self.layer, self.role.torch_name())
    }

    /// Whether an optimizer should update it now.
    pub fn trainable(&self) -> bool {
        !self.role.is_statistic() && self.param.trainable()
    }
}

/// What a layer is built on: the shape of its input (without batch) and where its weights live.
pub struct BuildContext<'a> {
    /// Input shape without the batch axis.
    pub input: &'a [usize],
    /// Device for the weights.
    pub device: &'a Device,
    /// Seed for this layer's initial weights.
    pub seed: u64,
    /// The name the model gives the layer when its spec has none (`conv2d_3`).
    pub default_name: String,
    /// Set when the previous layer flattened an [h, w, c] map.
    pub flattened_from: Option<[usize; 3]>,
}

/// A layer's configuration, built into a [`Layer`] once its input shape is known
/// (Keras builds on first call; keel when the layer is added to a model).
pub trait LayerSpec {
    /// The stem of the names a model gives unnamed layers of this kind (`conv2d`, `conv2d_1`, …).
    fn base_name(&self) -> &'static str;
    /// Creates the layer and its weights.
    fn build(self: Box<Self>, ctx: &BuildContext<'_>) -> Result<Box<dyn Layer>>;
    /// How many times smaller the layer makes its input's (height, width): its stride, the
    /// product of its layers' for a block.
    fn downsampling(&self) -> (usize, usize) {
        (1, 1)
    }
}
