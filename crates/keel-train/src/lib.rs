//! keel-train: optimizers (SGD, Adam, AdamW), learning-rate schedules, gradient clipping,
//! losses and metrics, and `fit` / `evaluate` / `predict` in Keras' spirit, with feature
//! caching for frozen backbones.

#![warn(missing_docs)]

mod error;
mod fit;
mod loss;
pub mod metrics;
mod optimizer;
mod schedule;

pub use error::{Error, Result};
pub use fit::{
    evaluate, fit, predict, EarlyStopping, EpochLog, Evaluation, FitConfig, History, Validation,
};
pub use loss::Loss;
pub use optimizer::{Adam, Clip, Optimizer, Sgd};
pub use schedule::Schedule;
