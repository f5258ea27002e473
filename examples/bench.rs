//! Kernel benchmarks per device: matmul 1024³, a VGG16 block3_conv2-shaped convolution and a
//! MobileNet depthwise 3×3 layer. Medians after warm-up; see docs/performance.md.
//!
//! `--layers` adds forward and gradient times of more convolutions (VGG16 blocks 1, 3, 4, 5, a
//! small CNN's second layer, MobileNetV2's depthwise and 1×1 layers); `--backbones BATCH,SIZE`
//! the forward pass of whole VGG16, MobileNet, MobileNetV2 and EfficientNet-B0 backbones
//! (without top, inference) on BATCH images of SIZE×SIZE, and a full training step of
//! MobileNetV2 with a GAP head on twice as many; `--profile NAME,BATCH,SIZE [--training]` where a backbone's forward
//! pass (or training step) spends its time, by layer kind and backward op.
//!
//! `cargo run --release --example bench -- [--device auto|wgpu|cpu] [--json] [--gemm-crates]
//! [--layers] [--backbones 64,224] [--profile mobilenet_v2,16,224 --training]`

mod common;

use clap::Parser;
use common::{median_secs, random};
use keel::layers::{backbones, gap_head, with_head, BackboneOptions, Layer};
use keel::train::{Adam, Loss, Optimizer};
use keel::{Conv2dOptions, Device, GemmKernels, Padding, Shape};
use keel::{Tensor, Var};
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Benchmarks keel's kernels on each device")]
struct Args {
    /// Device to measure (auto, wgpu or cpu; KEEL_DEVICE when not given); every available
    /// device when neither names one.
    #[arg(long, env = "KEEL_DEVICE")]
    device: Option<String>,
    /// Print one JSON object per device instead of a table.
    #[arg(long)]
    json: bool,
    /// Also time the two CPU GEMM crates keel chose between, on 1024³.
    #[arg(long)]
    gemm_crates: bool,
    /// Also time forward, input gradient and kernel gradient of more convolution layers.
    #[arg(long)]
    layers: bool,
    /// Where a backbone's forward pass spends its time, by layer kind: NAME,BATCH,SIZE (e.g.
    /// mobilenet_v2,8,224); prints that table only.
    #[arg(long, value_delimiter = ',')]
    profile: Vec<String>,
    /// With --profile: a whole training step of the backbone with a GAP head and Dense(10),
    /// every layer trainable, Adam (forward by layer kind, backward by op).
    #[arg(long)]
    training: bool,
    /// Also time the forward pass of whole VGG16, MobileNet, MobileNetV2 and EfficientNet-B0
    /// backbones, and a MobileNetV2 training step on twice the batch: BATCH,SIZE.
    #[arg(long, value_delimiter = ',', value_name = "BATCH,SIZE")]
    backbones: Vec<usize>,
    /// Timed repetitions per measurement (after two warm-up runs).
    #[arg(long, default_value_t = 0)]
    reps: usize,
}

struct Figures {
    matmul_gflops: f64,
    conv_gflops: f64,
    conv_ms: f64,
    depthwise_gbps: f64,
    depthwise_ms: f64,
}

fn measure(device: &Device, reps: usize) -> keel::Result<Figures> {
    let a = random(&[1024, 1024], 1, device)?;
    let b = random(&[1024, 1024], 2, device)?;
    let t = median_secs(reps, device, || a.matmul(&b))?;
    let matmul_gflops = 2.0 * 1024f64.powi(3) / t / 1e9;

    // VGG16 block3_conv2: 56×56×256 → 256, 3×3 same, batch 8.
    let x = random(&[8, 56, 56, 256], 3, device)?;
    let w = random(&[3, 3, 256, 256], 4, device)?;
    let same = Conv2dOptions::default().padding(Padding::Same);
    let conv_reps = if device.is_cpu() { reps } else { reps.min(5) };
    let t = median_secs(conv_reps, device, || x.conv2d(&w, &same))?;
    let conv_flops = 2.0 * 8.0 * 56.0 * 56.0 * 256.0 * (3.0 * 3.0 * 256.0);
    let (conv_gflops, conv_ms) = (conv_flops / t / 1e9, t * 1e3);

    // MobileNet depthwise 3×3 on 112×112×32, batch 8: bytes = input + output + kernel.
    let x = random(&[8, 112, 112, 32], 5, device)?;
    let w = random(&[3, 3, 32, 1], 6, device)?;
    let t = median_secs(reps, device, || x.depthwise_conv2d(&w, &same))?;
    let bytes = (2 * 8 * 112 * 112 * 32 + 9 * 32) as f64 * 4.0;
    Ok(Figures {
        matmul_gflops,
        conv_gflops,
        conv_ms,
        depthwise_gbps: bytes / t / 1e9,
        depthwise_ms: t * 1e3,
    })
}

