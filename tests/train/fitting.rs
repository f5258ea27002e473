//! `fit`: cached features give the uncached run's results; early stopping; checkpoints; errors.

use crate::harness::{Rng, Runner};
use keel::data::Dataset;
use keel::layers::layers::{batch_norm, conv2d, dense, global_avg_pool2d, relu};
use keel::layers::{load_weights, sequential, Layer, LoadOptions, Sequential};
use keel::train::{fit, Adam, EarlyStopping, FitConfig, History, Loss, Validation};
use keel::{Device, Padding};

/// A frozen two-conv "backbone" with batch norm, then a trainable GAP → Dense(3) head.
fn model(dev: &Device) -> keel::layers::Result<Sequential> {
    let backbone = sequential("backbone")
        .add(conv2d(6, 3).padding(Padding::Same))
        .add(batch_norm())
        .add(relu())
        .add(conv2d(8, 3).strides(2))
        .build(&[8, 8, 3], dev, 3)?;
    backbone.set_trainable(false);
    sequential("model")
        .add(keel::layers::Prebuilt(backbone))
        .add(global_avg_pool2d())
        .add(dense(3))
        .build(&[8, 8, 3], dev, 4)
}

fn dataset(rng: &mut Rng, n: usize) -> Dataset {
    Dataset {
        images: rng.values(n * 8 * 8 * 3, -1.0, 1.0),
        labels: (0..n as i32).map(|i| i % 3).collect(),
        shape: vec![8, 8, 3],
        classes: vec!["a".into(), "b".into(), "c".into()],
    }
}

fn train(dev: &Device, data: &Dataset, cache: bool) -> keel::train::Result<(History, Vec<f32>)> {
    let m = model(dev)?;
    let config = FitConfig {
        epochs: 3,
        batch_size: 8,
        seed: 11,
        validation: Validation::Split(0.25),
        cache_features: cache,
        progress: false,
        verbose: false,
        ..FitConfig::default()
    };
    let loss = Loss::SparseCategoricalCrossentropy { from_logits: true };
    let h = fit(&m, &mut Adam::new(0.01), &loss, data, &config, dev)?;
    let weights = m
        .trainable_params()
        .iter()
        .flat_map(|p| p.value().to_vec().unwrap_or_default())
        .collect();
    Ok((h, weights))
}

pub fn cache_equals_uncached(t: &mut Runner, rng: &mut Rng) {
    let data = dataset(rng, 40);
    for dev in t.devices().to_vec() {
        match (train(&dev, &data, true), train(&dev, &data, false)) {
            (Ok((hc, wc)), Ok((hu, wu))) => {
                // The frozen backbone and the parameter-free pooling after it.
                t.expect(
                    hc.cached_layers == 2 && hu.cached_layers == 0,
                    "the frozen prefix is cached only when asked",
                    || format!("{} / {}", hc.cached_layers, hu.cached_layers),
                );
                let losses = |h: &History| {
                    h.epochs
                        .iter()
                        .flat_map(|e| [e.loss, e.val_loss.unwrap_or(f32::NAN)])
                        .collect::<Vec<_>>()
                };
                let (lc, lu) = (losses(&hc), losses(&hu));
                let diff = lc
                    .iter()
                    .zip(&lu)
                    .chain(wc.iter().zip(&wu))
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                t.expect(
                    diff < 1e-4 && wc.len() == wu.len(),
                    "cached and uncached training agree (losses and weights)",
                    || format!("max difference {diff:.2e} on {dev}"),
                );
            }
            (Err(e), _) | (_, Err(e)) => t.expect(false, "fit", || format!("{e} on {dev}")),
        }
    }
}

pub fn early_stopping_and_checkpoint(t: &mut Runner, rng: &mut Rng) {
    let dev = Device::cpu();
    let data = dataset(rng, 24);
    let path = std::env::temp_dir().join(format!(
        "keel-train-ckpt-{}.safetensors",
        std::process::id()
    ));
    let outcome = (|| -> keel::train::Result<(History, bool)> {
        let m = model(&dev)?;
        let config = FitConfig {
            epochs: 10,
            batch_size: 8,
            validation: Validation::Split(0.25),
            early_stopping: Some(EarlyStopping {
                patience: 1,
                min_delta: 1e9,
            }),
            checkpoint: Some(path.clone()),
            progress: false,
            verbose: false,
            ..FitConfig::default()
        };
        let h = fit(
            &m,
            &mut Adam::new(0.01),
            &Loss::SparseCategoricalCrossentropy { from_logits: true },
            &data,
            &config,
            &dev,
        )?;
        let fresh = model(&dev)?;
        let report = load_weights(
            &fresh,
            &path,
            LoadOptions {
                strict: true,
                ..LoadOptions::default()
            },
        )?;
        Ok((h, report.loaded == fresh.weights().len()))
    })();
    match outcome {
        Ok((h, loaded)) => {
            t.expect(
                h.stopped_early && h.epochs.len() == 2,
                "early stopping after `patience` epochs without improvement",
                || {
                    format!(
                        "{} epochs, stopped early: {}",
                        h.epochs.len(),
                        h.stopped_early
                    )
                },
            );
            t.expect(
                loaded,
                "the best checkpoint is a loadable weights file",
                || "not loaded".into(),
            );
        }
        Err(e) => t.expect(false, "early stopping", || e.to_string()),
    }
    let _ = std::fs::remove_file(&path);
}

pub fn bad_input(t: &mut Runner, rng: &mut Rng) {
    let dev = Device::cpu();
    let m = model(&dev).expect("model");
    let loss = Loss::SparseCategoricalCrossentropy { from_logits: true };
    let quiet = FitConfig {
        progress: false,
        verbose: false,
        ..FitConfig::default()
    };
    let mut five = dataset(rng, 10);
    five.classes = (0..5).map(|i| format!("class{i}")).collect();
    let e = fit(&m, &mut Adam::new(0.01), &loss, &five, &quiet, &dev)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    t.expect(
        e.contains("3 outputs") && e.contains("5 classes"),
        "a class count that does not match the head",
        || e.clone(),
    );
    let mut wrong = dataset(rng, 4);
    wrong.shape = vec![8, 8, 1];
    wrong.images.truncate(4 * 64);
    let e = fit(&m, &mut Adam::new(0.01), &loss, &wrong, &quiet, &dev)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    t.expect(
        e.contains("[8, 8, 1]") && e.contains("[8, 8, 3]"),
        "samples of the wrong shape",
        || e.clone(),
    );
    m.set_trainable(false);
    let e = fit(
        &m,
        &mut Adam::new(0.01),
        &loss,
        &dataset(rng, 4),
        &quiet,
        &dev,
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    t.expect(
        e.contains("no trainable parameter"),
        "a fully frozen model",
        || e.clone(),
    );
}
