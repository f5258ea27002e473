//! Whole Keras models as Keras' `model.save` writes them: a `.keras` archive (Keras 3: a zip of
//! `config.json` and `model.weights.h5`) or a legacy `.h5` (Keras 2 and 3: the configuration in
//! the `model_config` attribute, the weights under `model_weights/`). keel builds the model the
//! configuration describes and loads every weight by name, strictly.
//!
//! What builds: a chain of layers keel has (Conv2D, DepthwiseConv2D, Dense, BatchNormalization,
//! pooling, Flatten, Dropout, activations, ZeroPadding2D, Rescaling, Normalization), nested
//! `Sequential` or `Functional` models that are chains too, and the Keras Applications backbones
//! keel has in Keras' form (VGG16, MobileNet, MobileNetV2, ResNet50, EfficientNetB0), flat or
//! nested, which are recognised by their layers' names and built by [`crate::backbones`]. So a
//! transfer model — a backbone followed by Flatten or GlobalAveragePooling2D, Dropout and Dense
//! — loads as Keras saved it. Anything else is refused, naming the first layer keel cannot
//! build.

use crate::backbones::{self, BackboneOptions};
use crate::config::{LayerConfig, PoolKind};
use crate::keras_file::{keras_names, read_h5};
use crate::layer::{BuildContext, Layer, LayerSpec};
use crate::layers::{Activation, Factor};
use crate::model_file::{ModelInfo, SavedModel};
use crate::sequential::sequential;
use crate::weights::{load_from, summarize, weights_error, FileTensors};
use crate::{Error, Layout, LoadOptions, Result};
use keel_tensor::{Device, Padding};
use serde_json::Value;
use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

/// Whether `head` (a file's first bytes) starts a zip archive, as a `.keras` file does.
pub(crate) fn is_zip(head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04")
}

/// Reads a whole Keras model, a `.keras` archive when `archive` and else a legacy `.h5`, and
/// builds it on `device`.
pub(crate) fn load_keras_model(path: &Path, archive: bool, device: &Device) -> Result<SavedModel> {
    let (config, tensors) = if archive {
        read_archive(path)?
    } else {
        read_legacy(path)?
    };
    let config: Value = serde_json::from_str(&config)
        .map_err(|e| weights_error(path, format!("the model configuration is not JSON: {e}")))?;
    let translated = translate_model(&config).map_err(|msg| weights_error(path, msg))?;
    let model = translated
        .spec
        .build(&translated.input_shape, device, 0)
        .map_err(|e| weights_error(path, format!("building the model: {e}")))?;
    let named = keras_names(path, &model, tensors, None)?;
    let options = LoadOptions {
        layout: Layout::Keras,
        strict: true,
        rename: None,
    };
    let report = load_from(&model, &named, path, options)?;
    if !report.missing.is_empty() {
        return Err(weights_error(
            path,
            format!("has no weights for {}", summarize(&report.missing)),
        ));
    }
    freeze(&model, &translated.frozen);
    Ok(SavedModel {
        model,
        info: ModelInfo {
            classes: Vec::new(),
            preprocessing: translated.preprocessing.map(String::from),
        },
    })
}

/// `config.json` and the weights of a `.keras` archive.
fn read_archive(path: &Path) -> Result<(String, FileTensors<'static>)> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let archive_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let zip_error =
        |e: zip::result::ZipError| weights_error(path, format!("a .keras archive: {e}"));
    let mut archive = zip::ZipArchive::new(file).map_err(zip_error)?;
    // Keras stores its members or deflates them; none expands a hundredfold, as a zip bomb does.
    let limit = archive_len.saturating_mul(100).saturating_add(1 << 20);
    let mut entry = |name: &str| -> Result<Vec<u8>> {
        let member = archive.by_name(name).map_err(|_| {
            weights_error(
                path,
                format!("a .keras archive holds `{name}`; this one does not"),
            )
        })?;
        let mut bytes = Vec::new();
        member
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| weights_error(path, format!("reading `{name}`: {e}")))?;
        if bytes.len() as u64 > limit {
            return Err(weights_error(
                path,
                format!("`{name}` expands past {limit} bytes, a hundred times the archive"),
            ));
        }
        Ok(bytes)
    };
    let config = String::from_utf8(entry("config.json")?)
        .map_err(|_| weights_error(path, "`config.json` is not UTF-8 text"))?;
    let weights = entry("model.weights.h5")?;
    Ok((config, read_h5(path, Some(weights))?.tensors))
}

