//! ResNet50 as Keras Applications builds it (`keras.applications.ResNet50`), with Keras' layer
//! names (`conv1_conv`, `conv2_block1_0_conv`, …, `predictions`) so that Keras weights files
//! load by name: explicit zero padding before the 7×7 stride-2 convolution and the 3×3
//! max pooling, convolutions with biases, batch norm ε = 1.001e-5, and the original ResNet's
//! bottleneck with the stride on its first 1×1 convolution (torchvision strides the 3×3).

use super::BackboneOptions;
use crate::layers::{
    batch_norm, conv2d, dense, global_avg_pool2d, max_pool2d, relu, residual, zero_padding2d,
    Activation, BatchNormSpec, ResidualSpec,
};
use crate::sequential::{sequential, Sequential, SequentialSpec};
use crate::Result;
use keel_tensor::{Device, Padding};

fn bn(name: String) -> BatchNormSpec {
    batch_norm().epsilon(1.001e-5).name(name)
}

/// Keras' `block1`: `{name}_1_conv` … `{name}_3_bn` with `{name}_0_conv` on the shortcut when
/// `projection`, then `{name}_out`.
fn block(name: &str, filters: usize, stride: usize, projection: bool) -> (ResidualSpec, String) {
    let conv = |model: SequentialSpec, i: usize, out: usize, k: usize, s: usize| {
        model
            .add(
                conv2d(out, k)
                    .strides(s)
                    .padding(Padding::Same)
                    .name(format!("{name}_{i}_conv")),
            )
            .add(bn(format!("{name}_{i}_bn")))
    };
    let body = conv(sequential(format!("{name}_body")), 1, filters, 1, stride)
        .add(relu().name(format!("{name}_1_relu")));
    let body = conv(body, 2, filters, 3, 1).add(relu().name(format!("{name}_2_relu")));
    let body = conv(body, 3, 4 * filters, 1, 1);
    let mut spec = residual(body);
    if projection {
        spec = spec.projection(conv(
            sequential(format!("{name}_0")),
            0,
            4 * filters,
            1,
            stride,
        ));
    }
    (spec, format!("{name}_out"))
}

/// Keras' ResNet50. Without its top it outputs [h/32, w/32, 2048]; with it, class
/// probabilities (a softmax `predictions` layer, as Keras): 25,583,592 trainable parameters.
pub fn keras_resnet50(options: &BackboneOptions, device: &Device) -> Result<Sequential> {
    options.one_width("resnet50")?;
    let mut model = sequential("resnet50")
        .add(zero_padding2d((3, 3), (3, 3)).name("conv1_pad"))
        .add(conv2d(64, 7).strides(2).name("conv1_conv"))
        .add(bn("conv1_bn".into()))
        .add(relu().name("conv1_relu"))
        .add(zero_padding2d((1, 1), (1, 1)).name("pool1_pad"))
        .add(max_pool2d(3).strides(2).name("pool1_pool"));
    for (stage, (filters, blocks, first_stride)) in
        [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]
            .into_iter()
            .enumerate()
    {
        for b in 1..=blocks {
            let name = format!("conv{}_block{b}", stage + 2);
            let stride = if b == 1 { first_stride } else { 1 };
            let (spec, out) = block(&name, filters, stride, b == 1);
            model = model.add(spec).add(relu().name(out));
        }
    }
    if options.include_top {
        model = model.add(global_avg_pool2d().name("avg_pool")).add(
            dense(options.classes)
                .activation(Activation::Softmax)
                .name("predictions"),
        );
    }
    options.build(model, device)
}
