//! `fit`, `evaluate` and `predict` in Keras' spirit: batches read on worker threads, seeded
//! shuffling, validation, a progress bar, a per-epoch history, early stopping, the best model
//! saved whole, training that resumes where it stopped — and feature caching when the first
//! layers are frozen. No data set is ever copied: splits are views, batches are read on demand.

use crate::checkpoint::{self, TrainingState};
use crate::features::{extract_features, fingerprint, FeatureOptions, Features};
use crate::loss::Loss;
use crate::memory::{feature_memory, training_memory};
use crate::metrics::accuracy;
use crate::optimizer::Optimizer;
use crate::schedule::Schedule;
use crate::sums::DeviceSums;
use crate::{Error, Result};
use keel_autograd::{no_grad, one_hot, Var};
use keel_data::{
    default_workers, for_each_batch, progress_bar, split, Augment, Batch, BatchOptions, Rng,
    Samples, Subset,
};
use keel_layers::{save_model, Layer, ModelInfo, Sequential};
use keel_tensor::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;

/// Training steps between the progress bar's readings of the loss and accuracy sums.
const REFRESH_STEPS: usize = 16;

/// Where validation data comes from.
#[derive(Clone, Copy, Default)]
pub enum Validation<'a> {
    /// No validation.
    #[default]
    None,
    /// Hold out this fraction of the training data (shuffled by the seed) — Keras'
    /// `validation_split`.
    Split(f32),
    /// A separate labelled set — Keras' `validation_data`.
    Data(&'a dyn Samples),
}

impl std::fmt::Debug for Validation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Validation::None => write!(f, "None"),
            Validation::Split(v) => write!(f, "Split({v})"),
            Validation::Data(d) => write!(f, "Data({} samples)", d.len()),
        }
    }
}

/// Stop when the monitored loss (validation loss, else training loss) has not improved by
/// `min_delta` for `patience` epochs.
#[derive(Clone, Copy, Debug)]
pub struct EarlyStopping {
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// The smallest decrease that counts as an improvement.
    pub min_delta: f32,
}

/// How to train.
#[derive(Clone, Debug)]
pub struct FitConfig<'a> {
    /// Passes over the training data.
    pub epochs: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Threads that read and augment batches (the order and values do not depend on it).
    pub workers: usize,
    /// Seed of the shuffles, the validation split and augmentation.
    pub seed: u64,
    /// Shuffle the training data each epoch.
    pub shuffle: bool,
    /// Validation data.
    pub validation: Validation<'a>,
    /// Random augmentation of training samples.
    pub augment: Augment,
    /// Run the frozen first layers once per sample and train the rest on the cached features
    /// (only when no augmentation is on; the results equal the uncached run's).
    pub cache_features: bool,
    /// Where cached features are kept: memory up to a budget, then a scratch file.
    pub features: FeatureOptions,
    /// Learning rate by epoch, from the optimizer's rate at the start of `fit`.
    pub schedule: Schedule,
    /// Early stopping.
    pub early_stopping: Option<EarlyStopping>,
    /// Save the whole model here ([`save_model`]) whenever the monitored loss improves.
    pub checkpoint: Option<PathBuf>,
    /// Keras' `BackupAndRestore`: after every epoch the training state (weights, optimizer
    /// state, epoch, random state, history) is written here; a `fit` that finds the file goes on
    /// from it, with the results an uninterrupted run would have had.
    pub backup: Option<PathBuf>,
    /// Show progress bars with ETA, live loss and accuracy (on a terminal).
    pub progress: bool,
    /// Print one line per epoch.
    pub verbose: bool,
}

impl Default for FitConfig<'_> {
    fn default() -> Self {
        FitConfig {
            epochs: 1,
            batch_size: 32,
            workers: default_workers(),
            seed: 0,
            shuffle: true,
            validation: Validation::None,
            augment: Augment::none(),
            cache_features: true,
            features: FeatureOptions::default(),
            schedule: Schedule::Constant,
            early_stopping: None,
            checkpoint: None,
            backup: None,
            progress: true,
            verbose: true,
        }
    }
}

/// Metrics of one epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f32,
    /// Training accuracy.
    pub accuracy: f32,
    /// Validation loss, if there is validation data.
    pub val_loss: Option<f32>,
    /// Validation accuracy, if there is validation data.
    pub val_accuracy: Option<f32>,
    /// Learning rate used.
    pub learning_rate: f32,
    /// Wall time of the epoch (training and validation).
    pub seconds: f64,
}

