//! keel-data: labelled images for training. Image folders (one subfolder per class), the idx
//! files of MNIST and Fashion-MNIST (plain or gzip), the preprocessing presets of the pretrained
//! backbones, and seeded augmentation.

#![warn(missing_docs)]

mod augment;
mod dataset;
mod error;
pub mod idx;
mod image_folder;
mod preset;
mod resize;
mod rng;

pub use augment::Augment;
pub use dataset::Dataset;
pub use error::{Error, Result};
pub use image_folder::{load_image_folder, FolderOptions, ImageFolder};
pub use preset::{decode_rgb, load_image, Preset};
pub use resize::resize;
pub use rng::Rng;