/// The `model_config` attribute and the weights (under `model_weights/`) of a legacy `.h5`.
fn read_legacy(path: &Path) -> Result<(String, FileTensors<'static>)> {
    let file = read_h5(path, None)?;
    let Some(config) = file.model_config else {
        return Err(weights_error(
            path,
            "holds weights only, not a whole model (no `model_config`): build the model in \
             code and use load_weights",
        ));
    };
    let tensors = file
        .tensors
        .into_iter()
        .filter_map(|(name, t)| Some((name.strip_prefix("model_weights/")?.to_string(), t)))
        .collect();
    Ok((config, tensors))
}

/// A Keras model as keel will build it.
struct Translated {
    spec: crate::SequentialSpec,
    input_shape: Vec<usize>,
    /// Layers Keras saved as not trainable.
    frozen: HashSet<String>,
    /// How the model's inputs are preprocessed, when a recognised backbone says so.
    preprocessing: Option<&'static str>,
}

/// A Keras Applications backbone keel builds: its name in [`backbones::by_name`], the Keras
/// layers that start and end it, its preprocessing, and how its width multiplier shows.
struct KnownBackbone {
    keel: &'static str,
    first: &'static str,
    last: &'static str,
    preprocessing: &'static str,
    /// The layer whose filters divided by the second number give `alpha`.
    width: Option<(&'static str, f32)>,
}

const KNOWN: [KnownBackbone; 5] = [
    KnownBackbone {
        keel: "vgg16",
        first: "block1_conv1",
        last: "block5_pool",
        preprocessing: "caffe",
        width: None,
    },
    KnownBackbone {
        keel: "mobilenet",
        first: "conv1",
        last: "conv_pw_13_relu",
        preprocessing: "tf",
        width: Some(("conv_pw_13", 1024.0)),
    },
    KnownBackbone {
        keel: "keras_mobilenet_v2",
        first: "Conv1",
        last: "out_relu",
        preprocessing: "tf",
        width: Some(("block_16_project", 320.0)),
    },
    KnownBackbone {
        keel: "keras_resnet50",
        first: "conv1_pad",
        last: "conv5_block3_out",
        preprocessing: "caffe",
        width: None,
    },
    KnownBackbone {
        keel: "keras_efficientnet_b0",
        first: "stem_conv_pad",
        last: "top_activation",
        preprocessing: "raw",
        width: None,
    },
];

/// How the model starts, which says how its inputs are preprocessed.
#[derive(Clone, Copy, PartialEq)]
enum Start {
    /// No layer yet.
    Nothing,
    /// A recognised backbone, with its preprocessing.
    Backbone(&'static str),
    /// A Rescaling or Normalization layer: the model takes pixels in [0, 255].
    Normalising,
    /// Another layer: unknown.
    Other,
}

/// What the translation gathers on its way through nested models.
struct Gathered {
    frozen: HashSet<String>,
    start: Start,
}

fn translate_model(config: &Value) -> std::result::Result<Translated, String> {
    let input_shape = input_shape(config)?;
    let mut gathered = Gathered {
        frozen: HashSet::new(),
        start: Start::Nothing,
    };
    let spec = chain(config, &mut gathered)?;
    let preprocessing = match gathered.start {
        Start::Backbone(preset) => Some(preset),
        Start::Normalising => Some("raw"),
        Start::Nothing | Start::Other => None,
    };
    Ok(Translated {
        spec,
        input_shape,
        frozen: gathered.frozen,
        preprocessing,
    })
}

fn class(layer: &Value) -> &str {
    layer["class_name"].as_str().unwrap_or("")
}

fn name(layer: &Value) -> &str {
    layer["config"]["name"]
        .as_str()
        .or_else(|| layer["name"].as_str())
        .unwrap_or("")
}

fn is_model(layer: &Value) -> bool {
    matches!(class(layer), "Sequential" | "Functional" | "Model")
}

/// The input shape of a model (without the batch axis): its `InputLayer`'s, or else its first
/// layer's `batch_input_shape` (Keras 2 Sequential models) or built input shape.
fn input_shape(model: &Value) -> std::result::Result<Vec<usize>, String> {
    let layers = layers_of(model)?;
    let first = layers
        .first()
        .ok_or_else(|| format!("model `{}` has no layers", name(model)))?;
    let c = &first["config"];
    let shape = [
        &c["batch_shape"],
        &c["batch_input_shape"],
        &first["build_config"]["input_shape"],
    ]
    .into_iter()
    .find(|s| s.is_array())
    .ok_or_else(|| format!("model `{}` does not give its input shape", name(model)))?;
    let dims: Option<Vec<usize>> = shape.as_array().and_then(|a| {
        a.iter()
            .skip(1)
            .map(|d| d.as_u64().map(|d| d as usize))
            .collect()
    });
    // An image model's input is a picture, not gigabytes: a lying shape must not make keel
    // build layers (a Dense after a Flatten) larger than any file holds.
    const MOST: usize = 1 << 26;
    match dims {
        Some(dims)
            if dims
                .iter()
                .try_fold(1usize, |n, &d| n.checked_mul(d))
                .is_none_or(|n| n > MOST) =>
        {
            Err(format!(
                "model `{}` takes inputs of shape {dims:?}, more than {MOST} values per sample",
                name(model)
            ))
        }
        Some(dims) if !dims.is_empty() && !dims.contains(&0) => Ok(dims),
        _ => Err(format!(
            "model `{}` takes inputs of shape {shape}; keel needs every size but the batch's",
            name(model)
        )),
    }
}

fn layers_of(model: &Value) -> std::result::Result<&Vec<Value>, String> {
    model["config"]["layers"]
        .as_array()
        .ok_or_else(|| format!("model `{}` lists no layers", name(model)))
}

/// The names of the layers a Functional layer takes its inputs from (Keras 3's
/// `keras_history`, or Keras 2's `[name, node, tensor, kwargs]` lists).
fn inbound(layer: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if let Some(history) = map.get("keras_history").and_then(Value::as_array) {
                    if let Some(n) = history.first().and_then(Value::as_str) {
                        out.push(n.to_string());
                    }
                    return;
                }
                map.values().for_each(|v| walk(v, out));
            }
            Value::Array(items) => match (items.first(), items.get(1)) {
                (Some(Value::String(n)), Some(Value::Number(_))) => out.push(n.clone()),
                _ => items.iter().for_each(|v| walk(v, out)),
            },
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&layer["inbound_nodes"], &mut out);
    out
}

