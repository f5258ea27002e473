//! Whole models in one safetensors file — Keras' `model.save` and `keras.models.load_model`:
//! every weight (keel's layout, f32) plus, in the file's metadata, the configuration that builds
//! the model again, its input shape, its class names and the preprocessing its inputs need.
//! Training checkpoints are model files with the optimizer's state added (keel-train).

use crate::config::LayerConfig;
use crate::keras_file::is_hdf5;
use crate::keras_model::{is_zip, load_keras_model};
use crate::sequential::Sequential;
use crate::weights::{
    load_from, parse, read_tensor, safetensors_tensors, serialize, summarize, weights_error,
};
use crate::{Error, Layer, Layout, LoadOptions, Result};
use keel_tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The metadata key that marks a keel model file and holds its description.
const MODEL_KEY: &str = "keel.model";
/// The version of that description this code writes and reads.
const VERSION: u32 = 1;

/// What a model file says about the model besides its weights.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The name of each output class, by index (empty when unknown).
    pub classes: Vec<String>,
    /// The input preprocessing the model was trained with (a preset name such as
    /// `torchvision`), when its inputs are images.
    pub preprocessing: Option<String>,
}

/// The description stored under [`MODEL_KEY`].
#[derive(Serialize, Deserialize)]
struct Description {
    version: u32,
    input_shape: Vec<usize>,
    config: LayerConfig,
    #[serde(flatten)]
    info: ModelInfo,
}

/// A model read back from a file, with what the file says about it.
pub struct SavedModel {
    /// The model, with its weights.
    pub model: Sequential,
    /// Class names and preprocessing.
    pub info: ModelInfo,
}

/// Writes `model` (configuration and every weight) and `info` to `path`, replacing an existing
/// file atomically.
pub fn save_model(model: &Sequential, info: &ModelInfo, path: impl AsRef<Path>) -> Result<()> {
    write_model_file(path, model, info, Vec::new(), HashMap::new())
}

/// Reads a model written by [`save_model`] (or a training checkpoint), or a whole Keras model
/// (`.keras` or `.h5` from Keras' `model.save`), and builds it on `device`. A Keras model
/// builds when it is a chain of layers keel has, nested models that are chains, and the
/// Keras Applications backbones keel has in Keras' form (recognised by their layer names);
/// anything else is an error naming the first layer keel cannot build.
pub fn load_model(path: impl AsRef<Path>, device: &Device) -> Result<SavedModel> {
    let path = path.as_ref();
    let mut head = [0u8; 8];
    let read = std::fs::File::open(path).and_then(|mut f| f.read(&mut head));
    let n = read.map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if is_hdf5(&head[..n]) || is_zip(&head[..n]) {
        return load_keras_model(path, is_zip(&head[..n]), device);
    }
    ModelFile::open(path)?.build(device)
}

/// Writes a model file with `extra` tensors and metadata besides the model's (a training
/// checkpoint's optimizer state); extra tensor names must not collide with weight names.
pub fn write_model_file(
    path: impl AsRef<Path>,
    model: &Sequential,
    info: &ModelInfo,
    extra: Vec<(String, Tensor)>,
    mut metadata: HashMap<String, String>,
) -> Result<()> {
    let path = path.as_ref();
    let description = Description {
        version: VERSION,
        input_shape: model.input_shape().to_vec(),
        config: model.config(),
        info: info.clone(),
    };
    let json = serde_json::to_string(&description)
        .map_err(|e| weights_error(path, format!("describing the model: {e}")))?;
    metadata.insert(MODEL_KEY.into(), json);
    let mut tensors: Vec<(String, Tensor)> = model
        .weights()
        .iter()
        .map(|w| (w.keras_key(), w.param.value()))
        .collect();
    tensors.extend(extra);
    let bytes = serialize(path, tensors, Some(metadata))?;
    Ok(keel_tensor::write_atomic(path, &bytes)?)
}

/// A model file read into memory: its metadata, tensors and description.
pub struct ModelFile {
    path: PathBuf,
    bytes: Vec<u8>,
    metadata: HashMap<String, String>,
    description: Description,
}

