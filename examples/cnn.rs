//! A CNN trained from scratch on Fashion-MNIST — the second part of the Keras question's
//! pipeline: Conv2D → ReLU → MaxPooling2D → Conv2D → ReLU → MaxPooling2D → Flatten → Dense →
//! Dense(10).
//!
//! `cargo run --release --example cnn -- [--data DIR] [--epochs N] [--batch N] [--lr F]
//!  [--device auto|wgpu|cpu] [--limit N] [--json FILE] [--seed N]`
//!
//! The data is Debian's `dataset-fashion-mnist` (`apt-get install -y dataset-fashion-mnist`), or
//! any folder with the four idx files (plain or gzip).

mod common;

use clap::Parser;
use keel::data::idx::{Split, FASHION_MNIST_DIR};
use keel::data::{ImageOptions, Images, Preset, Samples};
use keel::layers::layers::{conv2d, dense, flatten, max_pool2d, Activation};
use keel::layers::{sequential, summary};
use keel::train::{evaluate, fit, Adam, FitConfig, Loss};
use keel::Device;
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "Trains a small CNN from scratch on Fashion-MNIST")]
struct Args {
    /// Folder with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz].
    #[arg(long, default_value = FASHION_MNIST_DIR)]
    data: PathBuf,
    /// Training epochs.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// auto, wgpu or cpu (KEEL_DEVICE when not given).
    #[arg(long, env = "KEEL_DEVICE", default_value = "auto")]
    device: String,
    /// Use only the first N training images (quick runs).
    #[arg(long)]
    limit: Option<usize>,
    /// Write {"device", "epochs", "seconds_per_epoch", "test_accuracy"} here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Seed of the weights and the shuffles.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn run() -> Result<(), String> {
    let args = Args::parse();
    if let Some(path) = &args.json {
        common::check_output_folder(path, "--json")?;
    }
    if !args.data.join("train-images-idx3-ubyte.gz").exists()
        && !args.data.join("train-images-idx3-ubyte").exists()
    {
        return Err(format!(
            "no Fashion-MNIST in {}: install it with `apt-get install -y dataset-fashion-mnist` or pass --data DIR (a folder with the idx files)",
            args.data.display()
        ));
    }
    let device = Device::from_name(&args.device).map_err(|e| e.to_string())?;
    let e = |e: keel::data::Error| e.to_string();
    let grey = ImageOptions {
        channels: 1,
        ..ImageOptions::new(28, Preset::Unit)
    };
    let train = Images::from_idx(&args.data, Split::Train, args.limit, &grey).map_err(e)?;
    let test = Images::from_idx(&args.data, Split::Test, None, &grey).map_err(e)?;
    println!(
        "device: {device}\ndata: {} training and {} test images from {}",
        train.len(),
        test.len(),
        args.data.display()
    );
    let model = sequential("cnn")
        .add(conv2d(32, 3).activation(Activation::Relu))
        .add(max_pool2d(2))
        .add(conv2d(64, 3).activation(Activation::Relu))
        .add(max_pool2d(2))
        .add(flatten())
        .add(dense(128).activation(Activation::Relu))
        .add(dense(10))
        .build(&[28, 28, 1], &device, args.seed)
        .map_err(|e| e.to_string())?;
    println!("{}", summary(&model));
    let loss = Loss::SparseCategoricalCrossentropy { from_logits: true };
    let config = FitConfig {
        epochs: args.epochs,
        batch_size: args.batch,
        seed: args.seed,
        ..FitConfig::default()
    };
    let history = fit(
        &model,
        &mut Adam::new(args.lr),
        &loss,
        &train,
        &config,
        &device,
    )
    .map_err(|e| e.to_string())?;
    let seconds_per_epoch =
        history.epochs.iter().map(|l| l.seconds).sum::<f64>() / history.epochs.len().max(1) as f64;
    let result = evaluate(&model, &loss, &test, 256, &device).map_err(|e| e.to_string())?;
    println!(
        "{seconds_per_epoch:.1} s per epoch on {device}; test accuracy {:.4} (loss {:.4})",
        result.accuracy, result.loss
    );
    if let Some(path) = &args.json {
        let obj = serde_json::json!({
            "device": device.to_string(),
            "epochs": history.epochs.len(),
            "seconds_per_epoch": seconds_per_epoch,
            "test_accuracy": result.accuracy,
        });
        let text = serde_json::to_string_pretty(&obj).map_err(|e| e.to_string())?;
        keel::layers::write_atomic(path, text.as_bytes()).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
