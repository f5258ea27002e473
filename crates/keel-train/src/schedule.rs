//! Learning-rate schedules, applied at the start of each epoch.

/// How the learning rate changes with the epoch (0-based).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Schedule {
    /// Always the base rate.
    #[default]
    Constant,
    /// Multiply by `gamma` every `every` epochs.
    Step {
        /// Epochs between drops.
        every: usize,
        /// Factor per drop.
        gamma: f32,
    },
    /// Multiply by `gamma` every epoch.
    Exponential {
        /// Factor per epoch.
        gamma: f32,
    },
    /// Cosine decay from the base rate to `min` over `epochs`.
    Cosine {
        /// Length of the decay.
        epochs: usize,
        /// Final rate.
        min: f32,
    },
}

impl Schedule {
    /// The rate for `epoch` given the base rate.
    pub fn rate(&self, base: f32, epoch: usize) -> f32 {
        match *self {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => base * gamma.powi((epoch / every.max(1)) as i32),
            Schedule::Exponential { gamma } => base * gamma.powi(epoch as i32),
            Schedule::Cosine { epochs, min } => {
                let t = (epoch as f32 / epochs.max(1) as f32).min(1.0);
                min + (base - min) * 0.5 * (1.0 + (std::f32::consts::PI * t).cos())
            }
        }
    }
}
