//! Training checkpoints for [`FitConfig::backup`](crate::FitConfig::backup) (Keras'
//! `BackupAndRestore`): a model file (configuration and weights) with the optimizer's state as
//! extra tensors and the rest of the training state — epoch, random state, dropout draws,
//! early-stopping state, history — as JSON in its metadata. Written atomically after every
//! epoch, so a run killed at any moment leaves the last complete epoch loadable.

use crate::fit::EpochLog;
use crate::optimizer::{Optimizer, OptimizerState};
use crate::{Error, Result};
use keel_layers::{write_model_file, Layer, ModelFile, ModelInfo, Sequential};
use keel_tensor::Device;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The metadata key of the training state.
const TRAINING_KEY: &str = "keel.training";
/// The prefix of optimizer tensors: `optimizer/<parameter name>/<slot>`.
const OPTIMIZER_PREFIX: &str = "optimizer/";

/// Where training stands after an epoch.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct TrainingState {
    /// The epochs run so far.
    pub history: Vec<EpochLog>,
    /// The shuffling stream's position.
    pub rng: u64,
    /// The best monitored loss so far.
    pub best: Option<f32>,
    /// Epochs since it improved.
    pub since_best: usize,
    /// Whether early stopping ended training.
    pub stopped_early: bool,
    /// Dropout draws of each layer that makes them, in depth-first order.
    pub draws: Vec<u64>,
    /// The optimizer's kind and step counts (its tensors are stored beside).
    pub optimizer_kind: String,
    pub optimizer_steps: BTreeMap<String, i32>,
}

impl TrainingState {
    /// The state before the first epoch of a run seeded with `seed`.
    pub fn new(seed: u64) -> TrainingState {
        TrainingState {
            history: Vec::new(),
            rng: seed,
            best: None,
            since_best: 0,
            stopped_early: false,
            draws: Vec::new(),
            optimizer_kind: String::new(),
            optimizer_steps: BTreeMap::new(),
        }
    }

    /// Whether a run of `epochs` has nothing left to do.
    pub fn finished(&self, epochs: usize) -> bool {
        self.stopped_early || self.history.len() >= epochs
    }
}

fn collect_draws(layer: &dyn Layer, out: &mut Vec<u64>) {
    out.extend(layer.draws());
    for child in layer.children() {
        collect_draws(child, out);
    }
}

fn restore_draws(layer: &dyn Layer, draws: &mut std::slice::Iter<'_, u64>) {
    if layer.draws().is_some() {
        if let Some(&d) = draws.next() {
            layer.set_draws(d);
        }
    }
    for child in layer.children() {
        restore_draws(child, draws);
    }
}

/// Writes `model`, `optimizer`'s state and `state` to `path` (atomically).
pub(crate) fn save(
    path: &Path,
    model: &Sequential,
    info: &ModelInfo,
    optimizer: &dyn Optimizer,
    state: &TrainingState,
) -> Result<()> {
    let optimizer_state = optimizer.state();
    let mut state = state.clone();
    state.draws.clear();
    collect_draws(model, &mut state.draws);
    state.optimizer_kind = optimizer_state.kind;
    state.optimizer_steps = optimizer_state.steps;
    let json = serde_json::to_string(&state)
        .map_err(|e| Error::Mismatch(format!("{}: {e}", path.display())))?;
    let tensors = optimizer_state
        .slots
        .into_iter()
        .map(|((param, slot), t)| (format!("{OPTIMIZER_PREFIX}{param}/{slot}"), t))
        .collect();
    let metadata = HashMap::from([(TRAINING_KEY.to_string(), json)]);
    write_model_file(path, model, info, tensors, metadata)?;
    Ok(())
}

/// Restores `model`'s weights, `optimizer`'s state and the dropout draws from `path`, and
/// returns the training state.
pub(crate) fn restore(
    path: &Path,
    model: &Sequential,
    optimizer: &mut dyn Optimizer,
    device: &Device,
) -> Result<TrainingState> {
    let file = ModelFile::open(path)?;
    let bad =
        |msg: String| Error::Mismatch(format!("training checkpoint {}: {msg}", path.display()));
    let json = file
        .metadata(TRAINING_KEY)
        .ok_or_else(|| bad("a model file without training state".into()))?;
    let state: TrainingState =
        serde_json::from_str(json).map_err(|e| bad(format!("unreadable training state: {e}")))?;
    let mut slots = BTreeMap::new();
    for (name, tensor) in file.tensors(OPTIMIZER_PREFIX, device)? {
        let key = &name[OPTIMIZER_PREFIX.len()..];
        let Some((param, slot)) = key.rsplit_once('/') else {
            return Err(bad(format!("optimizer tensor `{name}` names no slot")));
        };
        slots.insert((param.to_string(), slot.to_string()), tensor);
    }
    file.restore_weights(model)?;
    optimizer
        .load_state(OptimizerState {
            kind: state.optimizer_kind.clone(),
            slots,
            steps: state.optimizer_steps.clone(),
        })
        .map_err(|e| bad(e.to_string()))?;
    restore_draws(model, &mut state.draws.iter());
    Ok(state)
}
