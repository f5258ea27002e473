//! keel-layers: Keras-style layers, the VGG16 / MobileNet / MobileNetV2 backbones, Flatten and
//! global-average-pooling heads, `summary()`, and safetensors weights. (Images and data sets
//! are `keel-data`'s.)
//!
//! A model is a [`Sequential`] built from layer specs once the input shape is known, so no one
//! computes 7·7·512 by hand:
//!
//! ```
//! use keel_layers::{backbones, summary, with_head, flatten_head, gap_head, BackboneOptions, Layer};
//! use keel_tensor::Device;
//! let dev = Device::cpu();
//! let vgg = backbones::vgg16(&BackboneOptions::default().input(64, 64), &dev)?;
//! vgg.set_trainable(false);
//! let model = with_head(vgg, &flatten_head(3), &dev, 0)?;
//! let s = summary(&model);
//! assert_eq!(s.trainable, 2 * 2 * 512 * 3 + 3); // Flatten of 2×2×512 → Dense(3)
//! # Ok::<(), keel_layers::Error>(())
//! ```

#![warn(missing_docs)]

pub mod backbones;
mod config;
mod error;
mod fold;
mod head;
mod init;
mod keras_file;
mod keras_model;
mod layer;
pub mod layers;
mod model_file;
mod profile;
mod sequential;
mod summary;
mod torch_file;
mod weights;

pub use backbones::BackboneOptions;
pub use config::{LayerConfig, PoolKind};
pub use error::{Error, Result};
pub use head::{flatten_head, gap_head, with_head, HeadSpec, Pooling};
pub use keel_tensor::{scratch_file, write_atomic};
pub use layer::{BuildContext, Fused, Layer, LayerSpec, Role, Weight};
pub use model_file::{load_model, save_model, write_model_file, ModelFile, ModelInfo, SavedModel};
pub use profile::{profile, ProfileRow};
pub use sequential::{sequential, HalfWeights, Prebuilt, Sequential, SequentialSpec};
pub use summary::{summary, Summary, SummaryRow};
pub use weights::{load_weights, read_tensors, save_weights, Layout, LoadOptions, LoadReport};
