//! ConvNeXt-Tiny as torchvision builds it (`torchvision.models.convnext_tiny`), with
//! torchvision's module names (`features.0.0`, `features.1.0.block.3`, `features.1.0.layer_scale`,
//! …, `classifier.2`): a 4×4 stride-4 "patchify" convolution and layer norm, four stages of
//! blocks (7×7 depthwise convolution, layer norm, a 4× wider Dense with GELU and back, a
//! per-channel layer scale, identity shortcut) separated by layer norm and a 2×2 stride-2
//! convolution, and optionally pooling, layer norm and the classifier. Layer norm ε = 1e-6;
//! keel's NHWC layout makes torchvision's permutes unnecessary. Stochastic depth rises from 0
//! to 0.1 over the blocks (training only).

use super::BackboneOptions;
use crate::layers::{
    activation, conv2d, dense, depthwise_conv2d, global_avg_pool2d, layer_norm, layer_scale,
    residual, Activation, LayerNormSpec, ResidualSpec,
};
use crate::sequential::{sequential, Sequential};
use crate::Result;
use keel_tensor::{Device, Padding};

/// (channels, blocks) of each stage, ConvNeXt-Tiny's table.
const STAGES: [(usize, usize); 4] = [(96, 3), (192, 3), (384, 9), (768, 3)];

fn norm(name: String) -> LayerNormSpec {
    layer_norm().epsilon(1e-6).name(name)
}

/// Block `features.{stage}.{index}` of `dim` channels (its layer scale takes the block's name,
/// as torchvision's `layer_scale` parameter belongs to the block itself).
fn block(name: &str, dim: usize, drop_path: f32) -> ResidualSpec {
    let body = sequential(format!("{name}.block"))
        .add(
            depthwise_conv2d(7)
                .padding(Padding::uniform(3))
                .name(format!("{name}.block.0")),
        )
        .add(norm(format!("{name}.block.2")))
        .add(dense(4 * dim).name(format!("{name}.block.3")))
        .add(activation(Activation::Gelu).name(format!("{name}.block.4")))
        .add(dense(dim).name(format!("{name}.block.5")))
        .add(layer_scale(1e-6).name(name));
    residual(body).drop_path(drop_path)
}

/// ConvNeXt-Tiny. Without its top it outputs [h/32, w/32, 768] (7×7×768 at 224×224); with
/// it, ImageNet logits: 28,589,128 trainable parameters. One width, so `alpha` must be 1.
pub fn convnext_tiny(options: &BackboneOptions, device: &Device) -> Result<Sequential> {
    options.one_width("convnext_tiny")?;
    let mut model = sequential("convnext_tiny")
        .add(conv2d(STAGES[0].0, 4).strides(4).name("features.0.0"))
        .add(norm("features.0.1".into()));
    let total: usize = STAGES.iter().map(|s| s.1).sum();
    let mut index = 0;
    for (stage, (dim, blocks)) in STAGES.into_iter().enumerate() {
        let feature = 1 + 2 * stage;
        if stage > 0 {
            let downsample = format!("features.{}", feature - 1);
            model = model
                .add(norm(format!("{downsample}.0")))
                .add(conv2d(dim, 2).strides(2).name(format!("{downsample}.1")));
        }
        for i in 0..blocks {
            let drop_path = 0.1 * index as f32 / (total - 1) as f32;
            model = model.add(block(&format!("features.{feature}.{i}"), dim, drop_path));
            index += 1;
        }
    }
    if options.include_top {
        model = model
            .add(global_avg_pool2d().name("avgpool"))
            .add(norm("classifier.0".into()))
            .add(dense(options.classes).name("classifier.2"));
    }
    options.build(model, device)
}
