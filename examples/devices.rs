//! Lists the devices keel can use and runs a small convolutional network forward on each,
//! checking that they agree.
//!
//! `cargo run --release --example devices` (KEEL_DEVICE=auto|wgpu|cpu shows which device it
//! selects)

mod common;

use clap::Parser;
use common::values;
use keel::{Conv2dOptions, Device, Padding, Pool2dOptions, Tensor};
use std::time::Instant;

/// Conv(3→16) → ReLU → MaxPool → Conv(16→32) → ReLU → MaxPool → Flatten → Dense(10) → Softmax.
fn small_cnn(x: &Tensor, device: &Device) -> keel::Result<Tensor> {
    let same = Conv2dOptions::default().padding(Padding::Same);
    let w1 = Tensor::from_vec(values(3 * 3 * 3 * 16, 1, 0.3), [3, 3, 3, 16], device)?;
    let b1 = Tensor::from_vec(values(16, 2, 0.1), [16], device)?;
    let w2 = Tensor::from_vec(values(3 * 3 * 16 * 32, 3, 0.1), [3, 3, 16, 32], device)?;
    let b2 = Tensor::from_vec(values(32, 4, 0.1), [32], device)?;
    let wd = Tensor::from_vec(values(8 * 8 * 32 * 10, 5, 0.02), [8 * 8 * 32, 10], device)?;
    let bd = Tensor::from_vec(values(10, 6, 0.1), [10], device)?;
    let pool = Pool2dOptions::new(2);
    let h = x
        .conv2d(&w1, &same)?
        .bias_add(&b1)?
        .relu()?
        .max_pool2d(&pool)?;
    let h = h
        .conv2d(&w2, &same)?
        .bias_add(&b2)?
        .relu()?
        .max_pool2d(&pool)?;
    let n = h.dims()[0];
    h.reshape([n, 8 * 8 * 32])?
        .matmul(&wd)?
        .bias_add(&bd)?
        .softmax()
}

#[derive(Parser)]
#[command(
    about = "Lists the devices keel can use and checks that they agree on a small CNN",
    after_help = "KEEL_DEVICE=auto|wgpu|cpu: shows which device that selects"
)]
struct Args {}

fn run() -> keel::Result<()> {
    Args::parse();
    println!("keel devices");
    println!("  cpu : {}", Device::cpu());
    let wgpu = Device::wgpu();
    match &wgpu {
        Ok(d) => println!("  {d}"),
        Err(e) => println!("  wgpu: none ({e})"),
    }
    println!("  auto: {}", Device::auto());
    match std::env::var("KEEL_DEVICE") {
        Ok(v) => println!("  KEEL_DEVICE={v} selects: {}", Device::from_env()?),
        Err(_) => println!("  (set KEEL_DEVICE=auto|wgpu|cpu to choose the default device)"),
    }

    let input = values(4 * 32 * 32 * 3, 7, 1.0);
    let mut devices = vec![Device::cpu()];
    devices.extend(wgpu.ok());
    let mut outputs = Vec::new();
    println!("\nsmall CNN forward, batch 4 of 32×32×3 → 10 classes:");
    for device in &devices {
        let x = Tensor::from_slice(&input, [4, 32, 32, 3], device)?;
        small_cnn(&x, device)?.to_vec()?; // warm-up: compiles pipelines, fills the pool
        let start = Instant::now();
        let probs = small_cnn(&x, device)?;
        let pred = probs.argmax(-1, false)?.to_vec_i32()?;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        let probs = probs.to_vec()?;
        println!(
            "  {device}\n    {ms:.2} ms, predicted classes {pred:?}, row sums {:.5}",
            probs[..10].iter().sum::<f32>()
        );
        outputs.push(probs);
    }
    if let [cpu, gpu] = &outputs[..] {
        let diff = cpu
            .iter()
            .zip(gpu)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        println!("\nlargest difference between cpu and wgpu probabilities: {diff:.2e}");
        if diff > 1e-4 {
            eprintln!("devices disagree by more than 1e-4");
            std::process::exit(1);
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
