//! Decoding images and preprocessing them the way each backbone was trained.

use crate::image_file::{check_size, decode_image};
use crate::resize::resize;
use crate::Result;
use image::RgbImage;
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
    /// RGB / 255 in [0, 1] (models trained from scratch).
    Unit,
    /// RGB in [0, 255] as it is (Keras' EfficientNet, which normalises inside the model).
    Raw,
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
            Preset::Unit => [r / 255.0, g / 255.0, b / 255.0],
            Preset::Raw => [r, g, b],
        }
    }

    /// Appends a whole image's preprocessed values to `out` (row-major, 3 per pixel).
    pub fn extend(self, rgb: &RgbImage, out: &mut Vec<f32>) {
        out.extend(rgb.pixels().flat_map(|p| self.apply(p.0)));
    }

    /// The preset's name: `torchvision`, `caffe`, `tf`, `unit` or `raw`.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Torchvision => "torchvision",
            Preset::Caffe => "caffe",
            Preset::Tf => "tf",
            Preset::Unit => "unit",
            Preset::Raw => "raw",
        }
    }

    /// Parses `torchvision`, `caffe`, `tf`, `unit` or `raw`.
    pub fn from_name(name: &str) -> Option<Preset> {
        [
            Preset::Torchvision,
            Preset::Caffe,
            Preset::Tf,
            Preset::Unit,
            Preset::Raw,
        ]
        .into_iter()
        .find(|p| p.name() == name)
    }
}

/// Reads an image, resizes its shorter side to size·256/224 and crops the centre size×size
/// (torchvision's evaluation transform, `Resize` then `CenterCrop`, with the same arithmetic),
/// and returns a [1, size, size, 3] tensor preprocessed with `preset`.
pub fn load_image(
    path: impl AsRef<Path>,
    size: usize,
    preset: Preset,
    device: &Device,
) -> Result<Tensor> {
    let path = path.as_ref();
    let rgb = decode_image(path)?;
    let (w, h) = rgb.dimensions();
    let short = (size as f64 * 256.0 / 224.0).round() as u32;
    // torchvision truncates the long side and rounds the crop's offset half to even.
    let long = |l: u32, s: u32| (f64::from(short) * f64::from(l) / f64::from(s)) as u32;
    let (nw, nh) = if w <= h {
        (short, long(h, w))
    } else {
        (long(w, h), short)
    };
    let what = format!("resized to a shorter side of {short} pixels, the image");
    check_size(path, nw as usize, nh as usize, &what)?;
    let resized = resize(&rgb, nh as usize, nw as usize);
    let offset = |l: u32| (f64::from(l - size as u32) / 2.0).round_ties_even() as u32;
    let (x0, y0) = (offset(nw), offset(nh));
    let crop = image::imageops::crop_imm(&resized, x0, y0, size as u32, size as u32).to_image();
    let mut values = Vec::with_capacity(size * size * 3);
    preset.extend(&crop, &mut values);
    Ok(Tensor::from_vec(values, [1, size, size, 3], device)?)
}
