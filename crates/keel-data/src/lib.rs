//! keel-data: labelled images for training, read when a batch needs them. Image folders (one
//! subfolder per class, indexed rather than loaded), the idx files of MNIST and Fashion-MNIST
//! (plain or gzip), the preprocessing presets of the pretrained backbones, seeded augmentation,
//! and batches built on worker threads.

#![warn(missing_docs)]

mod augment;
mod batches;
mod dataset;
mod error;
pub mod idx;
mod image_file;
mod images;
mod preset;
mod progress;
mod resize;
mod rng;
mod samples;

pub use augment::Augment;
pub use batches::{default_workers, for_each_batch, Batch, BatchOptions};
pub use dataset::Dataset;
pub use error::{Error, Result};
pub use image_file::{decode_image, looks_like_image, sniff_format, MAX_PIXELS};
pub use images::{ImageOptions, Images};
pub use preset::{load_image, Preset};
pub use progress::progress_bar;
pub use resize::resize;
pub use rng::Rng;
pub use samples::{labels, split, Provenance, Samples, Subset};
