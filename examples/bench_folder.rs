//! The main job on image folders of growing size: peak memory and wall time of
//! `transfer --data FOLDER --head both --epochs 1 --image-size 224` on synthetic JPEG folders,
//! and the decoding pipeline's throughput alone.
//!
//! `cargo run --release --example bench_folder -- [--sizes 2000,8000,32000] [--dir DIR]
//!  [--json FILE] [-- TRANSFER ARGS…]` makes each folder once (256×256 JPEGs, three classes
//! told apart by colour and stripes, under DIR/n<SIZE>) and runs the `transfer` example beside
//! this one on it, one size after another, printing a table (and `--json` rows).
//!
//! `cargo run --release --example bench_folder -- --decode DIR [--workers N]` reads every
//! image of DIR through keel's pipeline (decode, resize to 224×224, torchvision preset, batches
//! of 32 on N worker threads) and prints images per second; `tools/bench_decode_pytorch.py DIR`
//! is the same with PyTorch's DataLoader.

mod common;

use clap::Parser;
use keel::data::{for_each_batch, Augment, BatchOptions, ImageOptions, Images, Preset, Samples};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Peak memory and time of the main job on image folders of growing size")]
struct Args {
    /// Numbers of images, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [2000, 8000, 32000])]
    sizes: Vec<usize>,
    /// Where the folders are made (default: the system's temporary folder).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Write the rows as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Only time the decoding pipeline over this folder.
    #[arg(long)]
    decode: Option<PathBuf>,
    /// Decoding threads for --decode (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// More arguments for `transfer`.
    #[arg(last = true)]
    transfer: Vec<String>,
}

/// Image `i` of class `class`: a colour per class, stripes of a class's frequency, noise.
fn synthetic(class: usize, i: usize) -> image::RgbImage {
    let mut state = (class as u64) << 32 | i as u64;
    let mut noise = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 58) as i32 - 32
    };
    let base = [[200, 60, 60], [60, 180, 60], [60, 80, 200]][class % 3];
    let period = 6 + 5 * (class % 3) as u32;
    let shift = (i % 17) as u32;
    image::RgbImage::from_fn(256, 256, |x, y| {
        let stripe = if ((x + y + shift) / period).is_multiple_of(2) {
            40
        } else {
            -40
        };
        image::Rgb(base.map(|c: i32| (c + stripe + noise()).clamp(0, 255) as u8))
    })
}

/// Makes `dir` with `n` images in three classes, unless a finished one is there.
fn make_folder(dir: &Path, n: usize) -> Result<(), String> {
    let done = dir.join(".complete");
    if done.exists() {
        return Ok(());
    }
    let e = |e: &dyn std::fmt::Display| format!("{}: {e}", dir.display());
    let start = Instant::now();
    (0..n)
        .into_par_iter()
        .try_for_each(|i| -> Result<(), String> {
            let class = i % 3;
            let folder = dir.join(format!("class{class}"));
            std::fs::create_dir_all(&folder).map_err(|x| e(&x))?;
            let mut bytes = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
                .encode_image(&synthetic(class, i))
                .map_err(|x| e(&x))?;
            std::fs::write(folder.join(format!("{i:06}.jpg")), bytes).map_err(|x| e(&x))
        })?;
    std::fs::write(&done, b"").map_err(|x| e(&x))?;
    println!(
        "made {} ({n} JPEGs) in {:.0}s",
        dir.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Reads every image of `dir` through the batch pipeline: images per second.
fn decode(dir: &Path, workers: Option<usize>) -> Result<(), String> {
    let options = ImageOptions::new(224, Preset::Torchvision);
    let images = Images::from_folder(dir, &options).map_err(|e| e.to_string())?;
    let batches = BatchOptions {
        workers: workers.unwrap_or(BatchOptions::new(32).workers),
        ..BatchOptions::new(32)
    };
    let order: Vec<usize> = (0..images.len()).collect();
    let start = Instant::now();
    let mut read = 0;
    for_each_batch(&images, &order, &batches, &Augment::none(), 0, |b| {
        read += b.labels.len();
        Ok::<(), keel::data::Error>(())
    })
    .map_err(|e| e.to_string())?;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "keel: {read} images in {seconds:.2}s: {:.0} images/s ({} workers)",
        read as f64 / seconds,
        batches.workers
    );
    Ok(())
}

fn run() -> Result<(), String> {
    let args = Args::parse();
    if let Some(path) = &args.json {
        common::check_output_folder(path, "--json")?;
    }
    if let Some(dir) = &args.decode {
        return decode(dir, args.workers);
    }
    let root = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let transfer = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .with_file_name("transfer");
    if !transfer.exists() {
        return Err(format!(
            "{} is missing: build it with `cargo build --release --example transfer`",
            transfer.display()
        ));
    }
    let mut rows = Vec::new();
    println!(
        "{:>8} {:>10} {:>10} {:>12} {:>12}",
        "images", "wall s", "peak MiB", "flatten acc", "gap acc"
    );
    for &n in &args.sizes {
        let dir = root.join(format!("keel-bench-folder-n{n}"));
        make_folder(&dir, n)?;
        let json = root.join(format!("keel-bench-folder-n{n}.json"));
        let start = Instant::now();
        let status = std::process::Command::new(&transfer)
            .args(["--head", "both", "--epochs", "1", "--image-size", "224"])
            .arg("--data")
            .arg(&dir)
            .arg("--json")
            .arg(&json)
            .arg("--plot")
            .arg(root.join(format!("keel-bench-folder-n{n}.png")))
            .args(&args.transfer)
            .stdout(std::process::Stdio::null())
            .status()
            .map_err(|e| e.to_string())?;
        let wall = start.elapsed().as_secs_f64();
        if !status.success() {
            return Err(format!("transfer on {} failed: {status}", dir.display()));
        }
        let text = std::fs::read_to_string(&json).map_err(|e| e.to_string())?;
        let result: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let peak = result["peak_rss_bytes"].as_f64().unwrap_or(f64::NAN) / (1 << 20) as f64;
        let accuracy = |i: usize| {
            result["results"][i]["val_accuracy"]
                .as_f64()
                .unwrap_or(f64::NAN)
        };
        println!(
            "{n:>8} {wall:>10.1} {peak:>10.0} {:>12.4} {:>12.4}",
            accuracy(0),
            accuracy(1)
        );
        rows.push(serde_json::json!({
            "images": n,
            "wall_seconds": wall,
            "peak_rss_bytes": result["peak_rss_bytes"],
            "data_seconds": result["data_seconds"],
            "feature_seconds": result["feature_seconds"],
            "results": result["results"],
        }));
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?;
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
