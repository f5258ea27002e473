//! Initial weights: Keras' defaults (Glorot-uniform kernels, zero biases, unit gamma), from a
//! seeded generator so that models are reproducible.

use crate::Result;
use keel_tensor::{Device, Tensor};

/// A SplitMix64 stream.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x005E_ED0F_4EE1)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-limit, limit).
    fn uniform(&mut self, limit: f32) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * limit
    }
}

/// Glorot-uniform values for a kernel whose fan-in and fan-out are given.
pub(crate) fn glorot_uniform(
    shape: &[usize],
    fan_in: usize,
    fan_out: usize,
    seed: u64,
    device: &Device,
) -> Result<Tensor> {
    let limit = (6.0 / (fan_in + fan_out).max(1) as f32).sqrt();
    let mut rng = Rng::new(seed);
    let n: usize = shape.iter().product();
    let values = (0..n).map(|_| rng.uniform(limit)).collect();
    Ok(Tensor::from_vec(values, shape.to_vec(), device)?)
}

/// A vector of `n` copies of `value`.
pub(crate) fn constant(n: usize, value: f32, device: &Device) -> Result<Tensor> {
    Ok(Tensor::full(value, [n], device)?)
}
