//! MobileNetV2 as Keras Applications builds it (`keras.applications.MobileNetV2`), with Keras'
//! layer names (`Conv1`, `expanded_conv_depthwise`, `block_1_expand`, …, `Conv_1`, `out_relu`)
//! so that Keras weights files load by name. It differs from torchvision's form in its padding:
//! `same` for the stem and the stride-1 depthwise convolutions, and before each stride-2 one an
//! explicit zero padding (Keras' `correct_pad`: one row and column below and right, and one
//! above and left too when the map's size is odd) with a `valid` convolution; batch norm
//! ε = 1e-3, momentum 0.999.

use super::BackboneOptions;
use crate::layers::{
    batch_norm, conv2d, dense, depthwise_conv2d, global_avg_pool2d, relu6, residual_if_same_shape,
    zero_padding2d, Activation, BatchNormSpec,
};
use crate::sequential::{sequential, Sequential, SequentialSpec};
use crate::Result;
use keel_tensor::{Device, Padding};

/// (expansion, output channels, stride) of blocks 0 to 16, Keras' table.
const BLOCKS: [(usize, usize, usize); 17] = [
    (1, 16, 1),
    (6, 24, 2),
    (6, 24, 1),
    (6, 32, 2),
    (6, 32, 1),
    (6, 32, 1),
    (6, 64, 2),
    (6, 64, 1),
    (6, 64, 1),
    (6, 64, 1),
    (6, 96, 1),
    (6, 96, 1),
    (6, 96, 1),
    (6, 160, 2),
    (6, 160, 1),
    (6, 160, 1),
    (6, 320, 1),
];

fn bn(name: String) -> BatchNormSpec {
    batch_norm().epsilon(1e-3).momentum(0.999).name(name)
}

/// Block `block_id` taking `inp` channels on an `h` × `w` map.
fn block(
    id: usize,
    inp: usize,
    expand: usize,
    out: usize,
    stride: usize,
    (h, w): (usize, usize),
) -> SequentialSpec {
    let prefix = if id == 0 {
        "expanded_conv_".to_string()
    } else {
        format!("block_{id}_")
    };
    let mut body = sequential(prefix.trim_end_matches('_'));
    if id != 0 {
        body = body
            .add(
                conv2d(expand * inp, 1)
                    .use_bias(false)
                    .padding(Padding::Same)
                    .name(format!("{prefix}expand")),
            )
            .add(bn(format!("{prefix}expand_BN")))
            .add(relu6().name(format!("{prefix}expand_relu")));
    }
    let padding = if stride == 2 {
        // correct_pad: 1 − (size mod 2) fewer rows above and columns left.
        let (top, left) = (h % 2, w % 2);
        body = body.add(zero_padding2d((top, 1), (left, 1)).name(format!("{prefix}pad")));
        Padding::Valid
    } else {
        Padding::Same
    };
    body.add(
        depthwise_conv2d(3)
            .strides(stride)
            .padding(padding)
            .use_bias(false)
            .name(format!("{prefix}depthwise")),
    )
    .add(bn(format!("{prefix}depthwise_BN")))
    .add(relu6().name(format!("{prefix}depthwise_relu")))
    .add(
        conv2d(out, 1)
            .use_bias(false)
            .padding(Padding::Same)
            .name(format!("{prefix}project")),
    )
    .add(bn(format!("{prefix}project_BN")))
}

/// Keras' `_make_divisible(int(v), 8)`.
fn keras_divisible(v: f32) -> usize {
    super::make_divisible(v.trunc())
}

/// Keras' MobileNetV2. Without its top it outputs [⌈h/32⌉, ⌈w/32⌉, 1280]; with it, class
/// probabilities (a softmax `predictions` layer): 3,504,872 trainable parameters at alpha 1.
pub fn keras_mobilenet_v2(options: &BackboneOptions, device: &Device) -> Result<Sequential> {
    let alpha = options.alpha;
    let mut channels = super::make_divisible(32.0 * alpha);
    let (h, w) = options.input;
    let mut size = (h.div_ceil(2), w.div_ceil(2));
    let mut model = sequential("mobilenetv2")
        .add(
            conv2d(channels, 3)
                .strides(2)
                .padding(Padding::Same)
                .use_bias(false)
                .name("Conv1"),
        )
        .add(bn("bn_Conv1".into()))
        .add(relu6().name("Conv1_relu"));
    for (id, (expand, filters, stride)) in BLOCKS.into_iter().enumerate() {
        let out = keras_divisible(filters as f32 * alpha);
        model = model.add(residual_if_same_shape(block(
            id, channels, expand, out, stride, size,
        )));
        if stride == 2 {
            size = (
                (size.0 + size.0 % 2 + 1 - 3) / 2 + 1,
                (size.1 + size.1 % 2 + 1 - 3) / 2 + 1,
            );
        }
        channels = out;
    }
    let last = if alpha > 1.0 {
        super::make_divisible(1280.0 * alpha)
    } else {
        1280
    };
    model = model
        .add(conv2d(last, 1).use_bias(false).name("Conv_1"))
        .add(bn("Conv_1_bn".into()))
        .add(relu6().name("out_relu"));
    if options.include_top {
        model = model
            .add(global_avg_pool2d().name("global_average_pooling2d"))
            .add(
                dense(options.classes)
                    .activation(Activation::Softmax)
                    .name("predictions"),
            );
    }
    options.build(model, device)
}
