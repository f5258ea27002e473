//! Training-step benchmarks per device, and what freezing saves in memory.
//!
//! - One SGD step (forward, backward, update) of a VGG-style block: two 3×3 convolutions with
//!   64 channels at 56×56, batch 8, bias and ReLU, loss = mean(y²).
//! - One SGD step of a Dense head on 7×7×512 features (VGG16's last feature map), batch 32:
//!   Flatten → Dense(256, relu) → Dense(3) → softmax cross-entropy.
//! - Peak heap during one training step of a 10-layer convolutional backbone plus a Dense head,
//!   frozen against unfrozen (CPU backend; the graph is the same on every device).
//!
//! `cargo run --release --example bench_train -- [--device auto|wgpu|cpu] [--json] [--reps N]`

mod common;

use clap::Parser;
use common::{median_secs, random};
use keel::autograd::{Param, Result, Var};
use keel::{Conv2dOptions, Device, Padding, Tensor};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Parser)]
#[command(about = "Benchmarks training steps and measures the memory freezing saves")]
struct Args {
    /// Device to measure (auto, wgpu or cpu; KEEL_DEVICE when not given); every available
    /// device when neither names one.
    #[arg(long, env = "KEEL_DEVICE")]
    device: Option<String>,
    /// Print one JSON object per device instead of a table.
    #[arg(long)]
    json: bool,
    /// Timed repetitions per measurement (after two warm-up runs); 0 picks per device.
    #[arg(long, default_value_t = 0)]
    reps: usize,
}

/// The system allocator, counting live and peak heap bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers to the system allocator; only adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn param(
    name: &str,
    shape: &[usize],
    seed: u64,
    scale: f32,
    device: &Device,
) -> keel::Result<Param> {
    let n: usize = shape.iter().product();
    let t = Tensor::from_vec(common::values(n, seed, scale), shape.to_vec(), device)?;
    Ok(Param::new(name, t))
}

/// Backward from `loss`, then p ← p − lr · ∂loss/∂p for every parameter reached.
fn sgd_step(loss: &Var, lr: f32) -> Result<()> {
    for (p, g) in loss.backward()?.iter() {
        p.set_value(p.value().sub(&g.mul_scalar(lr)?)?)?;
        p.zero_grad();
    }
    Ok(())
}

/// Median ms of one training step of the VGG-style block.
fn vgg_block_step(device: &Device, reps: usize) -> Result<f64> {
    let x = Var::constant(random(&[8, 56, 56, 64], 1, device)?);
    let w1 = param("conv1/kernel", &[3, 3, 64, 64], 2, 0.05, device)?;
    let b1 = param("conv1/bias", &[64], 3, 0.05, device)?;
    let w2 = param("conv2/kernel", &[3, 3, 64, 64], 4, 0.05, device)?;
    let b2 = param("conv2/bias", &[64], 5, 0.05, device)?;
    let same = Conv2dOptions::default().padding(Padding::Same);
    let t = median_secs(reps, device, || -> Result<()> {
        let h = x.conv2d(&w1.var(), &same)?.bias_add(&b1.var())?.relu()?;
        let y = h.conv2d(&w2.var(), &same)?.bias_add(&b2.var())?.relu()?;
        sgd_step(&y.mul(&y)?.mean_all()?, 0.01)
    })?;
    Ok(t * 1e3)
}

/// Median ms of one training step of a Dense head on 7×7×512 features.
fn dense_head_step(device: &Device, reps: usize) -> Result<f64> {
    let features = Var::constant(random(&[32, 7, 7, 512], 6, device)?);
    let labels = Tensor::from_i32((0..32).map(|i| i % 3).collect(), [32], device)?;
    let w1 = param("dense1/kernel", &[7 * 7 * 512, 256], 7, 0.01, device)?;
    let b1 = param("dense1/bias", &[256], 8, 0.01, device)?;
    let w2 = param("dense2/kernel", &[256, 3], 9, 0.05, device)?;
    let b2 = param("dense2/bias", &[3], 10, 0.05, device)?;
    let t = median_secs(reps, device, || -> Result<()> {
        let h = features
            .flatten()?
            .matmul(&w1.var())?
            .bias_add(&b1.var())?
            .relu()?;
        let logits = h.matmul(&w2.var())?.bias_add(&b2.var())?;
        sgd_step(&logits.sparse_softmax_cross_entropy(&labels)?, 0.01)
    })?;
    Ok(t * 1e3)
}

