//! The main job: Flatten vs GlobalAveragePooling2D heads over a frozen ImageNet backbone.
//!
//! With no arguments it trains both heads over the committed ImageNet MobileNetV2 on 3,000
//! Fashion-MNIST images (1,000 more for the test), with the same optimizer, epochs and seed,
//! and prints one table: head, parameters, epochs, training time, validation and test accuracy,
//! then each head's confusion matrix.
//!
//! With `--data DIR` it trains on your own image folder (one subfolder per class, any size,
//! any number of images: the folder is indexed, not loaded, and the backbone's features stay in
//! memory up to `--feature-memory` and go to a scratch file beyond it). `--save FILE` keeps the
//! trained model for `predict --model FILE`; `--backup DIR` lets an interrupted run resume.
//!
//! `cargo run --release --example transfer -- --help` lists every option.

mod common;

use clap::Parser;
use keel::data::{split, ImageOptions, Images, Preset, Samples, Subset};
use keel::layers::{
    backbones, flatten_head, gap_head, load_weights, save_model, summary, with_head,
    BackboneOptions, HeadSpec, Layer, LoadOptions, ModelInfo, Sequential,
};
use keel::train::{
    cacheable_prefix, check_learning_rate, evaluate, extract_features, feature_memory, fit,
    metrics::confusion_matrix, training_memory, update_memory, Adam, FeatureOptions, Features,
    FitConfig, History, Loss, MemoryBudget, Precision, Validation,
};
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
    /// mobilenet_v2 (ImageNet weights committed), or with --weights: efficientnet_lite0,
    /// efficientnet_b0, resnet18, resnet50, mobilenet_v3_large, mobilenet_v3_small,
    /// convnext_tiny, keras_resnet50, keras_mobilenet_v2, mobilenet, vgg16.
    #[arg(long, default_value = "mobilenet_v2")]
    backbone: String,
    /// Backbone weights (safetensors or PyTorch .pth, keel or PyTorch layout).
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
    /// auto, wgpu or cpu (KEEL_DEVICE when not given).
    #[arg(long, env = "KEEL_DEVICE", default_value = "auto")]
    device: String,
    /// Where the training-curve PNG goes.
    #[arg(long, default_value = "transfer.png")]
    plot: PathBuf,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Save each trained model here (with both heads, FILE's name gets -flatten / -gap).
    #[arg(long)]
    save: Option<PathBuf>,
    /// Keep per-epoch training state in this folder and resume from it when it is there.
    #[arg(long)]
    backup: Option<PathBuf>,
    /// Run the frozen backbone on every batch instead of caching its features.
    #[arg(long)]
    no_cache: bool,
    /// MiB of backbone features kept in memory; the rest goes to a scratch file.
    #[arg(long, default_value_t = 1024)]
    feature_memory: u64,
    /// Keep the backbone's features in f16: half the memory and disk (training stays in f32).
    #[arg(long)]
    f16_features: bool,
    /// Keep the frozen backbone's kernels in f16 on a GPU with f16 storage (SHADER_F16): half
    /// their memory and bandwidth, f32 arithmetic. Other devices keep f32 and say so.
    #[arg(long)]
    f16_weights: bool,
    /// Where features beyond --feature-memory go (default: the system's temporary folder).
    #[arg(long)]
    feature_dir: Option<PathBuf>,
    /// MiB of freed CPU buffers kept for reuse by later ops (keel::tensor::cpu_cache).
    #[arg(long, default_value_t = 256)]
    buffer_cache: usize,
    /// Keep every decoded image in memory (as bytes) after its first epoch.
    #[arg(long)]
    cache_images: bool,
    /// Fail on the first image that does not decode (by default it is skipped and reported).
    #[arg(long)]
    strict: bool,
    /// Threads that decode images (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// A second stage unfreezing the backbone's top N layers at lr / 10.
    #[arg(long, default_value_t = 0)]
    fine_tune: usize,
    /// Seed of the head's weights, the split and the shuffles.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// The images: all training images (split into training and validation), and the test set.
struct Data {
    train_all: Images,
    test: Option<Images>,
    /// The fraction of `train_all` held out for validation.
    validation: f32,
    seconds: f64,
}

fn image_options(args: &Args, preset: Preset) -> ImageOptions {
    ImageOptions {
        strict: args.strict,
        cache: args.cache_images,
        progress: true,
        ..ImageOptions::new(args.image_size, preset)
    }
}

fn load_data(args: &Args, preset: Preset) -> Result<Data, String> {
    let start = Instant::now();
    let options = image_options(args, preset);
    let e = |e: keel::data::Error| e.to_string();
    let sub = |dir: &Path, names: &[&str]| names.iter().map(|n| dir.join(n)).find(|p| p.is_dir());
    let (train_all, test, validation) = match &args.data {
        None => {
            let idx = |split| Images::from_idx(DEFAULT_DATA, split, None, &options).map_err(e);
            let test = idx(keel::data::idx::Split::Test)?;
            (idx(keel::data::idx::Split::Train)?, Some(test), 0.1)
        }
        Some(dir) => match (sub(dir, &["train", "Train"]), sub(dir, &["test", "Test"])) {
            (Some(train_dir), Some(test_dir)) => {
                let train_all = Images::from_folder(&train_dir, &options).map_err(e)?;
                let test = Images::from_folder(&test_dir, &options).map_err(e)?;
                if test.classes() != train_all.classes() {
                    return Err(class_difference(&train_dir, &train_all, &test_dir, &test));
                }
                (train_all, Some(test), 0.1)
            }
            _ => (Images::from_folder(dir, &options).map_err(e)?, None, 0.2),
        },
    };
    Ok(Data {
        train_all,
        test,
        validation,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Which class folders one of two sets has and the other lacks.
fn class_difference(a_dir: &Path, a: &Images, b_dir: &Path, b: &Images) -> String {
    let only = |x: &Images, y: &Images| -> String {
        let names: Vec<&str> = x
            .classes()
            .iter()
            .filter(|c| !y.classes().contains(c))
            .map(String::as_str)
            .collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    };
    format!(
        "{} and {} have different class folders: only in the first: {}; only in the second: {}",
        a_dir.display(),
        b_dir.display(),
        only(a, b),
        only(b, a)
    )
}

/// The frozen backbone with its pretrained weights.
fn backbone(args: &Args, device: &Device) -> Result<Sequential, String> {
    let options = BackboneOptions::default().input(args.image_size, args.image_size);
    let model = backbones::by_name(&args.backbone, &options, device).map_err(|e| e.to_string())?;
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

/// The head called `head` (flatten or gap) for `classes` classes.
fn head_spec(args: &Args, head: &str, classes: usize) -> HeadSpec {
    match head {
        "flatten" => flatten_head(classes),
        _ => gap_head(classes),
    }
    .hidden(&args.hidden)
}

/// `backbone` with one head, as a model, once the memory its training takes is known to be
/// there (the head's weights, their gradients and Adam's state, counted before they exist).
fn model_with_head(
    args: &Args,
    backbone: Sequential,
    head: &str,
    classes: usize,
    device: &Device,
) -> Result<Sequential, String> {
    let spec = head_spec(args, head, classes);
    let sizes = spec.weight_sizes(backbone.output_shape());
    update_memory(&sizes, &Adam::new(args.lr))
        .add("head weights", sizes.iter().sum::<u64>() * 4)
        .check(&format!("training the {head} head"))
        .map_err(|e| e.to_string())?;
    let model = with_head(backbone, &spec, device, args.seed).map_err(|e| e.to_string())?;
    if args.f16_weights {
        let done = model.keep_frozen_weights_f16().map_err(|e| e.to_string())?;
        if done.kernels == 0 {
            println!("--f16-weights: {device} has no f16 storage; the kernels stay f32");
        } else {
            println!(
                "{head} model: {} frozen kernels kept in f16 ({:.1} MB less)",
                done.kernels,
                done.bytes_saved as f64 / 1e6
            );
        }
    }
    Ok(model)
}

/// The training, validation and test sets one stage trains and evaluates on: images, or the
/// features of the frozen backbone computed once for every head.
#[derive(Clone, Copy)]
struct Sets<'a> {
    train: &'a dyn Samples,
    val: &'a dyn Samples,
    test: Option<&'a dyn Samples>,
}

/// Backbone features of the three sets.
struct CachedSets {
    train: Features,
    val: Features,
    test: Option<Features>,
    seconds: f64,
}

impl CachedSets {
    fn sets(&self) -> Sets<'_> {
        Sets {
            train: &self.train,
            val: &self.val,
            test: self.test.as_ref().map(|t| t as &dyn Samples),
        }
    }
}

/// Images per batch of the backbone's pass: at 224×224, MobileNetV2's largest activation is
/// 77 MB at 16, and larger batches run no faster on the CPU.
const FEATURE_BATCH: usize = 16;

/// Where features are kept: one memory budget for every feature set of the run (the shared
/// backbone features and any further ones `fit` caches).
fn feature_options(args: &Args) -> FeatureOptions {
    FeatureOptions {
        budget: MemoryBudget::new(args.feature_memory << 20),
        dir: args.feature_dir.clone().unwrap_or_else(std::env::temp_dir),
        progress: true,
        precision: if args.f16_features {
            Precision::F16
        } else {
            Precision::F32
        },
    }
}

/// Runs the first `layers` of `model` once over each set.
fn cache(
    model: &Sequential,
    layers: usize,
    images: &Sets<'_>,
    args: &Args,
    options: &FeatureOptions,
    device: &Device,
) -> Result<CachedSets, String> {
    let start = Instant::now();
    let prefix: Vec<&dyn Layer> = model.layers()[..layers]
        .iter()
        .map(|l| l.as_ref())
        .collect();
    let batches = keel::data::BatchOptions {
        workers: workers(args),
        ..keel::data::BatchOptions::new(FEATURE_BATCH)
    };
    let run = |set: &dyn Samples, what: &str| {
        extract_features(&prefix, set, options, &batches, device, what).map_err(|e| e.to_string())
    };
    let cached = CachedSets {
        train: run(images.train, "training images")?,
        val: run(images.val, "validation images")?,
        test: images.test.map(|t| run(t, "test images")).transpose()?,
        seconds: start.elapsed().as_secs_f64(),
    };
    let all = [Some(&cached.train), Some(&cached.val), cached.test.as_ref()];
    let bytes: u64 = all.iter().flatten().map(|f| f.bytes()).sum();
    let on_disk = all.iter().flatten().any(|f| !f.in_memory());
    println!(
        "features: {} computed once for every head in {:.1}s ({:.0} MB, {})",
        prefix
            .iter()
            .map(|l| l.name())
            .collect::<Vec<_>>()
            .join(" → "),
        cached.seconds,
        bytes as f64 / 1e6,
        if on_disk {
            "on disk beyond the memory budget"
        } else {
            "in memory"
        }
    );
    Ok(cached)
}

fn workers(args: &Args) -> usize {
    args.workers.unwrap_or_else(keel::data::default_workers)
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
    /// Rows: true class, columns: predicted; on the test set, else the validation set.
    confusion: Vec<Vec<usize>>,
    confusion_of: &'static str,
    saved: Option<PathBuf>,
    history: History,
}

/// Where the model of `head` is saved, when it is.
fn save_path(args: &Args, head: &str, heads: usize) -> Option<PathBuf> {
    let path = args.save.as_ref()?;
    if heads == 1 {
        return Some(path.clone());
    }
    let stem = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{head}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{head}"),
    };
    Some(path.with_file_name(name))
}

#[allow(clippy::too_many_arguments)]
fn train_head(
    args: &Args,
    head: &'static str,
    model: Sequential,
    images: &Sets<'_>,
    cached: Option<&CachedSets>,
    features: &FeatureOptions,
    heads: usize,
    device: &Device,
) -> Result<Outcome, String> {
    let e = |e: keel::train::Error| e.to_string();
    let s = summary(&model);
    println!(
        "\n{head} head: {} trainable, {} non-trainable parameters",
        s.trainable, s.non_trainable
    );
    let loss = Loss::SparseCategoricalCrossentropy { from_logits: true };
    let backup = |stage: &str| {
        args.backup
            .as_ref()
            .map(|d| d.join(format!("{head}{stage}.ckpt")))
    };
    let first = cached.map_or(*images, CachedSets::sets);
    let config = FitConfig {
        epochs: args.epochs,
        batch_size: args.batch,
        workers: workers(args),
        seed: args.seed,
        validation: Validation::Data(first.val),
        cache_features: !args.no_cache,
        features: features.clone(),
        backup: backup(""),
        ..FitConfig::default()
    };
    let start = Instant::now();
    let mut history = fit(
        &model,
        &mut Adam::new(args.lr),
        &loss,
        first.train,
        &config,
        device,
    )
    .map_err(e)?;
    let mut last = first;
    if args.fine_tune > 0 {
        // Layers about to be trained need f32 kernels.
        model.f32_weights().map_err(|e| e.to_string())?;
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
        // The backbone changes now: train and evaluate on the images.
        last = *images;
        let config = FitConfig {
            validation: Validation::Data(last.val),
            backup: backup("-fine-tune"),
            ..config
        };
        let second = fit(
            &model,
            &mut Adam::new(args.lr / 10.0),
            &loss,
            last.train,
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
    let classes = images.train.classes().len();
    let test = last
        .test
        .map(|t| evaluate(&model, &loss, t, 64, device))
        .transpose()
        .map_err(e)?;
    let (confusion, confusion_of) = match &test {
        Some(t) => (confusion_matrix(&t.outputs, &t.labels, classes), "test"),
        None => {
            let v = evaluate(&model, &loss, last.val, 64, device).map_err(e)?;
            (
                confusion_matrix(&v.outputs, &v.labels, classes),
                "validation",
            )
        }
    };
    let saved = save_path(args, head, heads);
    if let Some(path) = &saved {
        let info = ModelInfo {
            classes: images.train.classes().to_vec(),
            preprocessing: Some(common::backbone_preset(&args.backbone).name().to_string()),
        };
        save_model(&model, &info, path).map_err(|e| e.to_string())?;
    }
    let s = summary(&model);
    Ok(Outcome {
        head,
        trainable: s.trainable,
        non_trainable: s.non_trainable,
        epochs: history.epochs.len(),
        seconds,
        val_accuracy,
        test_accuracy: test.map(|t| t.accuracy),
        confusion,
        confusion_of,
        saved,
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

/// The confusion matrix as a table: rows are true classes (named), columns predicted ones (by
/// index).
fn print_confusion(o: &Outcome, classes: &[String]) {
    println!(
        "\n{} head, {} images: rows are the true class, columns the predicted one",
        o.head, o.confusion_of
    );
    let width = classes.iter().map(String::len).max().unwrap_or(0).max(5);
    let mut header = format!("{:>width$}", "", width = width + 4);
    for j in 0..classes.len() {
        header += &format!(" {j:>5}");
    }
    println!("{header}");
    for (i, (row, name)) in o.confusion.iter().zip(classes).enumerate() {
        let mut line = format!("{i:>2}  {name:>width$}");
        for count in row {
            line += &format!(" {count:>5}");
        }
        println!("{line}");
    }
}

/// Fails now, before any work, on settings that cannot train: no epochs, empty batches, a
/// learning rate that is not a finite positive number, an empty hidden layer, no workers.
fn check_settings(args: &Args) -> Result<(), String> {
    if args.epochs == 0 {
        return Err("--epochs 0: train for at least 1 epoch".into());
    }
    if args.batch == 0 {
        return Err("--batch 0: a batch holds at least 1 image".into());
    }
    if args.workers == Some(0) {
        return Err("--workers 0: at least 1 thread must decode images".into());
    }
    check_learning_rate(args.lr).map_err(|e| format!("--lr: {e}"))?;
    // The number of classes comes from the data, which is checked once it is indexed.
    head_spec(args, "gap", 2)
        .check()
        .map_err(|e| format!("--hidden: {e}"))
}

/// Fails now, before any image is decoded, on data that cannot train a classifier: fewer
/// than 2 classes, or too few images for both a training and a validation set.
fn check_data(
    args: &Args,
    data: &Data,
    train: &Subset<'_>,
    val: &Subset<'_>,
) -> Result<(), String> {
    let place = args
        .data
        .as_ref()
        .map_or_else(|| "the data".to_string(), |d| d.display().to_string());
    let classes = data.train_all.classes();
    if classes.len() < 2 {
        return Err(format!(
            "{place} has {} class folder{} ({}): a classifier needs at least 2, one subfolder \
             of images per class",
            classes.len(),
            if classes.len() == 1 { "" } else { "s" },
            if classes.is_empty() {
                "none".to_string()
            } else {
                classes.join(", ")
            }
        ));
    }
    if train.is_empty() || val.is_empty() {
        return Err(format!(
            "{place} has {} training images; holding out {:.0}% of them for validation leaves \
             {} for validation and {} for training: add images (with a train/ and test/ split, \
             10% of train/ is held out)",
            data.train_all.len(),
            data.validation * 100.0,
            val.len(),
            train.len()
        ));
    }
    Ok(())
}

/// Fails now, before the features are computed, when training a head would take more memory
/// than there is: its gradients, Adam's state, activations and the cached features.
fn check_memory(
    args: &Args,
    heads: &[&str],
    models: &[Sequential],
    cached_layers: usize,
    samples: usize,
) -> Result<(), String> {
    let features = feature_memory(&models[0], cached_layers, samples, &feature_options(args));
    for (head, model) in heads.iter().zip(models) {
        training_memory(
            model,
            &Adam::new(args.lr),
            args.batch,
            cached_layers,
            features,
        )
        .check(&format!("training the {head} head"))
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Fails now, not after training, when an output cannot be written: a missing folder, or a
/// plot that is not a PNG. Creates the backup folder.
fn check_outputs(args: &Args) -> Result<(), String> {
    let outputs = [
        Some((&args.plot, "--plot")),
        args.json.as_ref().map(|p| (p, "--json")),
        args.save.as_ref().map(|p| (p, "--save")),
    ];
    for (path, flag) in outputs.into_iter().flatten() {
        common::check_output_folder(path, flag)?;
    }
    if !args
        .plot
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
    {
        return Err(format!(
            "--plot {}: the chart is a PNG; name it .png",
            args.plot.display()
        ));
    }
    if let Some(dir) = &args.backup {
        std::fs::create_dir_all(dir).map_err(|e| format!("--backup {}: {e}", dir.display()))?;
    }
    Ok(())
}

fn run() -> Result<(), String> {
    let args = Args::parse();
    let heads: Vec<&'static str> = match args.head.as_str() {
        "both" => vec!["flatten", "gap"],
        "flatten" => vec!["flatten"],
        "gap" => vec!["gap"],
        other => return Err(format!("unknown head `{other}` (flatten, gap, both)")),
    };
    check_settings(&args)?;
    check_outputs(&args)?;
    keel::tensor::cpu_cache::set_limit(args.buffer_cache << 20);
    let device = Device::from_name(&args.device).map_err(|e| e.to_string())?;
    println!("device: {device}");
    // The backbone and its weights before the data: a bad weights file or input size fails in
    // seconds, whatever the size of the data.
    let mut first_backbone = Some(backbone(&args, &device)?);
    let data = load_data(&args, common::backbone_preset(&args.backbone))?;
    let (train, val): (Subset<'_>, Subset<'_>) = split(&data.train_all, data.validation, args.seed);
    check_data(&args, &data, &train, &val)?;
    let classes = data.train_all.classes().to_vec();
    println!(
        "data: {} training, {} validation, {} test images of {} classes at {}×{} (indexed in {:.1}s)",
        train.len(),
        val.len(),
        data.test.as_ref().map_or(0, Images::len),
        classes.len(),
        args.image_size,
        args.image_size,
        data.seconds
    );
    println!("classes: {}", classes.join(", "));
    let ignored: Vec<&Path> = std::iter::once(&data.train_all)
        .chain(&data.test)
        .flat_map(|d| d.ignored().iter().map(PathBuf::as_path))
        .collect();
    if !ignored.is_empty() {
        println!(
            "ignored {} files that are not images, e.g. {}",
            ignored.len(),
            ignored[0].display()
        );
    }
    let images = Sets {
        train: &train,
        val: &val,
        test: data.test.as_ref().map(|t| t as &dyn Samples),
    };
    let mut models: Vec<Sequential> = heads
        .iter()
        .map(|h| {
            let backbone = match first_backbone.take() {
                Some(b) => b,
                None => backbone(&args, &device)?,
            };
            model_with_head(&args, backbone, h, classes.len(), &device)
        })
        .collect::<Result<_, _>>()?;
    // Heads that share the backbone share its features: the backbone alone with both heads,
    // with one head everything up to its first trained layer.
    let cached_layers = match (args.no_cache, heads.len()) {
        (true, _) => 0,
        (false, 1) => cacheable_prefix(&models[0]),
        (false, _) => 1,
    };
    let samples = train.len() + val.len() + data.test.as_ref().map_or(0, Images::len);
    check_memory(&args, &heads, &models, cached_layers, samples)?;
    let features = feature_options(&args);
    let cached = match cached_layers {
        0 => None,
        layers => Some(cache(
            &models[0], layers, &images, &args, &features, &device,
        )?),
    };
    let mut outcomes = Vec::new();
    for (head, model) in heads.iter().zip(models.drain(..)) {
        outcomes.push(train_head(
            &args,
            head,
            model,
            &images,
            cached.as_ref(),
            &features,
            heads.len(),
            &device,
        )?);
    }
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
    for o in &outcomes {
        print_confusion(o, &classes);
    }
    let skipped: Vec<(String, String)> = std::iter::once(&data.train_all)
        .chain(&data.test)
        .flat_map(Images::skipped)
        .collect();
    if !skipped.is_empty() {
        println!(
            "\nskipped {} images that did not decode (each reported above)",
            skipped.len()
        );
    }
    for o in outcomes
        .iter()
        .filter_map(|o| o.saved.as_ref().map(|p| (o.head, p)))
    {
        println!(
            "{} model saved: {} (use it: predict --model {})",
            o.0,
            o.1.display(),
            o.1.display()
        );
    }
    if let Some(path) = &args.json {
        let obj = serde_json::json!({
            "device": device.to_string(),
            "backbone": args.backbone,
            "image_size": args.image_size,
            "classes": classes,
            "data_seconds": data.seconds,
            "feature_seconds": cached.as_ref().map(|c| c.seconds),
            "peak_rss_bytes": common::peak_rss_bytes(),
            "results": outcomes.iter().map(|o| serde_json::json!({
                "head": o.head,
                "trainable_params": o.trainable,
                "non_trainable_params": o.non_trainable,
                "epochs": o.epochs,
                "train_seconds": o.seconds,
                "val_accuracy": o.val_accuracy,
                "test_accuracy": o.test_accuracy,
                "confusion_matrix": o.confusion,
                "confusion_matrix_of": o.confusion_of,
                "saved_model": o.saved.as_ref().map(|p| p.display().to_string()),
            })).collect::<Vec<_>>(),
            "skipped_files": skipped.iter().map(|(f, why)| serde_json::json!({"file": f, "reason": why})).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&obj).map_err(|e| e.to_string())?;
        keel::layers::write_atomic(path, text.as_bytes()).map_err(|e| e.to_string())?;
        println!("results: {}", path.display());
    }
    plot(&args.plot, &outcomes)?;
    println!("training curves: {}", args.plot.display());
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
