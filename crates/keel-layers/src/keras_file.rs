//! Keras weights in HDF5, read by the pure-Rust `hdf5-reader` crate (no libhdf5): Keras 3's
//! `.weights.h5` (`layers/NAME/vars/I`, nested models as `layers/OUTER/layers/NAME/vars/I`) and
//! Keras 2's `.h5` from `save_weights` or `save` (`[model_weights/]NAME/NAME/kernel:0`). Kernels
//! are HWIO, Keras' layout and keel's, so only the names are translated.

use crate::layer::{Layer, Role, Weight};
use crate::weights::{weights_error, FileTensor, FileTensors};
use crate::Result;
use hdf5_reader::group::Group;
use hdf5_reader::{ByteOrder, Datatype, Hdf5File};
use safetensors::Dtype;
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

/// Whether `bytes` are an HDF5 file (its signature at the start, where Keras writes it).
pub(crate) fn is_hdf5(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x89HDF\r\n\x1a\n")
}

/// A Keras HDF5 file read whole: every numeric dataset by its path, and the model's
/// configuration when the file holds a whole model (Keras' `model_config` attribute).
pub(crate) struct KerasH5 {
    pub(crate) tensors: FileTensors<'static>,
    pub(crate) model_config: Option<String>,
}

/// Every numeric dataset of the file at `path`, by its path. Keras 3 names a `.weights.h5`
/// layer's group by its class (`layers/conv2d_3/vars/0`); where the `vars` group records the
/// layer's own name, the path says that name instead (`layers/block_1_expand/vars/0`).
pub(crate) fn read(path: &Path) -> Result<FileTensors<'static>> {
    Ok(read_h5(path, None)?.tensors)
}

/// The file at `path`, or `bytes` read from it (a `.keras` archive's weights) when given. A
/// panic inside the HDF5 crate on a malformed file becomes an error naming the file.
pub(crate) fn read_h5(path: &Path, bytes: Option<Vec<u8>>) -> Result<KerasH5> {
    std::panic::catch_unwind(|| read_datasets(path, bytes)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(weights_error(
            path,
            format!("HDF5: the file is malformed (the reader stopped: {why})"),
        ))
    })
}

/// A string attribute of `group`, stored in place or in the global heap; `None` when absent.
fn string_attribute(group: &Group, name: &str) -> hdf5_reader::error::Result<Option<String>> {
    let Some(attribute) = group.attributes()?.into_iter().find(|a| a.name == name) else {
        return Ok(None);
    };
    match attribute.read_string() {
        Ok(text) => Ok(Some(text)),
        Err(_) => {
            let file = group.file_data()?;
            Ok(Some(
                attribute.read_vlen_string(&file, group.offset_size())?,
            ))
        }
    }
}