/// What `fit` did.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// One entry per epoch, those restored from a backup included.
    pub epochs: Vec<EpochLog>,
    /// Epochs restored from a backup rather than run.
    pub resumed_epochs: usize,
    /// How many leading layers' outputs were computed once and cached (0 when not caching).
    pub cached_layers: usize,
    /// Seconds spent computing the cached features.
    pub cache_seconds: f64,
    /// Whether early stopping ended training.
    pub stopped_early: bool,
}

/// Loss and accuracy on a data set, with the raw outputs.
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// Mean loss.
    pub loss: f32,
    /// Accuracy.
    pub accuracy: f32,
    /// The model's outputs, [n, classes] row-major (samples that did not decode left out).
    pub outputs: Vec<f32>,
    /// The labels of those rows.
    pub labels: Vec<i32>,
}

/// A model's outputs on a data set.
#[derive(Clone, Debug)]
pub struct Predictions {
    /// The data set's index of each row (samples that did not decode are left out).
    pub indices: Vec<usize>,
    /// The outputs, one row per index, row-major.
    pub outputs: Vec<f32>,
}

/// How many leading layers of `model` are frozen and deterministic in training (no trainable
/// weight, no dropout), so that their outputs can be computed once.
pub fn cacheable_prefix(model: &Sequential) -> usize {
    model
        .layers()
        .iter()
        .take_while(|l| is_frozen(l.as_ref()))
        .count()
}

fn is_frozen(layer: &dyn Layer) -> bool {
    layer.draws().is_none()
        && layer.children().iter().all(|c| is_frozen(*c))
        && layer.weights().iter().all(|w| !w.trainable())
}

/// How far to cache the outputs of `model`'s frozen layers for data entering at layer `start`:
/// the whole frozen prefix for inputs; for features, only when what the further frozen layers
/// output is smaller than the features (a pooling, not a Flatten, which would only copy them).
fn worth_caching(model: &Sequential, start: usize, sample: &[usize]) -> usize {
    let prefix = cacheable_prefix(model).max(start);
    let values = |shape: &[usize]| shape.iter().product::<usize>();
    let shrinks =
        prefix > start && values(model.layers()[prefix - 1].output_shape()) < values(sample);
    if start == 0 || shrinks {
        prefix
    } else {
        start
    }
}

/// `layers` applied in order to `x`.
pub(crate) fn run_layers<'l>(
    layers: impl IntoIterator<Item = &'l dyn Layer>,
    x: &Var,
    training: bool,
) -> Result<Var> {
    let mut h = x.clone();
    for layer in layers {
        h = layer.forward(&h, training)?;
    }
    Ok(h)
}

/// The layers of a model slice, as layers.
fn as_layers(layers: &[Box<dyn Layer>]) -> impl Iterator<Item = &dyn Layer> {
    layers.iter().map(|l| l.as_ref())
}

/// The targets `loss` compares with, from integer labels.
fn targets(loss: &Loss, labels: &Tensor, outputs: &Var) -> Result<Tensor> {
    Ok(match loss {
        Loss::SparseCategoricalCrossentropy { .. } => labels.clone(),
        Loss::CategoricalCrossentropy { .. } => {
            one_hot(labels, outputs.dims().last().copied().unwrap_or(0))?
        }
        Loss::BinaryCrossentropy { .. } => labels
            .to_dtype(keel_tensor::DType::F32)?
            .reshape(outputs.shape().clone())?,
    })
}

/// Where `data` enters `model`: 0 when its samples are inputs, k when they are the outputs of
/// the model's first k layers (features those very layers computed: same names, frozen, same
/// weights).
fn entry(model: &Sequential, data: &dyn Samples, what: &str) -> Result<usize> {
    let Some(p) = data.provenance() else {
        if data.sample_shape() != model.input_shape() {
            return Err(Error::Mismatch(format!(
                "{what} samples have shape {:?}, the model `{}` expects {:?}",
                data.sample_shape(),
                model.name(),
                model.input_shape()
            )));
        }
        return Ok(0);
    };
    let k = p.layers.len();
    let layers = model.layers();
    let names: Vec<&str> = layers.iter().take(k).map(|l| l.name()).collect();
    let differ = || {
        Error::Mismatch(format!(
            "the {what} data are features of layers [{}], but the model `{}` starts with [{}]",
            p.layers.join(", "),
            model.name(),
            names.join(", ")
        ))
    };
    if k > layers.len() || names != p.layers {
        return Err(differ());
    }
    let prefix: Vec<&dyn Layer> = layers[..k].iter().map(|l| l.as_ref()).collect();
    if !prefix.iter().all(|l| is_frozen(*l)) {
        return Err(Error::Mismatch(format!(
            "the {what} data are features of [{}], which the model `{}` trains: features only \
             stand for frozen layers",
            p.layers.join(", "),
            model.name()
        )));
    }
    if fingerprint(&prefix)? != p.weights {
        return Err(Error::Mismatch(format!(
            "the {what} data are features of [{}] with other weights than the model `{}` has",
            p.layers.join(", "),
            model.name()
        )));
    }
    Ok(k)
}

