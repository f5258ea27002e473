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
mod memory;
pub mod metrics;
mod optimizer;
mod schedule;
mod sums;

pub use error::{Error, Result};
pub use features::{
    extract_features, fingerprint, FeatureOptions, Features, MemoryBudget, Precision,
};
pub use fit::{
    cacheable_prefix, check_learning_rate, evaluate, fit, predict, EarlyStopping, EpochLog,
    Evaluation, FitConfig, History, Predictions, Validation,
};
pub use loss::Loss;
pub use memory::{feature_memory, training_memory, update_memory};
pub use optimizer::{Adam, Clip, Optimizer, OptimizerState, Sgd};
pub use schedule::Schedule;
