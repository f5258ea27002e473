//! Dropout: active only in training, with masks drawn from the model's seed and a step counter.

use crate::config::LayerConfig;
use crate::layer::{BuildContext, Layer, LayerSpec};
use crate::{Error, Result};
use keel_autograd::Var;
use std::sync::atomic::{AtomicU64, Ordering};

/// Keras `Dropout(rate)`.
pub struct DropoutSpec {
    name: Option<String>,
    rate: f32,
}

/// Drops each element with probability `rate` while training (inverted dropout).
pub fn dropout(rate: f32) -> DropoutSpec {
    DropoutSpec { name: None, rate }
}

spec_setters!(DropoutSpec: name);

/// A built Dropout layer; each training call draws a new mask, reproducibly from the seed.
pub struct Dropout {
    name: String,
    rate: f32,
    seed: u64,
    calls: AtomicU64,
    shape: Vec<usize>,
}

impl LayerSpec for DropoutSpec {
    fn base_name(&self) -> &'static str {
        "dropout"
    }
    fn build(self: Box<Self>, ctx: &BuildContext<'_>) -> Result<Box<dyn Layer>> {
        let name = self.name.unwrap_or_else(|| ctx.default_name.clone());
        if !(0.0..1.0).contains(&self.rate) {
            return Err(Error::layer(
                &name,
                format!("rate {} must be in [0, 1)", self.rate),
            ));
        }
        Ok(Box::new(Dropout {
            name,
            rate: self.rate,
            seed: ctx.seed,
            calls: AtomicU64::new(0),
            shape: ctx.input.to_vec(),
        }))
    }
}

impl Layer for Dropout {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "Dropout"
    }
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }
    fn forward(&self, x: &Var, training: bool) -> Result<Var> {
        if !training {
            return Ok(x.clone());
        }
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(x.dropout(
            self.rate,
            self.seed ^ call.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        )?)
    }
    fn config(&self) -> LayerConfig {
        LayerConfig::Dropout {
            name: self.name.clone(),
            rate: self.rate,
        }
    }
    fn draws(&self) -> Option<u64> {
        Some(self.calls.load(Ordering::Relaxed))
    }
    fn set_draws(&self, draws: u64) {
        self.calls.store(draws, Ordering::Relaxed);
    }
}
