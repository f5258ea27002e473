//! EfficientNetB0 as Keras Applications builds it (`keras.applications.EfficientNetB0`), with
//! Keras' layer names (`stem_conv`, `block1a_dwconv`, `block2a_se_reduce`, …, `top_conv`,
//! `predictions`) so that Keras weights files load by name. Unlike torchvision's form it takes
//! pixels in [0, 255] and normalises them itself (`Rescaling(1/255)`, a `Normalization` whose
//! mean and variance are weights, and the per-channel `Rescaling` that Keras adds for its
//! ImageNet weights); before each stride-2 convolution it pads as Keras' `correct_pad` does, and
//! its batch norms keep Keras' defaults (ε = 1e-3, momentum 0.99).

use super::efficientnet::STAGES;
use super::BackboneOptions;
use crate::layers::{
    activation, batch_norm, conv2d, dense, depthwise_conv2d, dropout, global_avg_pool2d,
    normalization, rescaling, rescaling_per_channel, residual_if_same_shape, squeeze_excite,
    zero_padding2d, Activation, BatchNormSpec,
};
use crate::sequential::{sequential, Sequential, SequentialSpec};
use crate::Result;
use keel_tensor::{Device, Padding};

/// ImageNet's standard deviations per RGB channel, which Keras' `Rescaling` divides by once more.
const IMAGENET_STDDEV_RGB: [f32; 3] = [0.229, 0.224, 0.225];

fn bn(name: String) -> BatchNormSpec {
    batch_norm().name(name)
}

fn swish(name: String) -> crate::layers::ActivationSpec {
    activation(Activation::Silu).name(name)
}

/// Keras' `correct_pad` for a `k`-wide stride-2 convolution on an `h` × `w` map: the
/// ((top, bottom), (left, right)) padding, and the map's size after the convolution.
fn correct_pad(k: usize, (h, w): (usize, usize)) -> ([(usize, usize); 2], (usize, usize)) {
    let side = |n: usize| {
        let (before, after) = (k / 2 - (1 - n % 2), k / 2);
        ((before, after), (n + before + after - k) / 2 + 1)
    };
    let ((rows, h), (cols, w)) = (side(h), side(w));
    ([rows, cols], (h, w))
}

/// Block `block{stage}{letter}` taking `inp` channels on a map of `size`; returns the block and
/// the map's size after it.
fn block(
    prefix: &str,
    (inp, out): (usize, usize),
    kernel: usize,
    stride: usize,
    expand: usize,
    size: (usize, usize),
) -> (SequentialSpec, (usize, usize)) {
    let filters = inp * expand;
    let mut body = sequential(prefix.trim_end_matches('_'));
    if expand != 1 {
        body = body
            .add(
                conv2d(filters, 1)
                    .padding(Padding::Same)
                    .use_bias(false)
                    .name(format!("{prefix}expand_conv")),
            )
            .add(bn(format!("{prefix}expand_bn")))
            .add(swish(format!("{prefix}expand_activation")));
    }
    let (padding, size) = if stride == 2 {
        let ([rows, cols], after) = correct_pad(kernel, size);
        body = body.add(zero_padding2d(rows, cols).name(format!("{prefix}dwconv_pad")));
        (Padding::Valid, after)
    } else {
        (Padding::Same, size)
    };
    let body = body
        .add(
            depthwise_conv2d(kernel)
                .strides(stride)
                .padding(padding)
                .use_bias(false)
                .name(format!("{prefix}dwconv")),
        )
        .add(bn(format!("{prefix}bn")))
        .add(swish(format!("{prefix}activation")))
        .add(
            squeeze_excite((inp / 4).max(1))
                .activation(Activation::Silu)
                .conv_names(format!("{prefix}se_reduce"), format!("{prefix}se_expand"))
                .name(format!("{prefix}se_excite")),
        )
        .add(
            conv2d(out, 1)
                .padding(Padding::Same)
                .use_bias(false)
                .name(format!("{prefix}project_conv")),
        )
        .add(bn(format!("{prefix}project_bn")));
    (body, size)
}

/// Keras' EfficientNetB0, for inputs in [0, 255]. Without its top it outputs
/// [⌈h/32⌉, ⌈w/32⌉, 1280]; with it, class probabilities (a softmax `predictions` layer):
/// 5,330,571 parameters, 5,288,548 of them trainable. B0 is one width, so `alpha` must be 1.
pub fn keras_efficientnet_b0(options: &BackboneOptions, device: &Device) -> Result<Sequential> {
    options.one_width("keras_efficientnet_b0")?;
    let ([rows, cols], mut size) = correct_pad(3, options.input);
    let inverse_std = IMAGENET_STDDEV_RGB.map(|s| 1.0 / s.sqrt());
    let mut model = sequential("efficientnetb0")
        .add(rescaling(1.0 / 255.0, 0.0).name("rescaling"))
        .add(normalization(&[], &[]).name("normalization"))
        .add(rescaling_per_channel(&inverse_std, 0.0).name("rescaling_1"))
        .add(zero_padding2d(rows, cols).name("stem_conv_pad"))
        .add(
            conv2d(32, 3)
                .strides(2)
                .padding(Padding::Valid)
                .use_bias(false)
                .name("stem_conv"),
        )
        .add(bn("stem_bn".into()))
        .add(swish("stem_activation".into()));
    let blocks: usize = STAGES.iter().map(|s| s.4).sum();
    let (mut channels, mut index) = (32, 0);
    for (stage, (expand, kernel, stride, out, repeats)) in STAGES.into_iter().enumerate() {
        for j in 0..repeats {
            let prefix = format!("block{}{}_", stage + 1, char::from(b'a' + j as u8));
            let stride = if j == 0 { stride } else { 1 };
            let (body, after) = block(&prefix, (channels, out), kernel, stride, expand, size);
            let drop_path = 0.2 * index as f32 / blocks as f32;
            model = model.add(residual_if_same_shape(body).drop_path(drop_path));
            (channels, size, index) = (out, after, index + 1);
        }
    }
    model = model
        .add(
            conv2d(1280, 1)
                .padding(Padding::Same)
                .use_bias(false)
                .name("top_conv"),
        )
        .add(bn("top_bn".into()))
        .add(swish("top_activation".into()));
    if options.include_top {
        model = model
            .add(global_avg_pool2d().name("avg_pool"))
            .add(dropout(0.2).name("top_dropout"))
            .add(
                dense(options.classes)
                    .activation(Activation::Softmax)
                    .name("predictions"),
            );
    }
    options.build(model, device)
}

#[cfg(test)]
mod tests {
    #[test]
    fn correct_pad_as_keras() {
        // Keras: ((k//2 − (1 − n % 2), k//2), …) and the valid stride-2 output size.
        assert_eq!(
            super::correct_pad(3, (224, 224)),
            ([(0, 1), (0, 1)], (112, 112))
        );
        assert_eq!(
            super::correct_pad(5, (57, 56)),
            ([(2, 2), (1, 2)], (29, 28))
        );
    }
}