/// Heap above the baseline in one training step.
struct StepMemory {
    /// Held once the forward pass is done: what the graph keeps for backward.
    retained: usize,
    /// The most at any moment of the step (transient scratch such as im2col included).
    peak: usize,
}

/// Memory of one training step of a 10-layer 3×3 conv backbone (32 channels at 32×32, batch 8)
/// plus Flatten → Dense(10), with the backbone frozen or not.
fn step_memory(frozen: bool) -> Result<StepMemory> {
    let device = Device::cpu();
    let x = Var::constant(random(&[8, 32, 32, 3], 11, &device)?);
    let labels = Tensor::from_i32((0..8).collect(), [8], &device)?;
    let backbone = (0..10)
        .map(|i| {
            param(
                &format!("conv{i}"),
                &[3, 3, if i == 0 { 3 } else { 32 }, 32],
                12 + i,
                0.1,
                &device,
            )
        })
        .collect::<keel::Result<Vec<_>>>()?;
    backbone.iter().for_each(|p| p.set_trainable(!frozen));
    let head = param("dense/kernel", &[32 * 32 * 32, 10], 30, 0.01, &device)?;
    let same = Conv2dOptions::default().padding(Padding::Same);
    let step = |base: usize| -> Result<usize> {
        let mut h = x.clone();
        for w in &backbone {
            h = h.conv2d(&w.var(), &same)?.relu()?;
        }
        let loss = h
            .flatten()?
            .matmul(&head.var())?
            .sparse_softmax_cross_entropy(&labels)?;
        drop(h);
        let retained = LIVE.load(Ordering::Relaxed).saturating_sub(base);
        sgd_step(&loss, 0.01)?;
        Ok(retained)
    };
    step(0)?; // warm-up: rayon's pools and scratch exist before measuring
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let retained = step(base)?;
    Ok(StepMemory {
        retained,
        peak: PEAK.load(Ordering::Relaxed) - base,
    })
}

fn run() -> Result<()> {
    let args = Args::parse();
    let devices = match &args.device {
        Some(name) => vec![Device::from_name(name)?],
        None => {
            let mut d = vec![Device::cpu()];
            d.extend(Device::wgpu().ok());
            d
        }
    };
    // Without the CPU buffer cache, so the heap shows what the graph holds, not freed buffers
    // kept for reuse.
    keel::tensor::cpu_cache::set_limit(0);
    let frozen = step_memory(true)?;
    let unfrozen = step_memory(false)?;
    keel::tensor::cpu_cache::set_limit(keel::tensor::cpu_cache::DEFAULT_LIMIT);
    let mb = |b: usize| b as f64 / 1e6;
    for device in &devices {
        let reps = match args.reps {
            0 if device.is_cpu() => 11,
            0 => 3,
            n => n,
        };
        let vgg = vgg_block_step(device, reps)?;
        let head = dense_head_step(device, reps)?;
        if args.json {
            let obj = serde_json::json!({
                "device": device.to_string(),
                "vgg_block_step_ms": vgg,
                "dense_head_step_ms": head,
                "frozen_backbone_retained_mb": mb(frozen.retained),
                "frozen_backbone_peak_mb": mb(frozen.peak),
                "trained_backbone_retained_mb": mb(unfrozen.retained),
                "trained_backbone_peak_mb": mb(unfrozen.peak),
            });
            println!("{obj}");
        } else {
            println!("{device}");
            println!("  VGG block train step (2×conv3×3 64ch, 56², b=8) {vgg:>10.2} ms");
            println!("  Dense head train step (7×7×512 → 256 → 3, b=32) {head:>10.2} ms");
        }
    }
    if !args.json {
        println!("heap in one training step, 10-layer conv backbone + Dense head (CPU):");
        println!("                     kept for backward    peak");
        for (name, m) in [
            ("backbone frozen ", &frozen),
            ("backbone trained", &unfrozen),
        ] {
            println!(
                "  {name}  {:>12.2} MB {:>8.2} MB",
                mb(m.retained),
                mb(m.peak)
            );
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