/// Checks that the labels of `data` fit the outputs of `model` under `loss`.
fn check_labels(model: &Sequential, data: &dyn Samples, loss: &Loss, what: &str) -> Result<()> {
    if data.is_empty() {
        return Err(Error::Mismatch(format!("the {what} data is empty")));
    }
    let outputs = model.output_shape().last().copied().unwrap_or(0);
    let classes = data.classes();
    if !matches!(loss, Loss::BinaryCrossentropy { .. }) && outputs != classes.len() {
        return Err(Error::Mismatch(format!(
            "the model `{}` has {outputs} outputs but the {what} data has {} classes ({})",
            model.name(),
            classes.len(),
            classes.join(", ")
        )));
    }
    Ok(())
}

/// A learning rate an optimizer can take: finite and above 0.
pub fn check_learning_rate(lr: f32) -> Result<()> {
    if lr.is_finite() && lr > 0.0 {
        return Ok(());
    }
    Err(Error::Mismatch(format!(
        "a learning rate of {lr}: it must be a finite number above 0 (Adam's usual one is 1e-3)"
    )))
}

fn check_config(config: &FitConfig<'_>) -> Result<()> {
    if config.epochs == 0 {
        return Err(Error::Mismatch("epochs must be at least 1".into()));
    }
    if config.batch_size == 0 {
        return Err(Error::Mismatch("the batch size must be at least 1".into()));
    }
    if let Validation::Split(f) = config.validation {
        if !(f > 0.0 && f < 1.0) {
            return Err(Error::Mismatch(format!(
                "a validation split of {f}: it must be between 0 and 1"
            )));
        }
    }
    Ok(())
}

/// The batches of a pass over data that is not trained on (features, evaluation).
fn inference_batches(config_batch: usize, workers: usize) -> BatchOptions {
    BatchOptions {
        batch_size: config_batch.max(32),
        workers,
        ..BatchOptions::new(1)
    }
}

/// Runs `layers` on `batch` in inference mode: its outputs as a tensor.
pub(crate) fn infer<'l>(
    layers: impl IntoIterator<Item = &'l dyn Layer>,
    batch: Batch,
    device: &Device,
) -> Result<Tensor> {
    let x = Tensor::from_vec(batch.values, batch.dims, device)?;
    Ok(no_grad(|| run_layers(layers, &Var::constant(x), false))?
        .tensor()
        .clone())
}

fn evaluate_layers(
    layers: &[Box<dyn Layer>],
    loss: &Loss,
    data: &dyn Samples,
    batches: &BatchOptions,
    device: &Device,
) -> Result<Evaluation> {
    let mut outputs = Vec::new();
    let mut labels = Vec::with_capacity(data.len());
    let mut total = 0.0f64;
    let order: Vec<usize> = (0..data.len()).collect();
    for_each_batch(data, &order, batches, &Augment::none(), 0, |batch| {
        let y = Tensor::from_i32(batch.labels.clone(), [batch.labels.len()], device)?;
        let batch_indices = batch.indices.clone();
        labels.extend(&batch.labels);
        let out = Var::constant(infer(as_layers(layers), batch, device)?);
        let l = no_grad(|| loss.compute(&out, &targets(loss, &y, &out)?))?;
        let values = out.tensor().to_vec()?;
        let value = l.tensor().to_scalar()?;
        if !value.is_finite() {
            return Err(non_finite_outputs(data, &batch_indices, &values));
        }
        total += f64::from(value) * y.elem_count() as f64;
        outputs.extend(values);
        Ok::<(), Error>(())
    })?;
    if labels.is_empty() {
        return Err(Error::Mismatch(
            "no sample of the data could be read".into(),
        ));
    }
    Ok(Evaluation {
        loss: (total / labels.len() as f64) as f32,
        accuracy: accuracy(&outputs, &labels),
        outputs,
        labels,
    })
}

