//! Helpers shared by the examples.

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
