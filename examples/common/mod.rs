//! Helpers shared by the examples (each example uses a subset).
#![allow(dead_code)]

use keel::Device;
use std::path::Path;
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

/// Writes to a temporary file next to `path`, then renames it over `path`, so that an existing
/// file is never left half-written.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}
