//! The main job: Flatten vs GlobalAveragePooling2D heads over a frozen ImageNet backbone.
//!
//! With no arguments it trains both heads over the committed ImageNet MobileNetV2 on 3,000
//! Fashion-MNIST images (1,000 more for the test), with the same optimizer, epochs and seed,
//! and prints one table: head, parameters, epochs, training time, validation and test accuracy.
//!
//! `cargo run --release --example transfer -- [--data DIR] [--backbone mobilenet_v2|mobilenet|vgg16]
//!  [--weights FILE] [--head flatten|gap|both] [--hidden 1024,1024,512] [--epochs N] [--batch N]
//!  [--image-size N] [--lr F] [--device auto|wgpu|cpu] [--plot FILE] [--json FILE] [--no-cache]
//!  [--fine-tune N] [--seed N]`

mod common;

use clap::Parser;
use keel::data::{idx, load_image_folder, Dataset, FolderOptions, Preset};
use keel::layers::{
    backbones, flatten_head, gap_head, load_weights, summary, with_head, BackboneOptions, Layer,
    LoadOptions, Sequential,
};
use keel::train::{evaluate, fit, Adam, FitConfig, History, Loss, Validation};
use keel::Device;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The committed defaults, found from wherever the example is run.
const DEFAULT_DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/fashion-mnist-small");
const DEFAULT_WEIGHTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/mobilenet_v2_imagenet_f16.safetensors"
);

