//! Classifies an image with the ImageNet MobileNetV2 and prints the top classes.
//!
//! `cargo run --release --example predict -- [--weights FILE] [--image IMAGE] [--top 5]
//!  [--device auto|wgpu|cpu] [--json] [--input-tensor FILE.safetensors]`
//!
//! Defaults: the committed f16 torchvision weights and `assets/china.jpg`. `--input-tensor`
//! replaces the image with one already preprocessed NHWC f32 tensor, so that logits can be
//! compared exactly with another framework.

use clap::Parser;
use keel::data::{load_image, Preset};
use keel::layers::{backbones, load_weights, BackboneOptions, LoadOptions};
use keel::{Device, Tensor};
use std::path::{Path, PathBuf};

const LABELS: &str = include_str!("../assets/imagenet_classes.txt");

#[derive(Parser)]
#[command(about = "Classifies an image with the ImageNet MobileNetV2")]
struct Args {
    /// MobileNetV2 weights (safetensors, torchvision or keel layout).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/mobilenet_v2_imagenet_f16.safetensors"))]
    weights: PathBuf,
    /// The image to classify (resized to 256, centre-cropped to 224, torchvision normalisation).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/china.jpg"))]
    image: PathBuf,
    /// A safetensors file holding one preprocessed NHWC f32 tensor [1, 224, 224, 3], used
    /// instead of the image.
    #[arg(long)]
    input_tensor: Option<PathBuf>,
    /// How many classes to print.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// auto, wgpu or cpu.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Print JSON: device, top classes, and all 1000 logits.
    #[arg(long)]
    json: bool,
}

/// The single tensor of a safetensors file, as f32 on `device`.
fn read_input_tensor(path: &Path, device: &Device) -> Result<Tensor, String> {
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
    if t.dtype() != safetensors::Dtype::F32 || t.shape() != [1, 224, 224, 3] {
        return Err(format!(
            "{}: tensor `{name}` is {:?} {:?}; expected F32 [1, 224, 224, 3] (NHWC, preprocessed)",
            path.display(),
            t.dtype(),
            t.shape()
        ));
    }
    let values = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Tensor::from_vec(values, [1, 224, 224, 3], device).map_err(|e| e.to_string())
}

fn run() -> Result<(), String> {
    let args = Args::parse();
    let device = Device::from_name(&args.device).map_err(|e| e.to_string())?;
    let model = backbones::mobilenet_v2(&BackboneOptions::default().include_top(1000), &device)
        .map_err(|e| e.to_string())?;
    let report = load_weights(
        &model,
        &args.weights,
        LoadOptions {
            strict: true,
            ..LoadOptions::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let input = match &args.input_tensor {
        Some(path) => read_input_tensor(path, &device)?,
        None => {
            load_image(&args.image, 224, Preset::Torchvision, &device).map_err(|e| e.to_string())?
        }
    };
    let logits = model.predict(&input).map_err(|e| e.to_string())?;
    let probs = logits
        .softmax()
        .and_then(|p| p.to_vec())
        .map_err(|e| e.to_string())?;
    let labels: Vec<&str> = LABELS.lines().collect();
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    let top: Vec<usize> = order.into_iter().take(args.top).collect();
    if args.json {
        let obj = serde_json::json!({
            "device": device.to_string(),
            "top": top.iter().map(|&i| serde_json::json!({"index": i, "label": labels[i], "prob": probs[i]})).collect::<Vec<_>>(),
            "logits": logits.to_vec().map_err(|e| e.to_string())?,
        });
        println!("{obj}");
    } else {
        let what = args.input_tensor.as_ref().unwrap_or(&args.image);
        println!(
            "{} on {device} ({} weights loaded from {})",
            what.display(),
            report.loaded,
            args.weights.display()
        );
        for &i in &top {
            println!("  {:>6.2}%  {:>4}  {}", probs[i] * 100.0, i, labels[i]);
        }
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