/// A convolution layer of `--layers`, `same` padding.
struct LayerShape {
    name: &'static str,
    batch: usize,
    /// Input height = width.
    size: usize,
    in_c: usize,
    out_c: usize,
    kernel: usize,
    stride: usize,
    /// 1, or `in_c` for a depthwise convolution.
    groups: usize,
}

const fn layer(
    name: &'static str,
    (batch, size, in_c, out_c): (usize, usize, usize, usize),
    (kernel, stride, groups): (usize, usize, usize),
) -> LayerShape {
    LayerShape {
        name,
        batch,
        size,
        in_c,
        out_c,
        kernel,
        stride,
        groups,
    }
}

/// The layers of `--layers`: VGG16's 3×3 convolutions, a small CNN's, and MobileNetV2's
/// depthwise and 1×1 layers at the batch of its training step (the same list as
/// `tools/bench_pytorch.py`).
const LAYERS: [LayerShape; 12] = [
    layer("VGG16 block1_conv2", (2, 224, 64, 64), (3, 1, 1)),
    layer("VGG16 block3_conv2", (8, 56, 256, 256), (3, 1, 1)),
    layer("VGG16 block4_conv2", (8, 28, 512, 512), (3, 1, 1)),
    layer("VGG16 block5_conv2", (8, 14, 512, 512), (3, 1, 1)),
    layer("small CNN conv2", (32, 13, 32, 64), (3, 1, 1)),
    layer("MobileNetV2 depthwise", (16, 112, 32, 32), (3, 1, 32)),
    layer("MobileNetV2 depthwise s2", (16, 112, 96, 96), (3, 2, 96)),
    layer("MobileNetV2 depthwise", (16, 56, 144, 144), (3, 1, 144)),
    layer("MobileNetV2 expand", (16, 112, 16, 96), (1, 1, 1)),
    layer("MobileNetV2 expand", (16, 56, 24, 144), (1, 1, 1)),
    layer("MobileNetV2 project", (16, 14, 576, 96), (1, 1, 1)),
    layer("MobileNetV2 expand", (16, 7, 160, 960), (1, 1, 1)),
];

/// Median milliseconds of one layer's three passes, each of the same FLOP count.
struct LayerFigures {
    name: String,
    gflop: f64,
    forward_ms: f64,
    input_grad_ms: f64,
    kernel_grad_ms: f64,
}

fn measure_layers(device: &Device, reps: usize) -> keel::Result<Vec<LayerFigures>> {
    let mut figures = Vec::new();
    for (i, l) in LAYERS.iter().enumerate() {
        let options = Conv2dOptions::default()
            .padding(Padding::Same)
            .stride(l.stride)
            .groups(l.groups);
        let out = l.size.div_ceil(l.stride);
        let seed = 10 + 3 * i as u64;
        let (x_shape, w_shape) = (
            Shape::new([l.batch, l.size, l.size, l.in_c]),
            Shape::new([l.kernel, l.kernel, l.in_c / l.groups, l.out_c]),
        );
        let x = random(x_shape.dims(), seed, device)?;
        let w = random(w_shape.dims(), seed + 1, device)?;
        let dy = random(&[l.batch, out, out, l.out_c], seed + 2, device)?;
        let ms = |t: f64| t * 1e3;
        let k = l.kernel;
        let macs = l.batch * out * out * l.out_c * k * k * (l.in_c / l.groups);
        figures.push(LayerFigures {
            name: format!(
                "{} {k}×{k} (b={}, {}²×{}→{}{})",
                l.name,
                l.batch,
                l.size,
                l.in_c,
                l.out_c,
                if l.stride > 1 { ", stride 2" } else { "" }
            ),
            gflop: 2.0 * macs as f64 / 1e9,
            forward_ms: ms(median_secs(reps, device, || x.conv2d(&w, &options))?),
            input_grad_ms: ms(median_secs(reps, device, || {
                dy.conv2d_backward_input(&w, &x_shape, &options)
            })?),
            kernel_grad_ms: ms(median_secs(reps, device, || {
                dy.conv2d_backward_kernel(&x, &w_shape, &options)
            })?),
        });
    }
    Ok(figures)
}