#[derive(Parser)]
#[command(about = "Compares a Flatten head and a GAP head over a frozen pretrained backbone")]
struct Args {
    /// An image folder (one subfolder per class; with train/ and test/ subfolders, those are
    /// used). Default: the committed Fashion-MNIST subset.
    #[arg(long)]
    data: Option<PathBuf>,
    /// mobilenet_v2 (ImageNet weights committed), mobilenet or vgg16 (pass --weights).
    #[arg(long, default_value = "mobilenet_v2")]
    backbone: String,
    /// Backbone weights (safetensors, keel or PyTorch layout).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// flatten, gap or both.
    #[arg(long, default_value = "both")]
    head: String,
    /// Hidden Dense sizes of the head, comma-separated.
    #[arg(long, value_delimiter = ',')]
    hidden: Vec<usize>,
    /// Training epochs.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Input height and width.
    #[arg(long, default_value_t = 96)]
    image_size: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// auto, wgpu or cpu.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Where the training-curve PNG goes.
    #[arg(long, default_value = "transfer.png")]
    plot: PathBuf,
    /// Write the results table as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Run the frozen backbone on every batch instead of caching its features.
    #[arg(long)]
    no_cache: bool,
    /// A second stage unfreezing the backbone's top N layers at lr / 10.
    #[arg(long, default_value_t = 0)]
    fine_tune: usize,
    /// Seed of the head's weights, the split and the shuffles.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// Training, validation and (optional) test sets, plus files that did not decode.
struct Data {
    train: Dataset,
    val: Dataset,
    test: Option<Dataset>,
    skipped: Vec<PathBuf>,
}

fn load_data(args: &Args, preset: Preset) -> Result<Data, String> {
    let size = args.image_size;
    let e = |e: keel::data::Error| e.to_string();
    let Some(dir) = &args.data else {
        let train =
            idx::mnist_rgb(DEFAULT_DATA, idx::Split::Train, None, size, preset).map_err(e)?;
        let test = idx::mnist_rgb(DEFAULT_DATA, idx::Split::Test, None, size, preset).map_err(e)?;
        let (train, val) = train.split(0.1, args.seed);
        return Ok(Data {
            train,
            val,
            test: Some(test),
            skipped: Vec::new(),
        });
    };
    let options = FolderOptions {
        size: (size, size),
        preset,
        strict: false,
    };
    let sub = |names: &[&str]| names.iter().map(|n| dir.join(n)).find(|p| p.is_dir());
    match (sub(&["train", "Train"]), sub(&["test", "Test"])) {
        (Some(train_dir), Some(test_dir)) => {
            let train = load_image_folder(&train_dir, &options).map_err(e)?;
            let test = load_image_folder(&test_dir, &options).map_err(e)?;
            if test.dataset.classes != train.dataset.classes {
                return Err(format!(
                    "{} and {} have different class folders",
                    train_dir.display(),
                    test_dir.display()
                ));
            }
            let (t, v) = train.dataset.split(0.1, args.seed);
            let skipped = train.skipped.into_iter().chain(test.skipped).collect();
            Ok(Data {
                train: t,
                val: v,
                test: Some(test.dataset),
                skipped,
            })
        }
        _ => {
            let all = load_image_folder(dir, &options).map_err(e)?;
            let (t, v) = all.dataset.split(0.2, args.seed);
            Ok(Data {
                train: t,
                val: v,
                test: None,
                skipped: all.skipped,
            })
        }
    }
}

/// The frozen backbone with its pretrained weights, and the preprocessing it expects.
fn backbone(args: &Args, device: &Device) -> Result<Sequential, String> {
    let options = BackboneOptions::default().input(args.image_size, args.image_size);
    let model = match args.backbone.as_str() {
        "mobilenet_v2" => backbones::mobilenet_v2(&options, device),
        "mobilenet" => backbones::mobilenet(&options, device),
        "vgg16" => backbones::vgg16(&options, device),
        other => {
            return Err(format!(
                "unknown backbone `{other}` (mobilenet_v2, mobilenet, vgg16)"
            ))
        }
    }
    .map_err(|e| e.to_string())?;
    let weights = match (&args.weights, args.backbone.as_str()) {
        (Some(w), _) => Some(w.clone()),
        (None, "mobilenet_v2") => Some(PathBuf::from(DEFAULT_WEIGHTS)),
        (None, other) => {
            eprintln!(
                "warning: no weights for {other}; its backbone is random (pass --weights FILE)"
            );
            None
        }
    };
    if let Some(w) = weights {
        let report = load_weights(&model, &w, LoadOptions::default()).map_err(|e| e.to_string())?;
        if !report.missing.is_empty() {
            return Err(format!(
                "{}: no tensor for {} of the backbone's weights, e.g. {}",
                w.display(),
                report.missing.len(),
                report.missing[0]
            ));
        }
    }
    model.set_trainable(false);
    Ok(model)
}

fn preset(backbone: &str) -> Preset {
    match backbone {
        "vgg16" => Preset::Caffe,
        "mobilenet" => Preset::Tf,
        _ => Preset::Torchvision,
    }
}

/// One head's results.
struct Outcome {
    head: &'static str,
    trainable: usize,
    non_trainable: usize,
    epochs: usize,
    seconds: f64,
    val_accuracy: f32,
    test_accuracy: Option<f32>,
    history: History,
}

fn train_head(
    args: &Args,
    head_name: &'static str,
    data: &Data,
    device: &Device,
) -> Result<Outcome, String> {
    let e = |e: keel::train::Error| e.to_string();
    let classes = data.train.classes.len();
    let head = match head_name {
        "flatten" => flatten_head(classes),
        _ => gap_head(classes),
    }
    .hidden(&args.hidden);
    let model =
        with_head(backbone(args, device)?, &head, device, args.seed).map_err(|e| e.to_string())?;
    let s = summary(&model);
    println!(
        "\n{head_name} head: {} trainable, {} non-trainable parameters",
        s.trainable, s.non_trainable
    );
    let loss = Loss::SparseCategoricalCrossentropy { from_logits: true };
    let config = FitConfig {
        epochs: args.epochs,
        batch_size: args.batch,
        seed: args.seed,
        validation: Validation::Data(data.val.clone()),
        cache_features: !args.no_cache,
        ..FitConfig::default()
    };
    let start = Instant::now();
    let mut history = fit(
        &model,
        &mut Adam::new(args.lr),
        &loss,
        &data.train,
        &config,
        device,
    )
    .map_err(e)?;
    if history.cached_layers > 0 {
        println!(
            "(backbone features cached in {:.1}s)",
            history.cache_seconds
        );
    }
    if args.fine_tune > 0 {
        let backbone = &model.layers()[0];
        let children = backbone.children();
        backbone.set_trainable(true);
        for layer in &children[..children.len().saturating_sub(args.fine_tune)] {
            layer.set_trainable(false);
        }
        println!(
            "fine-tuning the top {} backbone layers at lr {:.1e}",
            args.fine_tune.min(children.len()),
            args.lr / 10.0
        );
        let second = fit(
            &model,
            &mut Adam::new(args.lr / 10.0),
            &loss,
            &data.train,
            &config,
            device,
        )
        .map_err(e)?;
        history.epochs.extend(second.epochs);
    }
    let seconds = start.elapsed().as_secs_f64();
    let val_accuracy = history
        .epochs
        .last()
        .and_then(|l| l.val_accuracy)
        .unwrap_or(0.0);
    let test_accuracy = data
        .test
        .as_ref()
        .map(|t| evaluate(&model, &loss, t, 64, device).map(|ev| ev.accuracy))
        .transpose()
        .map_err(e)?;
    let s = summary(&model);
    Ok(Outcome {
        head: head_name,
        trainable: s.trainable,
        non_trainable: s.non_trainable,
        epochs: history.epochs.len(),
        seconds,
        val_accuracy,
        test_accuracy,
        history,
    })
}

/// DejaVu Sans (Bitstream Vera licence, assets/DejaVuSans.LICENSE), so that the chart's text
/// renders without any system font.
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

fn plot(path: &Path, outcomes: &[Outcome]) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| e(&"the embedded font does not load"))?;
    let root = BitMapBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let epochs = outcomes
        .iter()
        .map(|o| o.history.epochs.len())
        .max()
        .unwrap_or(1)
        .max(2);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Flatten vs GlobalAveragePooling2D head: accuracy per epoch",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(1f32..epochs as f32, 0f32..1f32)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("accuracy")
        .draw()
        .map_err(|x| e(&x))?;
    let colours = [RED, BLUE];
    for (o, colour) in outcomes.iter().zip(colours) {
        let series = |f: fn(&keel::train::EpochLog) -> Option<f32>| -> Vec<(f32, f32)> {
            o.history
                .epochs
                .iter()
                .filter_map(|l| f(l).map(|v| (l.epoch as f32, v)))
                .collect()
        };
        let train = series(|l| Some(l.accuracy));
        let val = series(|l| l.val_accuracy);
        chart
            .draw_series(LineSeries::new(train, colour.stroke_width(1)))
            .map_err(|x| e(&x))?
            .label(format!("{} train", o.head))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(1))
            });
        chart
            .draw_series(LineSeries::new(val, colour.stroke_width(3)))
            .map_err(|x| e(&x))?
            .label(format!("{} validation", o.head))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

