//! Helpers shared by the examples (each example uses a subset).
#![allow(dead_code)]

use keel::Device;
use std::time::Instant;

/// `n` deterministic pseudo-random values in [-scale, scale) (a 64-bit LCG seeded by `seed`),
/// so runs and devices can be compared exactly.
pub fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Median seconds of `reps` runs of `f` (each waits for the device), after two warm-ups.
pub fn median_secs<T, E: From<keel::Error>>(
    reps: usize,
    device: &Device,
    mut f: impl FnMut() -> Result<T, E>,
) -> Result<f64, E> {
    for _ in 0..2 {
        f()?;
        device.synchronize()?;
    }
    let mut times = Vec::with_capacity(reps.max(1));
    for _ in 0..reps.max(1) {
        let start = Instant::now();
        let out = f()?;
        device.synchronize()?;
        times.push(start.elapsed().as_secs_f64());
        drop(out);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(times[times.len() / 2])
}

/// A tensor of deterministic pseudo-random values in [-0.5, 0.5).
pub fn random(shape: &[usize], seed: u64, device: &Device) -> keel::Result<keel::Tensor> {
    let n: usize = shape.iter().product();
    keel::Tensor::from_vec(values(n, seed, 0.5), shape.to_vec(), device)
}

/// The process's peak resident memory in bytes (Linux's `VmHWM`), where the system tells it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// An error when the folder `path` (given to `flag`) goes into does not exist, so that an
/// output is known to be writable before the work that makes it.
pub fn check_output_folder(path: &std::path::Path, flag: &str) -> Result<(), String> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => Err(format!(
            "{flag} {}: the folder {} does not exist",
            path.display(),
            dir.display()
        )),
        _ => Ok(()),
    }
}

/// The preprocessing a pretrained backbone's weights expect (see `keel::layers::backbones`).
pub fn backbone_preset(backbone: &str) -> keel::data::Preset {
    use keel::data::Preset;
    match backbone {
        "vgg16" | "keras_resnet50" => Preset::Caffe,
        "mobilenet" | "keras_mobilenet_v2" | "efficientnet_lite0" => Preset::Tf,
        "keras_efficientnet_b0" => Preset::Raw,
        _ => Preset::Torchvision,
    }
}