/// Median milliseconds of a whole backbone's forward pass (inference) on `batch` images of
/// `size`×`size`: (name, ms).
fn measure_backbones(
    device: &Device,
    batch: usize,
    size: usize,
    reps: usize,
) -> Result<Vec<(String, f64)>, String> {
    let e = |e: keel::layers::Error| e.to_string();
    let options = BackboneOptions::default().input(size, size);
    let models = [
        ("VGG16", backbones::vgg16(&options, device).map_err(e)?),
        (
            "MobileNet",
            backbones::mobilenet(&options, device).map_err(e)?,
        ),
        (
            "MobileNetV2",
            backbones::mobilenet_v2(&options, device).map_err(e)?,
        ),
        (
            "EfficientNet-B0",
            backbones::efficientnet_b0(&options, device).map_err(e)?,
        ),
    ];
    let x = random(&[batch, size, size, 3], 40, device).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for (name, model) in &models {
        let t = median_secs(reps, device, || model.predict(&x)).map_err(e)?;
        rows.push((format!("{name} forward (b={batch}, {size}²)"), t * 1e3));
    }
    rows.push(training_step(device, 2 * batch, size, reps)?);
    Ok(rows)
}

/// The forward pass of backbone `name` on `batch` images of `size`², by layer kind (or with
/// `training`, a whole training step: forward by layer kind, backward by op): two warm-up runs,
/// then the mean of `reps` profiled runs (ms per kind, calls, whole pass ms).
fn profile_backbone(
    device: &Device,
    (name, batch, size): (&str, usize, usize),
    training: bool,
    reps: usize,
) -> Result<(Vec<keel::layers::ProfileRow>, f64), String> {
    let e = |e: keel::layers::Error| e.to_string();
    let options = BackboneOptions::default().input(size, size);
    let backbone = backbones::by_name(name, &options, device).map_err(e)?;
    let x = random(&[batch, size, size, 3], 41, device).map_err(|e| e.to_string())?;
    let mut run: Box<dyn FnMut() -> Result<(), String>> = if training {
        let mut step = TrainingStep::new(backbone, batch, size, device)?;
        Box::new(move || step.run().map(drop).map_err(|e| e.to_string()))
    } else {
        Box::new(move || backbone.predict(&x).map(drop).map_err(e))
    };
    for _ in 0..2 {
        run()?;
    }
    let mut totals: Vec<keel::layers::ProfileRow> = Vec::new();
    let mut whole = 0.0;
    for _ in 0..reps {
        let (result, rows, seconds) = keel::autograd::profile::profile(&mut run);
        result?;
        whole += seconds / reps as f64;
        for row in rows {
            match totals.iter_mut().find(|t| t.kind == row.kind) {
                Some(t) => t.seconds += row.seconds / reps as f64,
                None => totals.push(keel::layers::ProfileRow {
                    seconds: row.seconds / reps as f64,
                    ..row
                }),
            }
        }
    }
    totals.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    Ok((totals, whole))
}

/// One training step of a backbone with a GAP head and Dense(10), every layer trainable, Adam,
/// on fixed random images and labels: forward, loss, backward, update.
struct TrainingStep {
    model: keel::layers::Sequential,
    params: Vec<keel::Param>,
    adam: Adam,
    x: Var,
    labels: Tensor,
}