/// A model's layers as one keel `Sequential`: recognised backbones built whole, the other
/// layers one by one, each taking the previous one's output.
fn chain(
    model: &Value,
    gathered: &mut Gathered,
) -> std::result::Result<crate::SequentialSpec, String> {
    let layers = layers_of(model)?;
    let functional = class(model) != "Sequential";
    let mut spec = sequential(name(model));
    let mut previous: Option<String> = None;
    let mut i = 0;
    while i < layers.len() {
        let layer = &layers[i];
        if layer["config"]["trainable"] == Value::Bool(false) {
            gathered.frozen.insert(name(layer).to_string());
        }
        if class(layer) == "InputLayer" {
            previous = Some(name(layer).to_string());
            i += 1;
            continue;
        }
        if functional {
            let from = inbound(layer);
            if previous.is_some() && from != previous.iter().cloned().collect::<Vec<_>>() {
                return Err(format!(
                    "layer `{}` ({}) takes {from:?}, not only the layer before it: keel builds \
                     chains of layers and the Keras Applications backbones it knows",
                    name(layer),
                    class(layer)
                ));
            }
        }
        if let Some((known, last)) = recognise(layers, i) {
            let segment = &layers[i..=last];
            for l in segment {
                if l["config"]["trainable"] == Value::Bool(false) {
                    gathered.frozen.insert(name(l).to_string());
                }
            }
            if gathered.start == Start::Nothing {
                gathered.start = Start::Backbone(known.preprocessing);
            }
            spec = spec.add(Backbone {
                known,
                alpha: alpha(known, segment)?,
            });
            previous = Some(name(&layers[last]).to_string());
            i = last + 1;
            continue;
        }
        if is_model(layer) {
            spec = spec.add(chain(layer, gathered)?);
        } else {
            let config = translate_layer(layer)?;
            if gathered.start == Start::Nothing {
                gathered.start = match config {
                    LayerConfig::Rescaling { .. } | LayerConfig::Normalization { .. } => {
                        Start::Normalising
                    }
                    _ => Start::Other,
                };
            }
            spec = spec.extend(vec![config.to_spec()]);
        }
        previous = Some(name(layer).to_string());
        i += 1;
    }
    Ok(spec)
}

