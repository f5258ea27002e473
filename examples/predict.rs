//! Classifies images: with a model saved by `transfer --save` (or `save_model`) or by Keras'
//! `model.save` (`.keras`, `.h5`), or with an ImageNet backbone.
//!
//! `cargo run --release --example predict -- --model FILE IMAGE|FOLDER… [--top 5] [--json]
//!  [--device auto|wgpu|cpu]` classifies each image (a folder: every image file under it) with
//! the saved model, its class names and its preprocessing; `--input-tensor FILE.safetensors`
//! instead of images runs the model on a preprocessed [N, h, w, c] tensor.
//!
//! `cargo run --release --example predict -- [--backbone NAME] [--weights FILE] [--image IMAGE]
//!  [--timm] [--input-tensor FILE.safetensors] [--top 5] [--json]` runs an ImageNet backbone; the
//! defaults are MobileNetV2 with the committed f16 torchvision weights and `assets/china.jpg`. `--input-tensor`
//! replaces the image with one already preprocessed NHWC f32 tensor, so that logits can be
//! compared exactly with another framework.

mod common;

use clap::Parser;
use keel::data::{load_image, ImageOptions, Images, Preset, Samples};
use keel::layers::layers::Activation;
use keel::layers::{backbones, load_model, load_weights, BackboneOptions, Layer, LoadOptions};
use keel::{Device, Tensor};
use std::io::Write;
use std::path::{Path, PathBuf};

const LABELS: &str = include_str!("../assets/imagenet_classes.txt");

#[derive(Parser)]
#[command(about = "Classifies images with a saved model or an ImageNet backbone")]
struct Args {
    /// A model saved by `transfer --save` (classifies IMAGES with it).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Images or folders of images to classify with --model.
    images: Vec<PathBuf>,
    /// The ImageNet backbone: mobilenet_v2 or efficientnet_lite0 (with its classifier).
    #[arg(long, default_value = "mobilenet_v2")]
    backbone: String,
    /// Its weights (safetensors or PyTorch .pth, the architecture's or keel's layout); by
    /// default the committed MobileNetV2 ones.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// The image for the ImageNet model (resized to 256, centre-cropped to 224, normalised as
    /// the backbone expects).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/china.jpg"))]
    image: PathBuf,
    /// A safetensors file holding one preprocessed NHWC f32 tensor, used instead of the images:
    /// [1, 224, 224, 3] for an ImageNet backbone, [N, h, w, c] for a saved model of input
    /// [h, w, c].
    #[arg(long)]
    input_tensor: Option<PathBuf>,
    /// The weights file uses timm's tensor names (`--backbone` one timm names otherwise than
    /// torchvision: mobilenet_v2, efficientnet_b0, mobilenet_v3_large / _small, convnext_tiny).
    #[arg(long)]
    timm: bool,
    /// How many classes to print.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// auto, wgpu or cpu (KEEL_DEVICE when not given).
    #[arg(long, env = "KEEL_DEVICE", default_value = "auto")]
    device: String,
    /// Print one JSON object per image: file, device, top classes and all outputs.
    #[arg(long)]
    json: bool,
}

