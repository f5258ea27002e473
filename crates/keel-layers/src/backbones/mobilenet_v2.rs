//! MobileNetV2 as torchvision builds it (`torchvision.models.mobilenet_v2`), with torchvision's
//! module names (`features.0.0`, `features.1.conv.0.0`, …, `classifier.1`) so that its
//! checkpoints load without a name map: a strided 3×3 convolution, 17 inverted-residual blocks,
//! a 1×1 convolution to 1280 channels, and optionally average pooling, dropout and a classifier.
//! Padding is torchvision's symmetric (k − 1) / 2; batch norm uses ε = 1e-5 and PyTorch's
//! momentum 0.1 (0.9 in Keras' convention).

use super::{conv_norm_act, make_divisible, BackboneOptions};
use crate::layers::{
    batch_norm, conv2d, dense, dropout, global_avg_pool2d, relu6, residual_if_same_shape,
};
use crate::sequential::{sequential, Sequential, SequentialSpec};
use crate::Result;
use keel_tensor::Device;

/// (expansion t, output channels c, repeats n, first stride s), torchvision's table.
const SETTINGS: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// Convolution, batch norm and ReLU6 (torchvision's `Conv2dNormActivation`) named `prefix.0..2`.
fn conv_bn_relu6(
    model: SequentialSpec,
    prefix: &str,
    out: usize,
    k: usize,
    stride: usize,
    depthwise: bool,
) -> SequentialSpec {
    let norm = batch_norm().epsilon(1e-5).momentum(0.9);
    conv_norm_act(
        model,
        prefix,
        out,
        k,
        stride,
        depthwise,
        norm,
        Some(relu6()),
    )
}

fn torch_bn(name: String) -> crate::layers::BatchNormSpec {
    batch_norm().epsilon(1e-5).momentum(0.9).name(name)
}

/// One inverted-residual block `features.{index}`.
fn inverted_residual(
    index: usize,
    inp: usize,
    out: usize,
    stride: usize,
    expand: usize,
) -> SequentialSpec {
    let name = format!("features.{index}");
    let hidden = inp * expand;
    let mut body = sequential(name.clone());
    let mut next = 0;
    if expand != 1 {
        body = conv_bn_relu6(body, &format!("{name}.conv.0"), hidden, 1, 1, false);
        next = 1;
    }
    body = conv_bn_relu6(
        body,
        &format!("{name}.conv.{next}"),
        hidden,
        3,
        stride,
        true,
    );
    body.add(
        conv2d(out, 1)
            .use_bias(false)
            .name(format!("{name}.conv.{}", next + 1)),
    )
    .add(torch_bn(format!("{name}.conv.{}", next + 2)))
}

/// MobileNetV2. Without its top it outputs [h/32, w/32, 1280] (7×7×1280 at 224×224); with it,
/// ImageNet logits (no softmax, as in torchvision): 3,504,872 trainable parameters at width 1.
pub fn mobilenet_v2(options: &BackboneOptions, device: &Device) -> Result<Sequential> {
    let alpha = options.alpha;
    let mut channels = make_divisible(32.0 * alpha);
    let last = make_divisible(1280.0 * alpha.max(1.0));
    let mut model = conv_bn_relu6(
        sequential("mobilenet_v2"),
        "features.0",
        channels,
        3,
        2,
        false,
    );
    let mut index = 1;
    for (t, c, n, s) in SETTINGS {
        let out = make_divisible(c as f32 * alpha);
        for i in 0..n {
            let stride = if i == 0 { s } else { 1 };
            model = model.add(residual_if_same_shape(inverted_residual(
                index, channels, out, stride, t,
            )));
            channels = out;
            index += 1;
        }
    }
    model = conv_bn_relu6(model, &format!("features.{index}"), last, 1, 1, false);
    if options.include_top {
        model = model
            .add(global_avg_pool2d().name("pool"))
            .add(dropout(0.2).name("classifier.0"))
            .add(dense(options.classes).name("classifier.1"));
    }
    options.build(model, device)
}

/// Translates a timm `mobilenetv2_100` tensor name to torchvision's (which keel's MobileNetV2
/// uses), for [`LoadOptions::rename`](crate::LoadOptions): `conv_stem` → `features.0.0`,
/// `blocks.{stage}.{i}.conv_pw` → `features.{n}.conv.0.0`, …, `conv_head` → `features.18.0`,
/// `classifier` → `classifier.1`. The two architectures are the same at width 1.0.
pub fn mobilenet_v2_timm_key(key: &str) -> Option<String> {
    let (module, tensor) = key.rsplit_once('.')?;
    let torch = match module.split('.').collect::<Vec<_>>()[..] {
        ["conv_stem"] => "features.0.0".to_string(),
        ["bn1"] => "features.0.1".to_string(),
        ["conv_head"] => "features.18.0".to_string(),
        ["bn2"] => "features.18.1".to_string(),
        ["classifier"] => "classifier.1".to_string(),
        ["blocks", stage, block, part] => {
            let stage: usize = stage.parse().ok()?;
            let block: usize = block.parse().ok()?;
            let before: usize = SETTINGS.get(..stage)?.iter().map(|s| s.2).sum();
            let index = 1 + before + block;
            // The first block has no expansion: conv_dw, bn1, conv_pw, bn2.
            let sub = match (stage, part) {
                (0, "conv_dw") => "conv.0.0",
                (0, "bn1") => "conv.0.1",
                (0, "conv_pw") => "conv.1",
                (0, "bn2") => "conv.2",
                (_, "conv_pw") => "conv.0.0",
                (_, "bn1") => "conv.0.1",
                (_, "conv_dw") => "conv.1.0",
                (_, "bn2") => "conv.1.1",
                (_, "conv_pwl") => "conv.2",
                (_, "bn3") => "conv.3",
                _ => return None,
            };
            format!("features.{index}.{sub}")
        }
        _ => return None,
    };
    Some(format!("{torch}.{tensor}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn make_divisible_matches_torchvision() {
        assert_eq!(super::make_divisible(32.0), 32);
        assert_eq!(super::make_divisible(32.0 * 0.35), 16);
        assert_eq!(super::make_divisible(16.0 * 0.35), 8);
        assert_eq!(super::make_divisible(1280.0), 1280);
    }
}