/// The known backbone that starts at `layers[i]`, and the index of its last layer.
fn recognise(layers: &[Value], i: usize) -> Option<(&'static KnownBackbone, usize)> {
    let first = name(&layers[i]);
    KNOWN.iter().find_map(|known| {
        if known.first != first {
            return None;
        }
        let last = layers[i..].iter().position(|l| name(l) == known.last)?;
        Some((known, i + last))
    })
}

/// The backbone's width multiplier, from the filters of its `width` layer.
fn alpha(known: &KnownBackbone, segment: &[Value]) -> std::result::Result<f32, String> {
    let Some((layer, full)) = known.width else {
        return Ok(1.0);
    };
    let filters = segment
        .iter()
        .find(|l| name(l) == layer)
        .and_then(|l| l["config"]["filters"].as_f64())
        .ok_or_else(|| {
            format!(
                "the {} backbone has no layer `{layer}` with filters",
                known.keel
            )
        })?;
    Ok(filters as f32 / full)
}

/// A recognised backbone, built by [`backbones::by_name`] once its input size is known,
/// starting at its `first` layer (Keras' EfficientNet normalises its input in layers that come
/// before, which the chain builds one by one).
struct Backbone {
    known: &'static KnownBackbone,
    alpha: f32,
}

impl LayerSpec for Backbone {
    fn base_name(&self) -> &'static str {
        "functional"
    }
    fn build(self: Box<Self>, ctx: &BuildContext<'_>) -> Result<Box<dyn Layer>> {
        let &[h, w, 3] = ctx.input else {
            return Err(Error::layer(
                self.known.keel,
                format!("takes [h, w, 3] images, got {:?}", ctx.input),
            ));
        };
        let options = BackboneOptions::default()
            .input(h, w)
            .alpha(self.alpha)
            .seed(ctx.seed);
        let model = backbones::by_name(self.known.keel, &options, ctx.device)?;
        let LayerConfig::Sequential { name, layers } = model.config() else {
            unreachable!("a backbone is a Sequential");
        };
        if layers.first().map(LayerConfig::name) == Some(self.known.first) {
            return Ok(Box::new(model));
        }
        let from = layers
            .iter()
            .position(|l| l.name() == self.known.first)
            .unwrap_or(0);
        let rest = LayerConfig::Sequential {
            name,
            layers: layers[from..].to_vec(),
        };
        Ok(Box::new(
            rest.to_sequential_spec()
                .build(ctx.input, ctx.device, ctx.seed)?,
        ))
    }
}