/// The single tensor of a safetensors file, as f32 on `device`: [N, …input] (N = 1 when
/// `one`).
fn read_input_tensor(
    path: &Path,
    input: &[usize],
    one: bool,
    device: &Device,
) -> Result<Tensor, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let names = st.names();
    let [name] = names[..] else {
        return Err(format!(
            "{}: expected one tensor, found {}",
            path.display(),
            names.len()
        ));
    };
    let t = st.tensor(name).map_err(|e| e.to_string())?;
    let shape = t.shape();
    let batch = if one { "1" } else { "N" };
    if t.dtype() != safetensors::Dtype::F32
        || shape.len() != input.len() + 1
        || shape[1..] != *input
        || shape[0] == 0
        || (one && shape[0] != 1)
    {
        return Err(format!(
            "{}: tensor `{name}` is {:?} {shape:?}; expected F32 [{batch}, {}] (NHWC, \
             preprocessed)",
            path.display(),
            t.dtype(),
            input
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let values = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Tensor::from_vec(values, shape.to_vec(), device).map_err(|e| e.to_string())
}

/// Fails when an output is NaN or infinite, naming the input.
fn check_finite(what: &Path, outputs: &[f32]) -> Result<(), String> {
    if outputs.iter().any(|v| !v.is_finite()) {
        return Err(format!(
            "{}: the model's outputs are not finite (NaN or ±∞): a weight or an input value is",
            what.display()
        ));
    }
    Ok(())
}

/// Softmax of one row, in f64.
fn softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f64> = row.iter().map(|&v| f64::from(v - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.iter().map(|e| (e / sum) as f32).collect()
}

/// Prints one image's top classes, as text or as a JSON line. When the reader of standard
/// output has gone (`predict … | head`), there is nothing more to say: the process ends.
fn report(
    args: &Args,
    device: &Device,
    file: &Path,
    outputs: &[f32],
    probs: &[f32],
    label: impl Fn(usize) -> String,
) {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    let top = &order[..args.top.min(order.len())];
    let text = if args.json {
        let obj = serde_json::json!({
            "file": file.display().to_string(),
            "device": device.to_string(),
            "top": top.iter().map(|&i| serde_json::json!({"index": i, "label": label(i), "prob": probs[i]})).collect::<Vec<_>>(),
            "logits": outputs,
            "probs": probs,
        });
        format!("{obj}\n")
    } else {
        let mut text = format!("{}\n", file.display());
        for &i in top {
            text += &format!("  {:>6.2}%  {:>4}  {}\n", probs[i] * 100.0, i, label(i));
        }
        text
    };
    let mut out = std::io::stdout().lock();
    if out
        .write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .is_err()
    {
        std::process::exit(0);
    }
}

/// Classifies `args.images` with the saved model `path`.
fn predict_saved(args: &Args, path: &Path, device: &Device) -> Result<(), String> {
    let saved = load_model(path, device).map_err(|e| e.to_string())?;
    let &[h, w, channels] = saved.model.input_shape() else {
        return Err(format!(
            "{}: the model takes inputs of shape {:?}, not images",
            path.display(),
            saved.model.input_shape()
        ));
    };
    let classes = saved.info.classes;
    let label = |k: usize| classes.get(k).cloned().unwrap_or_else(|| k.to_string());
    let already_probabilities = saved.model.config().output_activation() == Activation::Softmax;
    let probabilities = |row: &[f32]| {
        if already_probabilities {
            row.to_vec()
        } else {
            softmax(row)
        }
    };
    if let Some(tensor) = &args.input_tensor {
        let input = read_input_tensor(tensor, saved.model.input_shape(), false, device)?;
        let outputs = saved
            .model
            .predict(&input)
            .and_then(|y| Ok(y.to_vec()?))
            .map_err(|e| e.to_string())?;
        check_finite(tensor, &outputs)?;
        let width = outputs.len() / input.dims()[0];
        for row in outputs.chunks(width.max(1)) {
            report(args, device, tensor, row, &probabilities(row), label);
        }
        return Ok(());
    }
    let preset = match saved.info.preprocessing.as_deref() {
        Some(name) => Preset::from_name(name)
            .ok_or_else(|| format!("{}: unknown preprocessing `{name}`", path.display()))?,
        None if channels == 1 => Preset::Unit,
        None => {
            return Err(format!(
                "{}: the file does not say how its inputs are preprocessed",
                path.display()
            ))
        }
    };
    let options = ImageOptions {
        size: (h, w),
        channels,
        progress: true,
        ..ImageOptions::new(h, preset)
    };
    let images = Images::from_paths(&args.images, &options).map_err(|e| e.to_string())?;
    if images.is_empty() {
        return Err("no images to classify: name image files or folders after --model FILE".into());
    }
    let predictions =
        keel::train::predict(&saved.model, &images, 32, device).map_err(|e| e.to_string())?;
    let width = predictions.outputs.len() / predictions.indices.len().max(1);
    for (&i, row) in predictions
        .indices
        .iter()
        .zip(predictions.outputs.chunks(width.max(1)))
    {
        let file = images.path(i).unwrap_or(Path::new(""));
        check_finite(file, row)?;
        report(args, device, file, row, &probabilities(row), label);
    }
    let failed = images.skipped().len();
    if failed > 0 {
        return Err(format!(
            "{failed} of {} images could not be read",
            images.len()
        ));
    }
    Ok(())
}

/// Classifies one image with an ImageNet backbone.
fn predict_imagenet(args: &Args, device: &Device) -> Result<(), String> {
    let weights = match (&args.weights, args.backbone.as_str()) {
        (Some(w), _) => w.clone(),
        (None, "mobilenet_v2") => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/assets/mobilenet_v2_imagenet_f16.safetensors"
        )),
        (None, other) => {
            return Err(format!(
                "no weights for {other} are committed: pass --weights FILE"
            ))
        }
    };
    let options = BackboneOptions::default().include_top(1000);
    let model = backbones::by_name(&args.backbone, &options, device).map_err(|e| e.to_string())?;
    let rename = match (args.timm, backbones::timm_key(&args.backbone)) {
        (false, _) => None,
        (true, Some(rename)) => Some(rename),
        (true, None) => {
            return Err(format!(
                "--timm: timm names {} as torchvision does; leave --timm out",
                args.backbone
            ))
        }
    };
    let report_loaded = load_weights(
        &model,
        &weights,
        LoadOptions {
            strict: true,
            rename,
            ..LoadOptions::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let input = match &args.input_tensor {
        Some(path) => read_input_tensor(path, &[224, 224, 3], true, device)?,
        None => {
            let preset = common::backbone_preset(&args.backbone);
            load_image(&args.image, 224, preset, device).map_err(|e| e.to_string())?
        }
    };
    let logits = model.predict(&input).map_err(|e| e.to_string())?;
    let probs = logits
        .softmax()
        .and_then(|p| p.to_vec())
        .map_err(|e| e.to_string())?;
    let labels: Vec<&str> = LABELS.lines().collect();
    let what = args.input_tensor.as_ref().unwrap_or(&args.image);
    if !args.json {
        println!(
            "on {device} ({} weights loaded from {})",
            report_loaded.loaded,
            weights.display()
        );
    }
    let outputs = logits.to_vec().map_err(|e| e.to_string())?;
    check_finite(what, &outputs)?;
    report(args, device, what, &outputs, &probs, |i| {
        labels[i].to_string()
    });
    Ok(())
}

fn run() -> Result<(), String> {
    let args = Args::parse();
    let device = Device::from_name(&args.device).map_err(|e| e.to_string())?;
    match &args.model {
        Some(path) => predict_saved(&args, path, &device),
        None if !args.images.is_empty() => Err(
            "images to classify need --model FILE (a model saved by transfer --save); the \
             ImageNet model takes --image"
                .into(),
        ),
        None => predict_imagenet(&args, &device),
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