impl ModelFile {
    /// Reads and checks `path`: a safetensors file with a keel model description.
    pub fn open(path: impl AsRef<Path>) -> Result<ModelFile> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        parse(&path, &bytes)?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| weights_error(&path, format!("not a valid safetensors file: {e}")))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let Some(json) = metadata.get(MODEL_KEY) else {
            return Err(weights_error(
                &path,
                "holds weights only, not a keel model (no `keel.model` metadata): build the \
                 model in code and use load_weights, or save it with save_model",
            ));
        };
        let description: Description = serde_json::from_str(json)
            .map_err(|e| weights_error(&path, format!("unreadable model description: {e}")))?;
        if description.version != VERSION {
            return Err(weights_error(
                &path,
                format!(
                    "model description version {}, this keel reads version {VERSION}",
                    description.version
                ),
            ));
        }
        Ok(ModelFile {
            path,
            bytes,
            metadata,
            description,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Class names and preprocessing.
    pub fn info(&self) -> &ModelInfo {
        &self.description.info
    }

    /// The model's input shape, without the batch axis.
    pub fn input_shape(&self) -> &[usize] {
        &self.description.input_shape
    }

    /// The model's configuration.
    pub fn config(&self) -> &LayerConfig {
        &self.description.config
    }

    /// A metadata value besides the model's description.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// Every tensor whose name starts with `prefix`, on `device`, by name.
    pub fn tensors(&self, prefix: &str, device: &Device) -> Result<HashMap<String, Tensor>> {
        let file = safetensors_tensors(&parse(&self.path, &self.bytes)?);
        file.iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(name, view)| Ok((name.clone(), read_tensor(&self.path, name, view, device)?)))
            .collect()
    }

    /// Builds the model on `device` with the file's weights.
    pub fn build(&self, device: &Device) -> Result<SavedModel> {
        let model = self.description.config.to_sequential_spec().build(
            &self.description.input_shape,
            device,
            0,
        )?;
        self.restore_weights(&model)?;
        Ok(SavedModel {
            model,
            info: self.description.info.clone(),
        })
    }

    /// Sets every weight of `model` from the file, which must hold each of them with its
    /// shape; tensors that are not weights must be the `extra` ones of a checkpoint (with `/`
    /// in a name that no layer has).
    pub fn restore_weights(&self, model: &Sequential) -> Result<()> {
        if model.config() != self.description.config {
            return Err(weights_error(
                &self.path,
                format!(
                    "was saved from another model than `{}`: the layer configurations differ{}",
                    model.name(),
                    first_difference(&self.description.config, &model.config())
                ),
            ));
        }
        let file = safetensors_tensors(&parse(&self.path, &self.bytes)?);
        let options = LoadOptions {
            layout: Layout::Keras,
            ..LoadOptions::default()
        };
        let report = load_from(model, &file, &self.path, options)?;
        if !report.missing.is_empty() {
            return Err(weights_error(
                &self.path,
                format!(
                    "has no tensor for {} of the model's weights: {}",
                    report.missing.len(),
                    summarize(&report.missing)
                ),
            ));
        }
        Ok(())
    }
}

/// `: first at layer NAME` for the first layer whose configuration differs, by position.
fn first_difference(saved: &LayerConfig, built: &LayerConfig) -> String {
    let flat = |c: &LayerConfig| -> Vec<LayerConfig> {
        let mut out = Vec::new();
        flatten_config(c, &mut out);
        out
    };
    let (a, b) = (flat(saved), flat(built));
    match a.iter().zip(&b).find(|(x, y)| x != y) {
        Some((x, y)) => format!(
            ": first at layer `{}` (saved) / `{}` (this model)",
            x.name(),
            y.name()
        ),
        None => format!(": {} layers saved, {} in this model", a.len(), b.len()),
    }
}

fn flatten_config(config: &LayerConfig, out: &mut Vec<LayerConfig>) {
    match config {
        LayerConfig::Sequential { layers, .. } => {
            layers.iter().for_each(|l| flatten_config(l, out));
        }
        LayerConfig::Residual { body, .. } => flatten_config(body, out),
        other => out.push(other.clone()),
    }
}
