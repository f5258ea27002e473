//! Images to input tensors, with the preprocessing each backbone was trained with.

use crate::{Error, Result};
use keel_tensor::{Device, Tensor};
use std::path::Path;

/// The input conventions of the pretrained backbones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// torchvision: RGB / 255, minus mean (0.485, 0.456, 0.406), over std (0.229, 0.224, 0.225).
    Torchvision,
    /// Keras "caffe" (VGG16): BGR, minus (103.939, 116.779, 123.68).
    Caffe,
    /// Keras "tf" (MobileNet v1): RGB scaled to [-1, 1].
    Tf,
}

impl Preset {
    /// Maps one RGB pixel (0–255) to the network's three input values.
    pub fn apply(self, rgb: [u8; 3]) -> [f32; 3] {
        let [r, g, b] = rgb.map(f32::from);
        match self {
            Preset::Torchvision => {
                let norm = |v: f32, m: f32, s: f32| (v / 255.0 - m) / s;
                [
                    norm(r, 0.485, 0.229),
                    norm(g, 0.456, 0.224),
                    norm(b, 0.406, 0.225),
                ]
            }
            Preset::Caffe => [b - 103.939, g - 116.779, r - 123.68],
            Preset::Tf => [r / 127.5 - 1.0, g / 127.5 - 1.0, b / 127.5 - 1.0],
        }
    }
}

/// Reads an image (any format `image` decodes; grey and RGBA become RGB), resizes its shorter
/// side to size·256/224 and crops the centre size×size (torchvision's evaluation transform),
/// and returns a [1, size, size, 3] tensor preprocessed with `preset`.
pub fn load_image(
    path: impl AsRef<Path>,
    size: usize,
    preset: Preset,
    device: &Device,
) -> Result<Tensor> {
    let path = path.as_ref();
    let img = image::open(path).map_err(|e| Error::Image {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    let rgb = img.to_rgb8();
    let (w, h) = rgb.dimensions();
    if w == 0 || h == 0 {
        return Err(Error::Image {
            path: path.to_path_buf(),
            msg: "the image is empty".into(),
        });
    }
    let short = (size as f32 * 256.0 / 224.0).round() as u32;
    let (nw, nh) = if w <= h {
        (short, (h as f32 * short as f32 / w as f32).round() as u32)
    } else {
        ((w as f32 * short as f32 / h as f32).round() as u32, short)
    };
    let resized = image::imageops::resize(&rgb, nw, nh, image::imageops::FilterType::Triangle);
    let (x0, y0) = ((nw - size as u32) / 2, (nh - size as u32) / 2);
    let mut values = Vec::with_capacity(size * size * 3);
    for y in 0..size as u32 {
        for x in 0..size as u32 {
            values.extend(preset.apply(resized.get_pixel(x0 + x, y0 + y).0));
        }
    }
    Ok(Tensor::from_vec(values, [1, size, size, 3], device)?)
}
