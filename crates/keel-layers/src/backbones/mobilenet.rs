//! MobileNet v1 (Keras `keras.applications.MobileNet`): a strided 3×3 convolution and 13
//! depthwise-separable blocks, each convolution followed by batch normalisation and ReLU6.
//! Layer names and padding as in Keras (`conv1`, `conv_dw_1`, `conv_pw_1_bn`, `conv_pad_2`, …).

use super::BackboneOptions;
use crate::layers::{batch_norm, conv2d, depthwise_conv2d, relu6, zero_padding2d};
use crate::sequential::{sequential, Sequential, SequentialSpec};
use crate::{Error, Result};
use keel_tensor::{Device, Padding};

/// (pointwise filters, stride) of the 13 depthwise-separable blocks.
const BLOCKS: [(usize, usize); 13] = [
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
];

/// MobileNet v1 without its top: [h/32, w/32, 1024·alpha] (7×7×1024 at 224×224, alpha 1);
/// 3,228,864 parameters at alpha 1, of which 21,888 are moving statistics.
pub fn mobilenet(options: &BackboneOptions, device: &Device) -> Result<Sequential> {
    if options.include_top {
        return Err(Error::layer(
            "mobilenet",
            "keel builds MobileNet v1 without its ImageNet top; put a head on it (gap_head or flatten_head)",
        ));
    }
    let filters = |f: usize| (f as f32 * options.alpha) as usize;
    let mut model = sequential(format!(
        "mobilenet_{}_{}",
        alpha_name(options.alpha),
        options.input.0
    ))
    .add(
        conv2d(filters(32), 3)
            .strides(2)
            .padding(Padding::Same)
            .use_bias(false)
            .name("conv1"),
    )
    .add(batch_norm().name("conv1_bn"))
    .add(relu6().name("conv1_relu"));
    for (i, &(pointwise, stride)) in BLOCKS.iter().enumerate() {
        model = separable_block(model, filters(pointwise), stride, i + 1);
    }
    options.build(model, device)
}

/// Keras' `_depthwise_conv_block`.
fn separable_block(
    model: SequentialSpec,
    pointwise: usize,
    stride: usize,
    id: usize,
) -> SequentialSpec {
    let model = if stride == 1 {
        model
    } else {
        model.add(zero_padding2d((0, 1), (0, 1)).name(format!("conv_pad_{id}")))
    };
    let padding = if stride == 1 {
        Padding::Same
    } else {
        Padding::Valid
    };
    model
        .add(
            depthwise_conv2d(3)
                .strides(stride)
                .padding(padding)
                .use_bias(false)
                .name(format!("conv_dw_{id}")),
        )
        .add(batch_norm().name(format!("conv_dw_{id}_bn")))
        .add(relu6().name(format!("conv_dw_{id}_relu")))
        .add(
            conv2d(pointwise, 1)
                .padding(Padding::Same)
                .use_bias(false)
                .name(format!("conv_pw_{id}")),
        )
        .add(batch_norm().name(format!("conv_pw_{id}_bn")))
        .add(relu6().name(format!("conv_pw_{id}_relu")))
}

/// Keras' model name part for alpha: 1.00 → "1.00".
fn alpha_name(alpha: f32) -> String {
    format!("{alpha:.2}")
}
