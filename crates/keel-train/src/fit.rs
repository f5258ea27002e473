//! `fit`, `evaluate` and `predict` in Keras' spirit: batches, seeded shuffling, validation,
//! a progress bar, a per-epoch history, early stopping, the best checkpoint — and feature
//! caching when the first layers are frozen.

use crate::loss::Loss;
use crate::metrics::accuracy;
use crate::optimizer::Optimizer;
use crate::schedule::Schedule;
use crate::{Error, Result};
use indicatif::{ProgressBar, ProgressStyle};
use keel_autograd::{no_grad, one_hot, Var};
use keel_data::{Augment, Dataset, Rng};
use keel_layers::{save_weights, Layer, Sequential};
use keel_tensor::{Device, Tensor};
use std::path::PathBuf;
use std::time::Instant;

/// Where validation data comes from.
#[derive(Clone, Debug, Default)]
pub enum Validation {
    /// No validation.
    #[default]
    None,
    /// Hold out this fraction of the training data (shuffled by the seed) — Keras'
    /// `validation_split`.
    Split(f32),
    /// A separate labelled set — Keras' `validation_data`.
    Data(Dataset),
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
pub struct FitConfig {
    /// Passes over the training data.
    pub epochs: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Seed of the shuffles, the validation split and augmentation.
    pub seed: u64,
    /// Shuffle the training data each epoch.
    pub shuffle: bool,
    /// Validation data.
    pub validation: Validation,
    /// Random augmentation of training batches.
    pub augment: Augment,
    /// Run the frozen first layers once per sample and train the rest on the cached features
    /// (only when no augmentation is on; the results equal the uncached run's).
    pub cache_features: bool,
    /// Learning rate by epoch, from the optimizer's rate at the start of `fit`.
    pub schedule: Schedule,
    /// Early stopping.
    pub early_stopping: Option<EarlyStopping>,
    /// Save the weights here (atomically) whenever the monitored loss improves.
    pub checkpoint: Option<PathBuf>,
    /// Show a progress bar with ETA, live loss and accuracy (on a terminal).
    pub progress: bool,
    /// Print one line per epoch.
    pub verbose: bool,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig {
            epochs: 1,
            batch_size: 32,
            seed: 0,
            shuffle: true,
            validation: Validation::None,
            augment: Augment::none(),
            cache_features: true,
            schedule: Schedule::Constant,
            early_stopping: None,
            checkpoint: None,
            progress: true,
            verbose: true,
        }
    }
}

/// Metrics of one epoch.
#[derive(Clone, Debug)]
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
    /// One entry per epoch run.
    pub epochs: Vec<EpochLog>,
    /// How many leading layers were run once and cached (0 when not caching).
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
    /// The model's outputs, [n, classes] row-major.
    pub outputs: Vec<f32>,
}

/// Leading layers that are frozen and deterministic in training (no trainable weight, no
/// dropout): their outputs can be computed once.
fn frozen_prefix(model: &Sequential) -> usize {
    model
        .layers()
        .iter()
        .take_while(|l| l.kind() != "Dropout" && l.weights().iter().all(|w| !w.trainable()))
        .count()
}

fn run_layers(layers: &[Box<dyn Layer>], x: &Var, training: bool) -> Result<Var> {
    let mut h = x.clone();
    for layer in layers {
        h = layer.forward(&h, training)?;
    }
    Ok(h)
}