/// Loss and accuracy of `layers` on validation `data`, summed on the device and read back once.
/// A non-finite loss is looked into again batch by batch, to name the sample.
fn validate(
    layers: &[Box<dyn Layer>],
    loss: &Loss,
    data: &dyn Samples,
    batches: &BatchOptions,
    device: &Device,
) -> Result<DeviceSums> {
    let mut sums = DeviceSums::default();
    let order: Vec<usize> = (0..data.len()).collect();
    for_each_batch(data, &order, batches, &Augment::none(), 0, |batch| {
        let y = Tensor::from_i32(batch.labels.clone(), [batch.labels.len()], device)?;
        let out = Var::constant(infer(as_layers(layers), batch, device)?);
        let l = no_grad(|| loss.compute(&out, &targets(loss, &y, &out)?))?;
        sums.push(l.tensor(), out.tensor(), &y)
    })?;
    if let Err(e) = sums.flush(|batch, value| {
        Error::Mismatch(format!("the validation loss of batch {batch} is {value}"))
    }) {
        // Look again, keeping the outputs, to name the sample.
        evaluate_layers(layers, loss, data, batches, device)?;
        return Err(e);
    }
    if sums.seen() == 0 {
        return Err(Error::Mismatch(
            "no sample of the validation data could be read".into(),
        ));
    }
    Ok(sums)
}

/// Loss, accuracy and outputs of `model` on `data` (inputs, or features of its first layers),
/// in inference mode.
pub fn evaluate(
    model: &Sequential,
    loss: &Loss,
    data: &dyn Samples,
    batch_size: usize,
    device: &Device,
) -> Result<Evaluation> {
    let start = entry(model, data, "evaluation")?;
    check_labels(model, data, loss, "evaluation")?;
    let batches = inference_batches(batch_size, default_workers());
    evaluate_layers(&model.layers()[start..], loss, data, &batches, device)
}

/// The model's outputs on every sample of `data` (inputs, or features of its first layers).
pub fn predict(
    model: &Sequential,
    data: &dyn Samples,
    batch_size: usize,
    device: &Device,
) -> Result<Predictions> {
    let start = entry(model, data, "prediction")?;
    let layers = &model.layers()[start..];
    let batches = inference_batches(batch_size, default_workers());
    let order: Vec<usize> = (0..data.len()).collect();
    let mut predictions = Predictions {
        indices: Vec::with_capacity(data.len()),
        outputs: Vec::new(),
    };
    for_each_batch(data, &order, &batches, &Augment::none(), 0, |batch| {
        let indices = batch.indices.clone();
        let values = infer(as_layers(layers), batch, device)?.to_vec()?;
        if values.iter().any(|v| !v.is_finite()) {
            return Err(non_finite_outputs(data, &indices, &values));
        }
        predictions.indices.extend(indices);
        predictions.outputs.extend(values);
        Ok::<(), Error>(())
    })?;
    Ok(predictions)
}

/// The error for a batch whose outputs (`values`, row-major) hold NaN or ±∞: which sample,
/// and what that means.
fn non_finite_outputs(data: &dyn Samples, indices: &[usize], values: &[f32]) -> Error {
    let per_sample = values.len() / indices.len().max(1);
    let row = values
        .chunks(per_sample.max(1))
        .position(|r| r.iter().any(|v| !v.is_finite()));
    let culprit = row.map_or_else(|| "a sample".to_string(), |r| data.describe(indices[r]));
    Error::Mismatch(format!(
        "the model's outputs for {culprit} are not finite (NaN or ±∞): a weight of the model or \
         a value of the input is"
    ))
}

/// What the model file of a checkpoint says besides the weights.
fn model_info(data: &dyn Samples) -> ModelInfo {
    ModelInfo {
        classes: data.classes().to_vec(),
        preprocessing: data.preset().map(|p| p.name().to_string()),
    }
}