fn read_datasets(path: &Path, bytes: Option<Vec<u8>>) -> Result<KerasH5> {
    let error = |e: hdf5_reader::error::Error| weights_error(path, format!("HDF5: {e}"));
    let (file, file_len) = match bytes {
        Some(bytes) => {
            let len = bytes.len() as u64;
            (Hdf5File::from_vec(bytes).map_err(error)?, len)
        }
        None => {
            let len = std::fs::metadata(path)
                .map_err(|source| crate::Error::Io {
                    path: path.to_path_buf(),
                    source,
                })?
                .len();
            (Hdf5File::open(path).map_err(error)?, len)
        }
    };
    let root = file.root_group().map_err(error)?;
    let model_config = string_attribute(&root, "model_config").map_err(error)?;
    let mut out = FileTensors::new();
    let mut pending = vec![(String::new(), root)];
    while let Some((prefix, group)) = pending.pop() {
        let (groups, datasets) = group.members().map_err(error)?;
        // `…/CLASS_NAME/vars/` → `…/LAYER_NAME/vars/` where Keras recorded the name.
        let prefix = match (
            group.name(),
            string_attribute(&group, "name").map_err(error)?,
        ) {
            ("vars", Some(layer)) => {
                let parent = prefix.trim_end_matches("vars/").trim_end_matches('/');
                let container = parent.rsplit_once('/').map_or("", |(c, _)| c);
                let sep = if container.is_empty() { "" } else { "/" };
                format!("{container}{sep}{layer}/vars/")
            }
            _ => prefix,
        };
        for d in datasets {
            let name = format!("{prefix}{}", d.name());
            let dtype = match d.dtype() {
                Datatype::FloatingPoint {
                    byte_order: ByteOrder::BigEndian,
                    ..
                }
                | Datatype::FixedPoint {
                    byte_order: ByteOrder::BigEndian,
                    ..
                } => {
                    return Err(weights_error(
                        path,
                        format!("dataset `{name}` is big-endian; keel reads little-endian files"),
                    ))
                }
                Datatype::FloatingPoint { size: 2, .. } => Dtype::F16,
                Datatype::FloatingPoint { size: 4, .. } => Dtype::F32,
                Datatype::FloatingPoint { size: 8, .. } => Dtype::F64,
                Datatype::FixedPoint { size: 8, .. } => Dtype::I64,
                Datatype::FixedPoint { size: 4, .. } => Dtype::I32,
                _ => continue, // strings and records: Keras' metadata, not weights
            };
            let shape: Vec<usize> = d.shape().iter().map(|&n| n as usize).collect();
            // A lying shape must not make the reader allocate more than any file could hold
            // (stored weights take their bytes; compressed ones at most 1024× their share).
            let bytes = shape
                .iter()
                .try_fold(element_size(dtype), |n, &d| n.checked_mul(d))
                .filter(|&n| n as u64 <= file_len.saturating_mul(1024))
                .ok_or_else(|| {
                    weights_error(
                        path,
                        format!(
                            "dataset `{name}` claims shape {shape:?}, more than the file can hold"
                        ),
                    )
                })?;
            let data = d.read_raw_bytes().map_err(error)?;
            if data.len() != bytes {
                return Err(weights_error(
                    path,
                    format!(
                        "dataset `{name}` of shape {shape:?} holds {} bytes, not {bytes}",
                        data.len()
                    ),
                ));
            }
            out.insert(
                name,
                FileTensor {
                    dtype,
                    shape,
                    data: Cow::Owned(data),
                },
            );
        }
        for g in groups {
            pending.push((format!("{prefix}{}/", g.name()), g));
        }
    }
    Ok(KerasH5 {
        tensors: out,
        model_config,
    })
}

/// Bytes per element of the dataset types read.
fn element_size(dtype: Dtype) -> usize {
    match dtype {
        Dtype::F16 => 2,
        Dtype::F32 | Dtype::I32 => 4,
        _ => 8,
    }
}

/// Keras' variable names, which a Keras 2 or legacy file puts last in a dataset's path.
const VARIABLES: [&str; 7] = [
    "kernel",
    "bias",
    "depthwise_kernel",
    "gamma",
    "beta",
    "moving_mean",
    "moving_variance",
];

/// Keras 3's name of a layer in a `.weights.h5` container: its class in snake case, then
/// `_1`, `_2`, … for the later layers of the same class (`conv2d`, `conv2d_1`, `dense`).
fn keras3_names(model: &dyn Layer) -> HashMap<String, Vec<Weight>> {
    fn walk(
        layer: &dyn Layer,
        counts: &mut HashMap<String, usize>,
        out: &mut HashMap<String, Vec<Weight>>,
    ) {
        let children = layer.children();
        if !children.is_empty() {
            children.into_iter().for_each(|c| walk(c, counts, out));
            return;
        }
        let weights = layer.weights();
        if weights.is_empty() {
            return;
        }
        let class = snake_case(layer.kind());
        let n = counts.entry(class.clone()).or_default();
        let name = if *n == 0 {
            class
        } else {
            format!("{class}_{n}")
        };
        *n += 1;
        out.insert(name, weights);
    }
    let mut out = HashMap::new();
    walk(model, &mut HashMap::new(), &mut out);
    out
}