fn run() -> Result<(), String> {
    let args = Args::parse();
    let device = Device::from_name(&args.device).map_err(|e| e.to_string())?;
    let heads: Vec<&'static str> = match args.head.as_str() {
        "both" => vec!["flatten", "gap"],
        "flatten" => vec!["flatten"],
        "gap" => vec!["gap"],
        other => return Err(format!("unknown head `{other}` (flatten, gap, both)")),
    };
    println!("device: {device}");
    let start = Instant::now();
    let data = load_data(&args, preset(&args.backbone))?;
    println!(
        "data: {} training, {} validation, {} test images of {} classes at {}×{} ({:.1}s to load)",
        data.train.len(),
        data.val.len(),
        data.test.as_ref().map_or(0, Dataset::len),
        data.train.classes.len(),
        args.image_size,
        args.image_size,
        start.elapsed().as_secs_f64()
    );
    if !data.skipped.is_empty() {
        println!("skipped {} files that did not decode", data.skipped.len());
    }
    let outcomes = heads
        .iter()
        .map(|h| train_head(&args, h, &data, &device))
        .collect::<Result<Vec<_>, _>>()?;
    println!(
        "\n{:<8} {:>16} {:>20} {:>7} {:>13} {:>13} {:>13}",
        "head",
        "trainable params",
        "non-trainable params",
        "epochs",
        "train seconds",
        "val accuracy",
        "test accuracy"
    );
    for o in &outcomes {
        let test = o
            .test_accuracy
            .map_or("-".to_string(), |a| format!("{a:.4}"));
        println!(
            "{:<8} {:>16} {:>20} {:>7} {:>13.1} {:>13.4} {:>13}",
            o.head, o.trainable, o.non_trainable, o.epochs, o.seconds, o.val_accuracy, test
        );
    }
    plot(&args.plot, &outcomes)?;
    println!("training curves: {}", args.plot.display());
    if let Some(path) = &args.json {
        let obj = serde_json::json!({
            "device": device.to_string(),
            "backbone": args.backbone,
            "image_size": args.image_size,
            "results": outcomes.iter().map(|o| serde_json::json!({
                "head": o.head,
                "trainable_params": o.trainable,
                "non_trainable_params": o.non_trainable,
                "epochs": o.epochs,
                "train_seconds": o.seconds,
                "val_accuracy": o.val_accuracy,
                "test_accuracy": o.test_accuracy,
            })).collect::<Vec<_>>(),
            "skipped_files": data.skipped.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&obj).map_err(|e| e.to_string())?;
        common::write_atomic(path, text.as_bytes())?;
        println!("results: {}", path.display());
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