/// The outputs of `layers` on every sample of `data`, as a new data set with the same labels.
fn transform(
    layers: &[Box<dyn Layer>],
    data: &Dataset,
    batch: usize,
    device: &Device,
) -> Result<Dataset> {
    let mut values = Vec::new();
    let mut shape = Vec::new();
    let all: Vec<usize> = (0..data.len()).collect();
    for chunk in all.chunks(batch.max(1)) {
        let (x, _) = data.batch(chunk, &Augment::none(), 0, device)?;
        let y = no_grad(|| run_layers(layers, &Var::constant(x), false))?;
        shape = y.dims()[1..].to_vec();
        values.extend(y.tensor().to_vec()?);
    }
    Ok(Dataset {
        images: values,
        labels: data.labels.clone(),
        shape,
        classes: data.classes.clone(),
    })
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

/// Checks that `data` fits `model` (sample shape, number of classes).
fn check_fit(model: &Sequential, data: &Dataset, loss: &Loss, what: &str) -> Result<()> {
    if data.shape != model.input_shape() {
        return Err(Error::Mismatch(format!(
            "{what} samples have shape {:?}, the model `{}` expects {:?}",
            data.shape,
            model.name(),
            model.input_shape()
        )));
    }
    let outputs = model.output_shape().last().copied().unwrap_or(0);
    if !matches!(loss, Loss::BinaryCrossentropy { .. }) && outputs != data.classes.len() {
        return Err(Error::Mismatch(format!(
            "the model `{}` has {outputs} outputs but the {what} data has {} classes ({})",
            model.name(),
            data.classes.len(),
            data.classes.join(", ")
        )));
    }
    if data.is_empty() {
        return Err(Error::Mismatch(format!("the {what} data is empty")));
    }
    Ok(())
}

fn evaluate_layers(
    layers: &[Box<dyn Layer>],
    loss: &Loss,
    data: &Dataset,
    batch: usize,
    device: &Device,
) -> Result<Evaluation> {
    let mut outputs = Vec::with_capacity(data.len());
    let mut total = 0.0f64;
    let all: Vec<usize> = (0..data.len()).collect();
    for chunk in all.chunks(batch.max(1)) {
        let (x, y) = data.batch(chunk, &Augment::none(), 0, device)?;
        let (out, l) = no_grad(|| -> Result<(Var, Var)> {
            let out = run_layers(layers, &Var::constant(x), false)?;
            let l = loss.compute(&out, &targets(loss, &y, &out)?)?;
            Ok((out, l))
        })?;
        total += f64::from(l.tensor().to_scalar()?) * chunk.len() as f64;
        outputs.extend(out.tensor().to_vec()?);
    }
    Ok(Evaluation {
        loss: (total / data.len().max(1) as f64) as f32,
        accuracy: accuracy(&outputs, &data.labels),
        outputs,
    })
}

/// Loss, accuracy and outputs of `model` on `data`, in inference mode.
pub fn evaluate(
    model: &Sequential,
    loss: &Loss,
    data: &Dataset,
    batch_size: usize,
    device: &Device,
) -> Result<Evaluation> {
    check_fit(model, data, loss, "evaluation")?;
    evaluate_layers(model.layers(), loss, data, batch_size, device)
}

/// The model's outputs on every sample of `data` ([n, ...output shape], row-major).
pub fn predict(
    model: &Sequential,
    data: &Dataset,
    batch_size: usize,
    device: &Device,
) -> Result<Vec<f32>> {
    Ok(transform(model.layers(), data, batch_size, device)?.images)
}

fn progress_bar(config: &FitConfig, steps: usize, epoch: usize) -> ProgressBar {
    if !config.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {elapsed}<{eta} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{}/{}", epoch + 1, config.epochs));
    bar
}

/// Trains the trainable parameters of `model` on `data` with `optimizer` and `loss`.
pub fn fit(
    model: &Sequential,
    optimizer: &mut dyn Optimizer,
    loss: &Loss,
    data: &Dataset,
    config: &FitConfig,
    device: &Device,
) -> Result<History> {
    check_fit(model, data, loss, "training")?;
    let (train, validation) = match &config.validation {
        Validation::None => (data.clone(), None),
        Validation::Split(f) => {
            let (t, v) = data.split(*f, config.seed);
            (t, Some(v))
        }
        Validation::Data(v) => {
            check_fit(model, v, loss, "validation")?;
            (data.clone(), Some(v.clone()))
        }
    };
    let params = model.trainable_params();
    if params.is_empty() {
        return Err(Error::Mismatch(format!(
            "the model `{}` has no trainable parameter: unfreeze a layer or add a head",
            model.name()
        )));
    }
    let mut history = History::default();
    // Feature caching: run the frozen prefix once.
    let prefix = if config.cache_features && !config.augment.is_active() {
        frozen_prefix(model)
    } else {
        0
    };
    let layers = &model.layers()[prefix..];
    let (train, validation) = if prefix > 0 {
        let start = Instant::now();
        let head = &model.layers()[..prefix];
        let t = transform(head, &train, config.batch_size.max(32), device)?;
        let v = validation
            .map(|v| transform(head, &v, config.batch_size.max(32), device))
            .transpose()?;
        history.cached_layers = prefix;
        history.cache_seconds = start.elapsed().as_secs_f64();
        (t, v)
    } else {
        (train, validation)
    };
    let base_lr = optimizer.learning_rate();
    let mut best = f32::INFINITY;
    let mut since_best = 0;
    let mut rng = Rng::new(config.seed);
    for epoch in 0..config.epochs {
        let start = Instant::now();
        let lr = config.schedule.rate(base_lr, epoch);
        optimizer.set_learning_rate(lr);
        let mut order: Vec<usize> = (0..train.len()).collect();
        if config.shuffle {
            rng.shuffle(&mut order);
        }
        let steps = order.len().div_ceil(config.batch_size.max(1));
        let bar = progress_bar(config, steps, epoch);
        let (mut loss_sum, mut hits, mut seen) = (0.0f64, 0.0f64, 0usize);
        for (step, chunk) in order.chunks(config.batch_size.max(1)).enumerate() {
            let (x, y) = train.batch(
                chunk,
                &config.augment,
                config.seed ^ ((epoch * steps + step) as u64).wrapping_mul(0x9E37_79B9),
                device,
            )?;
            let out = run_layers(layers, &Var::constant(x), true)?;
            let l = loss.compute(&out, &targets(loss, &y, &out)?)?;
            l.backward()?;
            optimizer.step(&params)?;
            let n = chunk.len();
            loss_sum += f64::from(l.tensor().to_scalar()?) * n as f64;
            let labels: Vec<i32> = chunk.iter().map(|&i| train.labels[i]).collect();
            hits += f64::from(accuracy(&out.tensor().to_vec()?, &labels)) * n as f64;
            seen += n;
            bar.set_message(format!(
                "loss {:.4} acc {:.4}",
                loss_sum / seen as f64,
                hits / seen as f64
            ));
            bar.inc(1);
        }
        bar.finish_and_clear();
        let val = validation
            .as_ref()
            .map(|v| evaluate_layers(layers, loss, v, config.batch_size.max(32), device))
            .transpose()?;
        let log = EpochLog {
            epoch: epoch + 1,
            loss: (loss_sum / seen.max(1) as f64) as f32,
            accuracy: (hits / seen.max(1) as f64) as f32,
            val_loss: val.as_ref().map(|v| v.loss),
            val_accuracy: val.as_ref().map(|v| v.accuracy),
            learning_rate: lr,
            seconds: start.elapsed().as_secs_f64(),
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
        history.epochs.push(log);
        let min_delta = config.early_stopping.map_or(0.0, |e| e.min_delta);
        if monitored < best - min_delta {
            best = monitored;
            since_best = 0;
            if let Some(path) = &config.checkpoint {
                save_weights(model, path)?;
            }
        } else {
            since_best += 1;
            if config
                .early_stopping
                .is_some_and(|e| since_best >= e.patience)
            {
                history.stopped_early = true;
                break;
            }
        }
    }
    optimizer.set_learning_rate(base_lr);
    Ok(history)
}
