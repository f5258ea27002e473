//! EfficientNet-B0 as torchvision builds it (`torchvision.models.efficientnet_b0`), with
//! torchvision's module names (`features.0.0`, `features.2.1.block.2.fc1`, …, `classifier.1`):
//! a strided 3×3 convolution to 32 channels, 16 mobile inverted-bottleneck blocks with
//! squeeze-and-excitation, a 1×1 convolution to 1280 channels, and optionally average pooling,
//! dropout and a classifier. SiLU throughout, torchvision's symmetric (k − 1) / 2 padding,
//! batch norm ε = 1e-5 and PyTorch's momentum 0.1 (0.9 in Keras' convention), stochastic depth
//! rising from 0 to 0.2 over the blocks (training only).

use super::{conv_norm_act, BackboneOptions};
use crate::layers::{
    activation, batch_norm, dense, dropout, global_avg_pool2d, residual_if_same_shape,
    squeeze_excite, Activation,
};
use crate::sequential::{sequential, Sequential, SequentialSpec};
use crate::Result;
use keel_tensor::Device;

/// (expansion, kernel, first stride, output channels, repeats) of each stage: B0's table, which
/// EfficientNet-Lite0 shares.
pub(super) const STAGES: [(usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
];

/// torchvision's `Conv2dNormActivation` as EfficientNet builds it: batch norm ε 1e-5, then SiLU
/// when `silu`.
fn conv_bn_silu(
    model: SequentialSpec,
    prefix: &str,
    out: usize,
    k: usize,
    stride: usize,
    depthwise: bool,
    silu: bool,
) -> SequentialSpec {
    let norm = batch_norm().epsilon(1e-5).momentum(0.9);
    let act = silu.then(|| activation(Activation::Silu));
    conv_norm_act(model, prefix, out, k, stride, depthwise, norm, act)
}

/// Block `features.{stage}.{index}`.
fn mb_conv(
    name: &str,
    inp: usize,
    out: usize,
    kernel: usize,
    stride: usize,
    expand: usize,
) -> SequentialSpec {
    let hidden = inp * expand;
    let mut body = sequential(name);
    let mut part = 0;
    if expand != 1 {
        body = conv_bn_silu(body, &format!("{name}.block.0"), hidden, 1, 1, false, true);
        part = 1;
    }
    body = conv_bn_silu(
        body,
        &format!("{name}.block.{part}"),
        hidden,
        kernel,
        stride,
        true,
        true,
    );
    body = body.add(
        squeeze_excite((inp / 4).max(1))
            .activation(Activation::Silu)
            .name(format!("{name}.block.{}", part + 1)),
    );
    conv_bn_silu(
        body,
        &format!("{name}.block.{}", part + 2),
        out,
        1,
        1,
        false,
        false,
    )
}

/// EfficientNet-B0. Without its top it outputs [h/32, w/32, 1280] (7×7×1280 at 224×224); with
/// it, ImageNet logits: 5,288,548 trainable parameters. B0 is one width, so `alpha` must be 1.
pub fn efficientnet_b0(options: &BackboneOptions, device: &Device) -> Result<Sequential> {
    options.one_width("efficientnet_b0")?;
    let mut model = conv_bn_silu(
        sequential("efficientnet_b0"),
        "features.0",
        32,
        3,
        2,
        false,
        true,
    );
    let (mut channels, mut index) = (32, 0);
    let blocks: usize = STAGES.iter().map(|s| s.4).sum();
    for (stage, (expand, kernel, stride, out, repeats)) in STAGES.into_iter().enumerate() {
        for i in 0..repeats {
            let stride = if i == 0 { stride } else { 1 };
            let name = format!("features.{}.{i}", stage + 1);
            let drop_path = 0.2 * index as f32 / blocks as f32;
            index += 1;
            model = model.add(
                residual_if_same_shape(mb_conv(&name, channels, out, kernel, stride, expand))
                    .drop_path(drop_path),
            );
            channels = out;
        }
    }
    model = conv_bn_silu(model, "features.8", 1280, 1, 1, false, true);
    if options.include_top {
        model = model
            .add(global_avg_pool2d().name("avgpool"))
            .add(dropout(0.2).name("classifier.0"))
            .add(dense(options.classes).name("classifier.1"));
    }
    options.build(model, device)
}