impl TrainingStep {
    fn new(
        backbone: keel::layers::Sequential,
        batch: usize,
        size: usize,
        device: &Device,
    ) -> Result<TrainingStep, String> {
        let model = with_head(backbone, &gap_head(10), device, 1).map_err(|e| e.to_string())?;
        let images = random(&[batch, size, size, 3], 41, device).map_err(|e| e.to_string())?;
        let labels: Vec<i32> = (0..batch as i32).map(|i| i % 10).collect();
        Ok(TrainingStep {
            params: model.trainable_params(),
            model,
            adam: Adam::new(1e-3),
            x: Var::constant(images),
            labels: Tensor::from_i32(labels, [batch], device).map_err(|e| e.to_string())?,
        })
    }

    /// The step; returns the loss.
    fn run(&mut self) -> Result<Tensor, keel::train::Error> {
        let loss = Loss::SparseCategoricalCrossentropy { from_logits: true };
        let out = self.model.forward(&self.x, true)?;
        let l = loss.compute(&out, &self.labels)?;
        l.backward()?;
        self.adam.step(&self.params)?;
        Ok(l.tensor().clone())
    }
}

/// Median milliseconds of one training step of MobileNetV2 with a GAP head and Dense(10), every
/// layer trainable, Adam, on `batch` images of `size`×`size`: forward, loss, backward, update.
fn training_step(
    device: &Device,
    batch: usize,
    size: usize,
    reps: usize,
) -> Result<(String, f64), String> {
    let options = BackboneOptions::default().input(size, size);
    let backbone = backbones::mobilenet_v2(&options, device).map_err(|e| e.to_string())?;
    let mut step = TrainingStep::new(backbone, batch, size, device)?;
    let t = median_secs(reps, device, || step.run()).map_err(|e| e.to_string())?;
    Ok((
        format!("MobileNetV2 + GAP + Dense(10) training step (b={batch}, {size}², Adam)"),
        t * 1e3,
    ))
}

/// GFLOP/s of the `gemm` and `matrixmultiply` crates on 1024³ with all threads (median of 20).
fn gemm_crates() -> (f64, f64) {
    let n = 1024;
    let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..n * n).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut c = vec![0f32; n * n];
    let time = |f: &mut dyn FnMut()| {
        f();
        let mut t: Vec<f64> = (0..20)
            .map(|_| {
                let s = Instant::now();
                f();
                s.elapsed().as_secs_f64()
            })
            .collect();
        t.sort_by(|a, b| a.total_cmp(b));
        2.0 * (n as f64).powi(3) / t[10] / 1e9
    };
    let threads = rayon::current_num_threads();
    // SAFETY: all three buffers hold n×n elements, row-major with the strides given.
    let gemm = time(&mut || unsafe {
        gemm::gemm(
            n,
            n,
            n,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            n as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(threads),
        );
    });
    // SAFETY: as above.
    let mm = time(&mut || unsafe {
        matrixmultiply::sgemm(
            n,
            n,
            n,
            1.0,
            a.as_ptr(),
            n as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    });
    (gemm, mm)
}

