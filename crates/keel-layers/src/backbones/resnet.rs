//! ResNet-18 and ResNet-50 as torchvision builds them (`torchvision.models.resnet18/50`), with
//! torchvision's module names (`conv1`, `layer1.0.conv1`, `layer2.0.downsample.0`, …, `fc`) so
//! that its checkpoints load without a name map: a 7×7 stride-2 convolution, 3×3 stride-2 max
//! pooling (padding 1), four stages of basic (ResNet-18) or bottleneck (ResNet-50, stride on the
//! 3×3 convolution as in torchvision's "v1.5") blocks with a 1×1 projection on the shortcut
//! where a block strides or widens, then optionally average pooling and the classifier.
//! Padding is torchvision's symmetric (k − 1) / 2; batch norm uses ε = 1e-5 and PyTorch's
//! momentum 0.1 (0.9 in Keras' convention).

use super::BackboneOptions;
use crate::layers::{
    batch_norm, conv2d, dense, global_avg_pool2d, max_pool2d, relu, residual, BatchNormSpec,
};
use crate::sequential::{sequential, Sequential, SequentialSpec};
use crate::Result;
use keel_tensor::{Device, Padding};

/// The two kinds of residual block.
#[derive(Clone, Copy)]
enum Block {
    /// Two 3×3 convolutions (ResNet-18 and -34).
    Basic,
    /// 1×1, 3×3, 1×1 with four times the width out (ResNet-50 and deeper).
    Bottleneck,
}

impl Block {
    fn expansion(self) -> usize {
        match self {
            Block::Basic => 1,
            Block::Bottleneck => 4,
        }
    }
}

fn bn(name: String) -> BatchNormSpec {
    batch_norm().epsilon(1e-5).momentum(0.9).name(name)
}

/// Convolution without bias, torchvision's padding, then batch norm.
fn conv_bn(
    model: SequentialSpec,
    conv: String,
    norm: String,
    out: usize,
    k: usize,
    stride: usize,
) -> SequentialSpec {
    model
        .add(
            conv2d(out, k)
                .strides(stride)
                .padding(Padding::uniform((k - 1) / 2))
                .use_bias(false)
                .name(conv),
        )
        .add(bn(norm))
}

/// Block `layer{stage}.{index}` of `width` channels (times the expansion out), taking `inp`.
fn block(kind: Block, name: &str, inp: usize, width: usize, stride: usize) -> SequentialSpec {
    let out = width * kind.expansion();
    let mut body = sequential(name);
    body = match kind {
        Block::Basic => {
            let b = conv_bn(
                body,
                format!("{name}.conv1"),
                format!("{name}.bn1"),
                width,
                3,
                stride,
            );
            conv_bn(
                b.add(relu().name(format!("{name}.relu1"))),
                format!("{name}.conv2"),
                format!("{name}.bn2"),
                width,
                3,
                1,
            )
        }
        Block::Bottleneck => {
            let b = conv_bn(
                body,
                format!("{name}.conv1"),
                format!("{name}.bn1"),
                width,
                1,
                1,
            );
            let b = conv_bn(
                b.add(relu().name(format!("{name}.relu1"))),
                format!("{name}.conv2"),
                format!("{name}.bn2"),
                width,
                3,
                stride,
            );
            conv_bn(
                b.add(relu().name(format!("{name}.relu2"))),
                format!("{name}.conv3"),
                format!("{name}.bn3"),
                out,
                1,
                1,
            )
        }
    };
    let mut spec = residual(body);
    if stride != 1 || inp != out {
        let downsample = format!("{name}.downsample");
        spec = spec.projection(conv_bn(
            sequential(downsample.clone()),
            format!("{downsample}.0"),
            format!("{downsample}.1"),
            out,
            1,
            stride,
        ));
    }
    sequential(format!("{name}.block"))
        .add(spec)
        .add(relu().name(format!("{name}.relu")))
}

/// ResNet with `kind` blocks, `repeats` of them per stage.
fn resnet(
    name: &str,
    kind: Block,
    repeats: [usize; 4],
    options: &BackboneOptions,
    device: &Device,
) -> Result<Sequential> {
    options.one_width(name)?;
    let mut model = conv_bn(sequential(name), "conv1".into(), "bn1".into(), 64, 7, 2)
        .add(relu().name("relu"))
        .add(
            max_pool2d(3)
                .strides(2)
                .padding(Padding::uniform(1))
                .name("maxpool"),
        );
    let mut channels = 64;
    for (stage, (n, width)) in repeats.into_iter().zip([64, 128, 256, 512]).enumerate() {
        for i in 0..n {
            let stride = if stage > 0 && i == 0 { 2 } else { 1 };
            let name = format!("layer{}.{i}", stage + 1);
            model = model.add(block(kind, &name, channels, width, stride));
            channels = width * kind.expansion();
        }
    }
    if options.include_top {
        model = model
            .add(global_avg_pool2d().name("avgpool"))
            .add(dense(options.classes).name("fc"));
    }
    options.build(model, device)
}

/// ResNet-18: [h/32, w/32, 512] without its top; 11,689,512 trainable parameters with it.
pub fn resnet18(options: &BackboneOptions, device: &Device) -> Result<Sequential> {
    resnet("resnet18", Block::Basic, [2, 2, 2, 2], options, device)
}

/// ResNet-50: [h/32, w/32, 2048] without its top; 25,557,032 trainable parameters with it.
pub fn resnet50(options: &BackboneOptions, device: &Device) -> Result<Sequential> {
    resnet("resnet50", Block::Bottleneck, [3, 4, 6, 3], options, device)
}
