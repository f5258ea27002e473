//! VGG16 (Keras `keras.applications.VGG16`): 13 3×3 convolutions in 5 blocks, each block ending
//! in a 2×2 max pool; layer names as in Keras (`block1_conv1`, …, `block5_pool`).

use super::BackboneOptions;
use crate::layers::{conv2d, dense, flatten, max_pool2d, Activation};
use crate::sequential::{sequential, Sequential};
use crate::Result;
use keel_tensor::{Device, Padding};

/// VGG16; without its top it outputs [h/32, w/32, 512] (7×7×512 at 224×224) and has 14,714,688
/// parameters. With it: Flatten → fc1 (4096) → fc2 (4096) → predictions (softmax).
pub fn vgg16(options: &BackboneOptions, device: &Device) -> Result<Sequential> {
    let mut model = sequential("vgg16");
    for (block, (filters, convs)) in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]
        .into_iter()
        .enumerate()
    {
        for conv in 1..=convs {
            model = model.add(
                conv2d(filters, 3)
                    .padding(Padding::Same)
                    .activation(Activation::Relu)
                    .name(format!("block{}_conv{conv}", block + 1)),
            );
        }
        model = model.add(max_pool2d(2).name(format!("block{}_pool", block + 1)));
    }
    if options.include_top {
        model = model
            .add(flatten().name("flatten"))
            .add(dense(4096).activation(Activation::Relu).name("fc1"))
            .add(dense(4096).activation(Activation::Relu).name("fc2"))
            .add(
                dense(options.classes)
                    .activation(Activation::Softmax)
                    .name("predictions"),
            );
    }
    options.build(model, device)
}