/// Trains the trainable parameters of `model` on `data` with `optimizer` and `loss`. `data`
/// holds inputs, or features of the model's first layers from
/// [`extract_features`](crate::extract_features) (which are then not run again).
pub fn fit(
    model: &Sequential,
    optimizer: &mut dyn Optimizer,
    loss: &Loss,
    data: &dyn Samples,
    config: &FitConfig<'_>,
    device: &Device,
) -> Result<History> {
    check_config(config)?;
    check_learning_rate(optimizer.learning_rate())?;
    let mut state = TrainingState::new(config.seed);
    if let Some(path) = config.backup.as_ref().filter(|p| p.exists()) {
        state = checkpoint::restore(path, model, optimizer, device)?;
        if config.verbose {
            println!(
                "resuming from {} after epoch {}",
                path.display(),
                state.history.len()
            );
        }
    }
    let start = entry(model, data, "training")?;
    check_labels(model, data, loss, "training")?;
    if data.classes().len() < 2 && loss.sparse() {
        return Err(Error::Mismatch(format!(
            "the training data has {} class{} ({}): a classifier needs at least 2",
            data.classes().len(),
            if data.classes().len() == 1 { "" } else { "es" },
            data.classes().join(", ")
        )));
    }
    let held_out: (Subset<'_>, Subset<'_>);
    let (train, validation): (&dyn Samples, Option<&dyn Samples>) = match config.validation {
        Validation::None => (data, None),
        Validation::Split(fraction) => {
            held_out = split(data, fraction, config.seed);
            if held_out.1.is_empty() || held_out.0.is_empty() {
                return Err(Error::Mismatch(format!(
                    "a validation split of {fraction} of {} samples leaves {} for validation \
                     and {} for training: use more data or another fraction",
                    data.len(),
                    held_out.1.len(),
                    held_out.0.len()
                )));
            }
            (&held_out.0, Some(&held_out.1))
        }
        Validation::Data(v) => {
            if entry(model, v, "validation")? != start {
                return Err(Error::Mismatch(
                    "the training and validation data enter the model at different layers \
                     (one holds features, the other inputs)"
                        .into(),
                ));
            }
            check_labels(model, v, loss, "validation")?;
            (data, Some(v))
        }
    };
    let params = model.trainable_params();
    if params.is_empty() {
        return Err(Error::Mismatch(format!(
            "the model `{}` has no trainable parameter: unfreeze a layer or add a head",
            model.name()
        )));
    }
    if let Some(p) = params.iter().find(|p| p.value().dtype() != DType::F32) {
        return Err(Error::Mismatch(format!(
            "parameter `{}` is trainable but kept as {} (Sequential::keep_frozen_weights_f16): \
             call Sequential::f32_weights before training it",
            p.name(),
            p.value().dtype()
        )));
    }
    let mut history = History {
        resumed_epochs: state.history.len(),
        ..History::default()
    };
    let eval_batches = inference_batches(config.batch_size, config.workers);
    // Feature caching: run the frozen prefix once.
    let prefix = if config.cache_features && !config.augment.is_active() {
        worth_caching(model, start, data.sample_shape())
    } else {
        start
    };
    let samples = train.len() + validation.map_or(0, |v| v.len());
    let features = match prefix > start {
        true => feature_memory(model, prefix, samples, &config.features),
        false => 0,
    };
    training_memory(model, optimizer, config.batch_size, prefix, features)
        .check(&format!("training `{}`", model.name()))?;
    let cached: Option<(Features, Option<Features>)> =
        if prefix > start && !state.finished(config.epochs) {
            let layers: Vec<&dyn Layer> = model.layers()[start..prefix]
                .iter()
                .map(|l| l.as_ref())
                .collect();
            let extract = |d: &dyn Samples, what: &str| {
                let mut options = config.features.clone();
                options.progress &= config.progress;
                extract_features(&layers, d, &options, &eval_batches, device, what)
            };
            let t = extract(train, "training data")?;
            let v = validation
                .map(|v| extract(v, "validation data"))
                .transpose()?;
            history.cached_layers = prefix;
            history.cache_seconds = t.seconds() + v.as_ref().map_or(0.0, Features::seconds);
            if config.verbose {
                println!(
                    "features of {} layer{} cached in {:.1}s ({:.0} MB, {})",
                    prefix - start,
                    if prefix - start == 1 { "" } else { "s" },
                    history.cache_seconds,
                    (t.bytes() + v.as_ref().map_or(0, Features::bytes)) as f64 / 1e6,
                    if t.in_memory() {
                        "in memory"
                    } else {
                        "on disk"
                    }
                );
            }
            Some((t, v))
        } else {
            None
        };
    let (train, validation, first): (&dyn Samples, Option<&dyn Samples>, usize) = match &cached {
        Some((t, v)) => (t, v.as_ref().map(|v| v as &dyn Samples), prefix),
        None => (train, validation, start),
    };
    let layers = &model.layers()[first..];
    let train_batches = BatchOptions {
        batch_size: config.batch_size,
        workers: config.workers,
        ..BatchOptions::new(1)
    };
    let base_lr = optimizer.learning_rate();
    let mut rng = Rng::new(state.rng);
    for epoch in state.history.len()..config.epochs {
        if state.stopped_early {
            break;
        }
        let started = Instant::now();
        let lr = config.schedule.rate(base_lr, epoch);
        optimizer.set_learning_rate(lr);
        let mut order: Vec<usize> = (0..train.len()).collect();
        if config.shuffle {
            rng.shuffle(&mut order);
        }
        let bar = progress_bar(
            config.progress,
            train.len() as u64,
            format!("epoch {}/{}", epoch + 1, config.epochs),
        );
        let mut sums = DeviceSums::default();
        let stopped = |step: usize, value: f32| {
            Error::Mismatch(format!(
                "epoch {}, step {step}: the loss is {value} (learning rate {lr}); training stopped",
                epoch + 1
            ))
        };
        let epoch_seed = config.seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for_each_batch(
            train,
            &order,
            &train_batches,
            &config.augment,
            epoch_seed,
            |batch| -> Result<()> {
                let n = batch.labels.len();
                let y = Tensor::from_i32(batch.labels.clone(), [n], device)?;
                let x = Tensor::from_vec(batch.values, batch.dims, device)?;
                let out = run_layers(as_layers(layers), &Var::constant(x), true)?;
                let l = loss.compute(&out, &targets(loss, &y, &out)?)?;
                sums.push(l.tensor(), out.tensor(), &y)?;
                l.backward()?;
                optimizer.step(&params)?;
                // The GPU starts on this step while the next batch is read and uploaded.
                device.flush();
                bar.inc(n as u64);
                // Nothing waits for the GPU within a step: the sums come back at the bar's
                // refresh points (with the bar hidden, at the end of the epoch).
                if config.progress && sums.pending() >= REFRESH_STEPS {
                    sums.flush(stopped)?;
                    bar.set_message(format!(
                        "loss {:.4} acc {:.4}",
                        sums.loss(),
                        sums.accuracy()
                    ));
                }
                Ok(())
            },
        )?;
        sums.flush(stopped)?;
        bar.finish_and_clear();
        if sums.seen() == 0 {
            return Err(Error::Mismatch("no training sample could be read".into()));
        }
        let val = validation
            .map(|v| validate(layers, loss, v, &eval_batches, device))
            .transpose()?;
        let log = EpochLog {
            epoch: epoch + 1,
            loss: sums.loss(),
            accuracy: sums.accuracy(),
            val_loss: val.as_ref().map(|v| v.loss()),
            val_accuracy: val.as_ref().map(|v| v.accuracy()),
            learning_rate: lr,
            seconds: started.elapsed().as_secs_f64(),
        };
        if config.verbose {
            let mut line = format!(
                "Epoch {}/{} - {:.1}s - loss: {:.4} - accuracy: {:.4}",
                log.epoch, config.epochs, log.seconds, log.loss, log.accuracy
            );
            if let (Some(vl), Some(va)) = (log.val_loss, log.val_accuracy) {
                line += &format!(" - val_loss: {vl:.4} - val_accuracy: {va:.4}");
            }
            println!("{line}");
        }
        let monitored = log.val_loss.unwrap_or(log.loss);
        state.history.push(log);
        let min_delta = config.early_stopping.map_or(0.0, |e| e.min_delta);
        if state.best.is_none_or(|best| monitored < best - min_delta) {
            state.best = Some(monitored);
            state.since_best = 0;
            if let Some(path) = &config.checkpoint {
                save_model(model, &model_info(data), path)?;
            }
        } else {
            state.since_best += 1;
            state.stopped_early = config
                .early_stopping
                .is_some_and(|e| state.since_best >= e.patience);
        }
        state.rng = rng.state();
        if let Some(path) = &config.backup {
            checkpoint::save(path, model, &model_info(data), optimizer, &state)?;
        }
    }
    optimizer.set_learning_rate(base_lr);
    history.epochs = state.history;
    history.stopped_early = state.stopped_early;
    Ok(history)
}