/// `Conv2D` → `conv2d`, `BatchNormalization` → `batch_normalization` (Keras' `to_snake_case`).
fn snake_case(class: &str) -> String {
    let mut out = String::new();
    let mut previous: Option<char> = None;
    for c in class.chars() {
        let after_lower = previous.is_some_and(|p| !(p.is_ascii_digit() || p.is_ascii_uppercase()));
        if c.is_ascii_uppercase() && after_lower {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
        previous = Some(c);
    }
    out
}

/// The file's tensors named as `model`'s weights in keel's (Keras') layout, `layer/kernel`.
/// `rename` first translates the file's paths (a model saved under other layer names).
/// `…/NAME/vars/I` is the I-th weight (Keras 3 keeps a layer's variables in keel's order) of
/// the layer named NAME, or else of the layer Keras 3 names NAME in a flat container (by class,
/// see [`keras3_names`]); `…/NAME/kernel` and `…/NAME/kernel:0` are `NAME/kernel` (a
/// depthwise layer's `kernel` its `depthwise_kernel`). Paths that
/// fit neither stay as they are (reported as ignored, or refused by a strict load).
pub(crate) fn keras_names(
    path: &Path,
    model: &dyn Layer,
    file: FileTensors<'static>,
    rename: Option<fn(&str) -> Option<String>>,
) -> Result<FileTensors<'static>> {
    let mut by_layer: HashMap<String, Vec<Weight>> = HashMap::new();
    for w in model.weights() {
        by_layer.entry(w.layer.clone()).or_default().push(w);
    }
    // Class-based names stand for layers only in a flat container from a Keras that did not
    // record the layers' own names (see `read`).
    let nested = file.keys().any(|k| k.matches("layers/").count() > 1);
    let named = file
        .keys()
        .any(|k| match k.split('/').collect::<Vec<_>>()[..] {
            [.., layer, "vars", _] => by_layer.contains_key(layer),
            _ => false,
        });
    let by_class = if nested || named {
        HashMap::new()
    } else {
        keras3_names(model)
    };
    // A Normalization's third variable, `count`, is Keras' bookkeeping, not a weight.
    let is_count = |parts: &[&str]| match parts {
        [.., layer, "vars", var] | [.., layer, var] => {
            let normalization = by_layer
                .get(*layer)
                .and_then(|w| w.first())
                .is_some_and(|w| w.role == Role::Mean);
            normalization && matches!(*var, "2" | "count" | "count:0")
        }
        _ => false,
    };
    let mut out = FileTensors::new();
    for (name, tensor) in file {
        let name = rename.and_then(|r| r(&name)).unwrap_or(name);
        let parts: Vec<&str> = name.split('/').collect();
        if is_count(&parts) {
            continue;
        }
        let key = match parts[..] {
            [.., layer, "vars", index] => index.parse::<usize>().ok().and_then(|i| {
                let weights = by_layer.get(layer).or_else(|| by_class.get(layer))?;
                weights.get(i).map(Weight::keras_key)
            }),
            [.., layer, var] => {
                let var = var.strip_suffix(":0").unwrap_or(var);
                // Keras 3 calls a depthwise kernel `kernel`, Keras 2 `depthwise_kernel`.
                let known = by_layer.get(layer).and_then(|weights| {
                    weights.iter().find(|w| {
                        w.role.keras_name() == var
                            || (var == "kernel" && w.role == Role::DepthwiseKernel)
                    })
                });
                match known {
                    Some(w) => Some(w.keras_key()),
                    None => VARIABLES.contains(&var).then(|| format!("{layer}/{var}")),
                }
            }
            _ => None,
        }
        .unwrap_or(name.clone());
        if out.insert(key.clone(), tensor).is_some() {
            return Err(weights_error(
                path,
                format!("two datasets give the model's `{key}` (the second is `{name}`)"),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn class_names_in_snake_case_as_keras() {
        for (class, snake) in [
            ("Conv2D", "conv2d"),
            ("DepthwiseConv2D", "depthwise_conv2d"),
            ("BatchNormalization", "batch_normalization"),
            ("Dense", "dense"),
        ] {
            assert_eq!(super::snake_case(class), snake);
        }
    }
}