fn run() -> Result<(), String> {
    let args = Args::parse();
    let s = |e: keel::Error| e.to_string();
    let mut devices = match &args.device {
        Some(name) => vec![Device::from_name(name).map_err(s)?],
        None => {
            let mut d = vec![Device::cpu()];
            d.extend(Device::wgpu().ok());
            d
        }
    };
    // Where the adapter runs the subgroup GEMMs, the workgroup-tiled ones are measured beside them.
    if devices.iter().any(Device::is_wgpu) {
        let tiled = Device::wgpu_with(GemmKernels::Tiled).map_err(s)?;
        if !devices.contains(&tiled) {
            devices.push(tiled);
        }
    }
    if let [name, batch, size] = &args.profile[..] {
        let parse = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| format!("--profile: `{v}` is not a number"))
        };
        let device = &devices[0];
        let reps = if args.reps > 0 { args.reps } else { 5 };
        let (batch, size) = (parse(batch)?, parse(size)?);
        let (rows, whole) = profile_backbone(device, (name, batch, size), args.training, reps)?;
        let pass = if args.training {
            "training step"
        } else {
            "forward"
        };
        let other = whole - rows.iter().map(|r| r.seconds).sum::<f64>();
        if args.json {
            let rows: Vec<_> = rows
                .iter()
                .map(|r| serde_json::json!({"kind": r.kind, "ms": r.seconds * 1e3, "calls": r.calls}))
                .collect();
            let obj = serde_json::json!({"device": device.to_string(), "backbone": name,
                "pass": pass, "batch": batch, "size": size, "ms": whole * 1e3,
                "other_ms": other * 1e3, "kinds": rows});
            println!("{obj}");
        } else {
            println!(
                "{name} {pass}, b={batch}, {size}², on {device}: {:.1} ms",
                whole * 1e3
            );
            for r in rows.iter() {
                let share = 100.0 * r.seconds / whole;
                println!(
                    "  {:<34} {:>8.2} ms {share:>5.1}%  ({} calls)",
                    r.kind,
                    r.seconds * 1e3,
                    r.calls
                );
            }
            println!(
                "  {:<34} {:>8.2} ms {:>5.1}%",
                "other (adds, checks, optimizer)",
                other * 1e3,
                100.0 * other / whole
            );
        }
        return Ok(());
    }
    for device in &devices {
        let reps = if args.reps > 0 {
            args.reps
        } else if device.is_cpu() {
            15
        } else {
            5
        };
        let f = measure(device, reps).map_err(s)?;
        let layers = if args.layers {
            measure_layers(device, if device.is_cpu() { reps } else { reps.min(3) }).map_err(s)?
        } else {
            Vec::new()
        };
        let whole = match args.backbones[..] {
            [batch, size] => measure_backbones(device, batch, size, reps.min(5))?,
            [] => Vec::new(),
            _ => return Err("--backbones takes BATCH,SIZE (e.g. 64,224)".into()),
        };
        if args.json {
            let mut obj = serde_json::json!({
                "device": device.to_string(),
                "matmul_1024_gflops": f.matmul_gflops,
                "vgg_block3_conv_gflops": f.conv_gflops,
                "vgg_block3_conv_ms": f.conv_ms,
                "depthwise_gbps": f.depthwise_gbps,
                "depthwise_ms": f.depthwise_ms,
            });
            if !whole.is_empty() {
                obj["backbones"] = whole
                    .iter()
                    .map(|(name, ms)| serde_json::json!({"name": name, "ms": ms}))
                    .collect();
            }
            if args.layers {
                obj["layers"] = layers
                    .iter()
                    .map(|l| {
                        serde_json::json!({
                            "layer": l.name,
                            "forward_ms": l.forward_ms,
                            "input_grad_ms": l.input_grad_ms,
                            "kernel_grad_ms": l.kernel_grad_ms,
                        })
                    })
                    .collect();
            }
            println!("{obj}");
        } else {
            println!("{device}");
            println!(
                "  matmul 1024³              {:>9.1} GFLOP/s",
                f.matmul_gflops
            );
            println!(
                "  VGG16 block3_conv2 (b=8)  {:>9.1} GFLOP/s  {:>9.2} ms",
                f.conv_gflops, f.conv_ms
            );
            println!(
                "  depthwise 3×3 112²×32 b=8 {:>9.2} GB/s     {:>9.2} ms",
                f.depthwise_gbps, f.depthwise_ms
            );
            if args.layers {
                let head = "convolutions (same padding), ms (GFLOP/s)";
                let passes = ["forward", "input grad", "kernel grad"];
                println!(
                    "  {head:<64} {:>17} {:>17} {:>17}",
                    passes[0], passes[1], passes[2]
                );
            }
            for l in &layers {
                let cell = |ms: f64| format!("{ms:>9.2} ({:>5.1})", l.gflop / ms * 1e3);
                println!(
                    "  {:<64} {} {} {}",
                    l.name,
                    cell(l.forward_ms),
                    cell(l.input_grad_ms),
                    cell(l.kernel_grad_ms)
                );
            }
            for (name, ms) in &whole {
                println!("  {name:<40} {ms:>9.2} ms");
            }
        }
    }
    if args.gemm_crates {
        let (g, m) = gemm_crates();
        println!("CPU GEMM crates, 1024³ f32, {} threads: gemm {g:.1} GFLOP/s, matrixmultiply {m:.1} GFLOP/s", rayon::current_num_threads());
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