/// One Keras layer as keel's configuration.
fn translate_layer(layer: &Value) -> std::result::Result<LayerConfig, String> {
    let c = &layer["config"];
    let layer_name = name(layer).to_string();
    let refuse = |why: String| format!("layer `{layer_name}` ({}) {why}", class(layer));
    if c["data_format"]
        .as_str()
        .is_some_and(|f| f != "channels_last")
    {
        return Err(refuse(
            "is channels-first; keel's maps are channels-last".into(),
        ));
    }
    let pair = |key: &str| -> std::result::Result<(usize, usize), String> {
        let v = &c[key];
        match (v.as_u64(), v.as_array()) {
            (Some(n), _) => Ok((n as usize, n as usize)),
            (_, Some(a)) if a.len() == 2 => match (a[0].as_u64(), a[1].as_u64()) {
                (Some(x), Some(y)) => Ok((x as usize, y as usize)),
                _ => Err(refuse(format!("has `{key}` {v}"))),
            },
            _ => Err(refuse(format!("has `{key}` {v}"))),
        }
    };
    let padding = || match c["padding"].as_str() {
        Some("valid") => Ok(Padding::Valid),
        Some("same") => Ok(Padding::Same),
        other => Err(refuse(format!("has padding {other:?}"))),
    };
    let activation = || -> std::result::Result<Activation, String> {
        let a = c["activation"].as_str().unwrap_or("linear");
        Activation::from_name(a).ok_or_else(|| refuse(format!("uses activation `{a}`")))
    };
    let float = |key: &str, default: f64| c[key].as_f64().unwrap_or(default) as f32;
    let config = match class(layer) {
        "Conv2D" => LayerConfig::Conv2D {
            name: layer_name.clone(),
            filters: c["filters"]
                .as_u64()
                .ok_or_else(|| refuse("has no filters".into()))? as usize,
            kernel_size: pair("kernel_size")?,
            strides: pair("strides")?,
            padding: padding()?,
            dilation: pair("dilation_rate")?,
            groups: c["groups"].as_u64().unwrap_or(1) as usize,
            use_bias: c["use_bias"].as_bool().unwrap_or(true),
            activation: activation()?,
        },
        "DepthwiseConv2D" => LayerConfig::DepthwiseConv2D {
            name: layer_name.clone(),
            kernel_size: pair("kernel_size")?,
            strides: pair("strides")?,
            padding: padding()?,
            dilation: pair("dilation_rate")?,
            depth_multiplier: c["depth_multiplier"].as_u64().unwrap_or(1) as usize,
            use_bias: c["use_bias"].as_bool().unwrap_or(true),
            activation: activation()?,
        },
        "Dense" => LayerConfig::Dense {
            name: layer_name.clone(),
            units: c["units"]
                .as_u64()
                .ok_or_else(|| refuse("has no units".into()))? as usize,
            use_bias: c["use_bias"].as_bool().unwrap_or(true),
            activation: activation()?,
        },
        "Dropout" => LayerConfig::Dropout {
            name: layer_name.clone(),
            rate: float("rate", 0.0),
        },
        "BatchNormalization" => {
            let axis = &c["axis"];
            if !channel_axis(axis) || c["center"] == false || c["scale"] == false {
                return Err(refuse(format!(
                    "normalises axis {axis} (center {}, scale {}); keel's batch norm is over \
                     the channels, with both",
                    c["center"], c["scale"]
                )));
            }
            LayerConfig::BatchNormalization {
                name: layer_name.clone(),
                momentum: float("momentum", 0.99),
                epsilon: float("epsilon", 1e-3),
            }
        }
        "Activation" => LayerConfig::Activation {
            name: layer_name.clone(),
            activation: activation()?,
        },
        "ReLU" => {
            let max = c["max_value"].as_f64();
            let plain = c["negative_slope"].as_f64().unwrap_or(0.0) == 0.0
                && c["threshold"].as_f64().unwrap_or(0.0) == 0.0;
            let activation = match max {
                None if plain => Activation::Relu,
                Some(m) if plain && m == 6.0 => Activation::Relu6,
                _ => {
                    return Err(refuse(format!(
                        "has max_value {max:?}, negative_slope {}, threshold {}; keel has ReLU \
                         and ReLU6",
                        c["negative_slope"], c["threshold"]
                    )))
                }
            };
            LayerConfig::Activation {
                name: layer_name.clone(),
                activation,
            }
        }
        "Softmax" => LayerConfig::Activation {
            name: layer_name.clone(),
            activation: Activation::Softmax,
        },
        class @ ("MaxPooling2D" | "AveragePooling2D") => {
            let pool_size = pair("pool_size")?;
            LayerConfig::Pooling2D {
                name: layer_name.clone(),
                pool: if class == "MaxPooling2D" {
                    PoolKind::Max
                } else {
                    PoolKind::Avg
                },
                pool_size,
                strides: if c["strides"].is_null() {
                    pool_size
                } else {
                    pair("strides")?
                },
                padding: padding()?,
            }
        }
        class @ ("GlobalAveragePooling2D" | "GlobalMaxPooling2D") => {
            if c["keepdims"] == true {
                return Err(refuse(
                    "keeps its dims; keel's global pooling drops them".into(),
                ));
            }
            LayerConfig::GlobalPooling2D {
                name: layer_name.clone(),
                pool: if class == "GlobalMaxPooling2D" {
                    PoolKind::Max
                } else {
                    PoolKind::Avg
                },
            }
        }
        "Flatten" => LayerConfig::Flatten {
            name: layer_name.clone(),
        },
        "ZeroPadding2D" => {
            let p = &c["padding"];
            let sides = |v: &Value| -> Option<(usize, usize)> {
                match (v.as_u64(), v.as_array()) {
                    (Some(n), _) => Some((n as usize, n as usize)),
                    (_, Some(a)) if a.len() == 2 => {
                        Some((a[0].as_u64()? as usize, a[1].as_u64()? as usize))
                    }
                    _ => None,
                }
            };
            let padding = match (p.as_u64(), p.as_array()) {
                (Some(n), _) => Some([(n as usize, n as usize); 2]),
                (_, Some(a)) if a.len() == 2 => sides(&a[0]).zip(sides(&a[1])).map(|(r, c)| [r, c]),
                _ => None,
            }
            .ok_or_else(|| refuse(format!("has padding {p}")))?;
            LayerConfig::ZeroPadding2D {
                name: layer_name.clone(),
                padding,
            }
        }
        "Rescaling" => {
            let scale = match (&c["scale"], c["scale"].as_f64()) {
                (_, Some(s)) => Factor::All(s as f32),
                (Value::Array(a), None) => Factor::PerChannel(
                    a.iter()
                        .map(|v| v.as_f64().map(|v| v as f32))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| refuse(format!("has scale {}", c["scale"])))?,
                ),
                (other, None) => return Err(refuse(format!("has scale {other}"))),
            };
            let offset = c["offset"].as_f64();
            if !c["offset"].is_null() && offset.is_none() {
                return Err(refuse(format!(
                    "has offset {}; keel takes one offset for every channel",
                    c["offset"]
                )));
            }
            LayerConfig::Rescaling {
                name: layer_name.clone(),
                scale,
                offset: offset.unwrap_or(0.0) as f32,
            }
        }
        "Normalization" => {
            let axis = &c["axis"];
            if !channel_axis(axis) || c["invert"] == true {
                return Err(refuse(format!(
                    "normalises axis {axis} (invert {}); keel's normalises the channels",
                    c["invert"]
                )));
            }
            let values = |key: &str| -> std::result::Result<Vec<f32>, String> {
                match &c[key] {
                    Value::Null => Ok(Vec::new()),
                    Value::Array(a) => a
                        .iter()
                        .map(|v| v.as_f64().map(|v| v as f32))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| refuse(format!("has {key} {}", c[key]))),
                    other => Err(refuse(format!(
                        "has {key} {other}; keel takes one per channel"
                    ))),
                }
            };
            LayerConfig::Normalization {
                name: layer_name.clone(),
                mean: values("mean")?,
                variance: values("variance")?,
            }
        }
        other => {
            return Err(format!(
                "layer `{layer_name}` is a {other}, which keel does not build from a Keras file"
            ))
        }
    };
    Ok(config)
}

/// Whether a Keras `axis` (a number or a one-element list) is the channels of an NHWC map.
fn channel_axis(axis: &Value) -> bool {
    let one = match axis.as_array() {
        Some(a) if a.len() == 1 => &a[0],
        Some(_) => return false,
        None => axis,
    };
    matches!(one.as_i64(), Some(-1 | 3))
}

/// Freezes every layer (at any depth) whose name Keras saved as not trainable.
fn freeze(layer: &dyn Layer, frozen: &HashSet<String>) {
    if frozen.contains(layer.name()) {
        layer.set_trainable(false);
        return;
    }
    for child in layer.children() {
        freeze(child, frozen);
    }
}
