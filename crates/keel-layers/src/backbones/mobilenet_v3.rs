//! MobileNetV3-Large and -Small as torchvision builds them (`torchvision.models.mobilenet_v3_large`
//! and `_small`), with torchvision's module names (`features.0.0`, `features.4.block.2.fc1`, …,
//! `classifier.3`): a strided 3×3 convolution, inverted-residual blocks with ReLU or hard-swish
//! and, in some, squeeze-and-excitation gated by a hard sigmoid, a 1×1 convolution to six times
//! the last block's channels, and optionally pooling and the two-layer classifier. Padding is
//! torchvision's symmetric (k − 1) / 2; batch norm uses ε = 1e-3 and PyTorch's momentum 0.01
//! (0.99 in Keras' convention).

use super::{conv_norm_act, make_divisible, BackboneOptions};
use crate::layers::{
    activation, batch_norm, dense, dropout, global_avg_pool2d, residual_if_same_shape,
    squeeze_excite, Activation,
};
use crate::sequential::{sequential, Sequential, SequentialSpec};
use crate::Result;
use keel_tensor::Device;

/// One block: (input, kernel, expanded, output channels, squeeze-and-excitation, hard-swish
/// (else ReLU), stride), torchvision's table.
pub(super) type Setting = (usize, usize, usize, usize, bool, bool, usize);

pub(super) const LARGE: [Setting; 15] = [
    (16, 3, 16, 16, false, false, 1),
    (16, 3, 64, 24, false, false, 2),
    (24, 3, 72, 24, false, false, 1),
    (24, 5, 72, 40, true, false, 2),
    (40, 5, 120, 40, true, false, 1),
    (40, 5, 120, 40, true, false, 1),
    (40, 3, 240, 80, false, true, 2),
    (80, 3, 200, 80, false, true, 1),
    (80, 3, 184, 80, false, true, 1),
    (80, 3, 184, 80, false, true, 1),
    (80, 3, 480, 112, true, true, 1),
    (112, 3, 672, 112, true, true, 1),
    (112, 5, 672, 160, true, true, 2),
    (160, 5, 960, 160, true, true, 1),
    (160, 5, 960, 160, true, true, 1),
];

pub(super) const SMALL: [Setting; 11] = [
    (16, 3, 16, 16, true, false, 2),
    (16, 3, 72, 24, false, false, 2),
    (24, 3, 88, 24, false, false, 1),
    (24, 5, 96, 40, true, true, 2),
    (40, 5, 240, 40, true, true, 1),
    (40, 5, 240, 40, true, true, 1),
    (40, 5, 120, 48, true, true, 1),
    (48, 5, 144, 48, true, true, 1),
    (48, 5, 288, 96, true, true, 2),
    (96, 5, 576, 96, true, true, 1),
    (96, 5, 576, 96, true, true, 1),
];

/// torchvision's `Conv2dNormActivation` as MobileNetV3 builds it: batch norm ε 1e-3, then
/// `act` (none for `Linear`).
fn conv_bn_act(
    model: SequentialSpec,
    prefix: &str,
    out: usize,
    k: usize,
    stride: usize,
    depthwise: bool,
    act: Activation,
) -> SequentialSpec {
    let norm = batch_norm().epsilon(1e-3).momentum(0.99);
    let act = (act != Activation::Linear).then(|| activation(act));
    conv_norm_act(model, prefix, out, k, stride, depthwise, norm, act)
}

/// Block `features.{index}`.
fn block(index: usize, (inp, k, expanded, out, se, hard_swish, stride): Setting) -> SequentialSpec {
    let name = format!("features.{index}");
    let act = if hard_swish {
        Activation::HardSwish
    } else {
        Activation::Relu
    };
    let mut body = sequential(name.clone());
    let mut part = 0;
    if expanded != inp {
        body = conv_bn_act(body, &format!("{name}.block.0"), expanded, 1, 1, false, act);
        part = 1;
    }
    body = conv_bn_act(
        body,
        &format!("{name}.block.{part}"),
        expanded,
        k,
        stride,
        true,
        act,
    );
    if se {
        part += 1;
        body = body.add(
            squeeze_excite(make_divisible((expanded / 4) as f32))
                .gate(Activation::HardSigmoid)
                .name(format!("{name}.block.{part}")),
        );
    }
    conv_bn_act(
        body,
        &format!("{name}.block.{}", part + 1),
        out,
        1,
        1,
        false,
        Activation::Linear,
    )
}

fn mobilenet_v3(
    name: &str,
    settings: &[Setting],
    last_channel: usize,
    options: &BackboneOptions,
    device: &Device,
) -> Result<Sequential> {
    options.one_width(name)?;
    let mut model = conv_bn_act(
        sequential(name),
        "features.0",
        16,
        3,
        2,
        false,
        Activation::HardSwish,
    );
    for (i, &setting) in settings.iter().enumerate() {
        model = model.add(residual_if_same_shape(block(i + 1, setting)));
    }
    let last_block = settings[settings.len() - 1].3;
    model = conv_bn_act(
        model,
        &format!("features.{}", settings.len() + 1),
        6 * last_block,
        1,
        1,
        false,
        Activation::HardSwish,
    );
    if options.include_top {
        model = model
            .add(global_avg_pool2d().name("avgpool"))
            .add(dense(last_channel).name("classifier.0"))
            .add(activation(Activation::HardSwish).name("classifier.1"))
            .add(dropout(0.2).name("classifier.2"))
            .add(dense(options.classes).name("classifier.3"));
    }
    options.build(model, device)
}

/// MobileNetV3-Large: [h/32, w/32, 960] without its top; 5,483,032 trainable parameters with it.
pub fn mobilenet_v3_large(options: &BackboneOptions, device: &Device) -> Result<Sequential> {
    mobilenet_v3("mobilenet_v3_large", &LARGE, 1280, options, device)
}

/// MobileNetV3-Small: [h/32, w/32, 576] without its top; 2,542,856 trainable parameters with it.
pub fn mobilenet_v3_small(options: &BackboneOptions, device: &Device) -> Result<Sequential> {
    mobilenet_v3("mobilenet_v3_small", &SMALL, 1024, options, device)
}
