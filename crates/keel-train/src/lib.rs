//! keel-train: optimizers (SGD, Adam, AdamW), learning-rate schedules, gradient clipping,
//! losses and metrics, and `fit` / `evaluate` / `predict` in Keras' spirit, with feature
//! caching for frozen backbones (in memory up to a budget, then on disk) and training that
//! resumes from a checkpoint.

#![warn(missing_docs)]

mod checkpoint;
mod error;
mod features;
mod fit;
mod loss;
pub mod metrics;
mod optimizer;
mod schedule;

pub use error::{Error, Result};
pub use features::{extract_features, fingerprint, FeatureOptions, Features, MemoryBudget};
pub use fit::{
    cacheable_prefix, evaluate, fit, predict, EarlyStopping, EpochLog, Evaluation, FitConfig,
    History, Predictions, Validation,
};
pub use loss::Loss;
pub use optimizer::{Adam, Clip, Optimizer, OptimizerState, Sgd};
pub use schedule::Schedule;
