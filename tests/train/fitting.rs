//! `fit`: cached features give the uncached run's results, in memory or spilled to disk, and
//! shared between models; early stopping; whole-model checkpoints; resuming equals not
//! stopping; a checkpoint write killed at any moment; errors.

use crate::data::{random_image, scratch};
use crate::harness::{Rng, Runner};
use keel::data::{BatchOptions, Dataset, ImageOptions, Images, Preset, Samples};
use keel::layers::layers::{batch_norm, conv2d, dense, dropout, global_avg_pool2d, relu};
use keel::layers::{load_model, save_model, sequential, Layer, ModelInfo, Sequential};
use keel::train::{
    extract_features, fit, Adam, EarlyStopping, FeatureOptions, FitConfig, History, Loss,
    MemoryBudget, Precision, Validation,
};
use keel::{Device, Padding};
use std::path::Path;

/// A frozen two-conv "backbone" with batch norm, then a trainable GAP → Dense(3) head (with
/// dropout before it when `dropout_rate` is set).
fn model(dev: &Device, dropout_rate: Option<f32>) -> keel::layers::Result<Sequential> {
    let backbone = sequential("backbone")
        .add(conv2d(6, 3).padding(Padding::Same))
        .add(batch_norm())
        .add(relu())
        .add(conv2d(8, 3).strides(2))
        .build(&[8, 8, 3], dev, 3)?;
    backbone.set_trainable(false);
    let mut spec = sequential("model")
        .add(keel::layers::Prebuilt(backbone))
        .add(global_avg_pool2d())
        .add(dense(5));
    if let Some(rate) = dropout_rate {
        spec = spec.add(dropout(rate));
    }
    spec.add(dense(3)).build(&[8, 8, 3], dev, 4)
}

fn dataset(rng: &mut Rng, n: usize) -> Dataset {
    Dataset {
        images: rng.values(n * 8 * 8 * 3, -1.0, 1.0),
        labels: (0..n as i32).map(|i| i % 3).collect(),
        shape: vec![8, 8, 3],
        classes: vec!["a".into(), "b".into(), "c".into()],
    }
}

/// A folder of `n` random PNGs (10×9, resized to 8×8) in three classes.
fn image_folder(rng: &mut Rng, name: &str, n: usize) -> std::path::PathBuf {
    let root = scratch(name);
    for i in 0..n {
        let class = root.join(["a", "b", "c"][i % 3]);
        std::fs::create_dir_all(&class).expect("dir");
        random_image(rng, 10, 9)
            .save(class.join(format!("{i:03}.png")))
            .expect("png");
    }
    root
}

fn quiet<'a>() -> FitConfig<'a> {
    FitConfig {
        epochs: 3,
        batch_size: 8,
        seed: 11,
        validation: Validation::Split(0.25),
        progress: false,
        verbose: false,
        ..FitConfig::default()
    }
}

fn loss() -> Loss {
    Loss::SparseCategoricalCrossentropy { from_logits: true }
}

/// The values of every weight of `m`, in order.
fn weights_of(m: &dyn Layer) -> Vec<f32> {
    m.weights()
        .iter()
        .flat_map(|w| w.param.value().to_vec().unwrap_or_default())
        .collect()
}

/// The names of the files in `dir`, sorted.
fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Each epoch's losses and accuracies, in order.
fn curve(h: &History) -> Vec<f32> {
    h.epochs
        .iter()
        .flat_map(|e| {
            [
                e.loss,
                e.accuracy,
                e.val_loss.unwrap_or(f32::NAN),
                e.val_accuracy.unwrap_or(f32::NAN),
            ]
        })
        .collect()
}

/// Trains a fresh model on `data` with `config`: its history and final weights.
fn train(
    dev: &Device,
    data: &dyn Samples,
    config: &FitConfig<'_>,
    dropout_rate: Option<f32>,
) -> keel::train::Result<(History, Vec<f32>)> {
    let m = model(dev, dropout_rate)?;
    let h = fit(&m, &mut Adam::new(0.01), &loss(), data, config, dev)?;
    Ok((h, weights_of(&m)))
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            if x.to_bits() == y.to_bits() {
                0.0
            } else {
                (x - y).abs().max(f32::MIN_POSITIVE)
            }
        })
        .fold(0.0f32, f32::max)
}

pub fn cache_equals_uncached(t: &mut Runner, rng: &mut Rng) {
    let data = dataset(rng, 40);
    for dev in t.devices().to_vec() {
        let uncached = FitConfig {
            cache_features: false,
            ..quiet()
        };
        match (
            train(&dev, &data, &quiet(), None),
            train(&dev, &data, &uncached, None),
        ) {
            (Ok((hc, wc)), Ok((hu, wu))) => {
                // The frozen backbone and the parameter-free pooling after it.
                t.expect(
                    hc.cached_layers == 2 && hu.cached_layers == 0,
                    "the frozen prefix is cached only when asked",
                    || format!("{} / {}", hc.cached_layers, hu.cached_layers),
                );
                let diff = max_difference(&curve(&hc), &curve(&hu)).max(max_difference(&wc, &wu));
                t.expect(
                    diff < 1e-4,
                    "cached and uncached training agree (losses and weights)",
                    || format!("max difference {diff:.2e} on {dev}"),
                );
            }
            (Err(e), _) | (_, Err(e)) => t.expect(false, "fit", || format!("{e} on {dev}")),
        }
    }
}

/// A folder larger than the feature budget trains to the numbers of the in-memory path.
pub fn spilled_features_equal_memory(t: &mut Runner, rng: &mut Rng) {
    let root = image_folder(rng, "spill", 30);
    let images =
        Images::from_folder(&root, &ImageOptions::new(8, Preset::Torchvision)).expect("index");
    for dev in t.devices().to_vec() {
        let with_budget = |bytes: u64| FitConfig {
            features: FeatureOptions {
                budget: MemoryBudget::new(bytes),
                ..FeatureOptions::default()
            },
            ..quiet()
        };
        // 30 images × 8 channels × 4 bytes after the pooling: 960 bytes.
        let outcome = (|| -> keel::train::Result<_> {
            let m = model(&dev, None)?;
            let prefix: Vec<&dyn Layer> = m.layers()[..2].iter().map(|l| l.as_ref()).collect();
            let opts = |bytes| FeatureOptions {
                budget: MemoryBudget::new(bytes),
                progress: false,
                ..FeatureOptions::default()
            };
            let batches = BatchOptions::new(4);
            let small = extract_features(&prefix, &images, &opts(100), &batches, &dev, "images")?;
            let large =
                extract_features(&prefix, &images, &opts(1 << 20), &batches, &dev, "images")?;
            let (mut a, mut b) = (vec![0.0; 8], vec![0.0; 8]);
            let mut same = small.len() == large.len();
            for i in 0..small.len() {
                small.read(i, &mut a)?;
                large.read(i, &mut b)?;
                same &= a == b && small.label(i) == large.label(i);
            }
            let placed = !small.in_memory() && large.in_memory();
            let spilled = train(&dev, &images, &with_budget(100), None)?;
            let in_memory = train(&dev, &images, &with_budget(1 << 20), None)?;
            Ok((placed, same, spilled, in_memory))
        })();
        match outcome {
            Ok((placed, same, (hs, ws), (hm, wm))) => {
                t.expect(
                    placed,
                    "features go to disk beyond the budget, stay in memory within it",
                    || format!("on {dev}"),
                );
                t.expect(
                    same,
                    "features read back from disk equal those in memory",
                    || format!("on {dev}"),
                );
                let diff = max_difference(&curve(&hs), &curve(&hm)).max(max_difference(&ws, &wm));
                let tolerance = if dev.is_cpu() { 0.0 } else { 1e-6 };
                t.expect(
                    diff <= tolerance && !hs.epochs.is_empty(),
                    "training on spilled features equals training in memory",
                    || format!("max difference {diff:.2e} on {dev}"),
                );
            }
            Err(e) => t.expect(false, "spilled features", || format!("{e} on {dev}")),
        }
    }
}

/// Features computed once and given to `fit` train as its own cache does; features of other
/// weights are refused.
pub fn shared_features(t: &mut Runner, rng: &mut Rng) {
    let data = dataset(rng, 32);
    let dev = Device::cpu();
    let outcome = (|| -> keel::train::Result<_> {
        let m = model(&dev, None)?;
        let backbone: Vec<&dyn Layer> = vec![m.layers()[0].as_ref()];
        let quiet_features = FeatureOptions {
            progress: false,
            ..FeatureOptions::default()
        };
        let features = extract_features(
            &backbone,
            &data,
            &quiet_features,
            &BatchOptions::new(32),
            &dev,
            "data",
        )?;
        let config = FitConfig {
            validation: Validation::None,
            ..quiet()
        };
        let h_shared = fit(&m, &mut Adam::new(0.01), &loss(), &features, &config, &dev)?;
        let w_shared = weights_of(&m);
        let (h_own, w_own) = train(&dev, &data, &config, None)?;
        let other = sequential("model")
            .add(keel::layers::Prebuilt(
                sequential("backbone")
                    .add(conv2d(6, 3).padding(Padding::Same))
                    .add(batch_norm())
                    .add(relu())
                    .add(conv2d(8, 3).strides(2))
                    .build(&[8, 8, 3], &dev, 99)?,
            ))
            .add(global_avg_pool2d())
            .add(dense(5))
            .add(dense(3))
            .build(&[8, 8, 3], &dev, 4)?;
        other.layers()[0].set_trainable(false);
        let refused = fit(
            &other,
            &mut Adam::new(0.01),
            &loss(),
            &features,
            &config,
            &dev,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        Ok((h_shared, w_shared, h_own, w_own, refused))
    })();
    match outcome {
        Ok((hs, ws, ho, wo, refused)) => {
            let diff = max_difference(&curve(&hs), &curve(&ho)).max(max_difference(&ws, &wo));
            t.expect(
                diff == 0.0,
                "training on features computed beforehand equals fit's own caching",
                || format!("max difference {diff:.2e}"),
            );
            t.expect(
                refused.contains("other weights") && refused.contains("backbone"),
                "features of a backbone with other weights are refused",
                || refused.clone(),
            );
        }
        Err(e) => t.expect(false, "shared features", || e.to_string()),
    }
}

/// A run stopped after two epochs and resumed from its backup equals a run of four epochs.
pub fn resume_equals_uninterrupted(t: &mut Runner, rng: &mut Rng) {
    let data = dataset(rng, 36);
    for dev in t.devices().to_vec() {
        let dir = scratch(&format!("resume-{}", dev.is_cpu()));
        let backup = dir.join("run.ckpt");
        let config = |epochs: usize| FitConfig {
            epochs,
            backup: Some(backup.clone()),
            ..quiet()
        };
        let outcome = (|| -> keel::train::Result<_> {
            let straight = train(
                &dev,
                &data,
                &FitConfig {
                    epochs: 4,
                    ..quiet()
                },
                Some(0.3),
            )?;
            train(&dev, &data, &config(2), Some(0.3))?;
            let resumed = train(&dev, &data, &config(4), Some(0.3))?;
            Ok((straight, resumed))
        })();
        match outcome {
            Ok(((hs, ws), (hr, wr))) => {
                let diff = max_difference(&curve(&hs), &curve(&hr)).max(max_difference(&ws, &wr));
                let tolerance = if dev.is_cpu() { 0.0 } else { 1e-5 };
                t.expect(
                    diff <= tolerance && hr.resumed_epochs == 2 && hr.epochs.len() == 4,
                    "resumed training equals uninterrupted training (bit for bit on the CPU)",
                    || {
                        format!(
                            "max difference {diff:.2e}, {} epochs resumed of {} on {dev}",
                            hr.resumed_epochs,
                            hr.epochs.len()
                        )
                    },
                );
            }
            Err(e) => t.expect(false, "resume", || format!("{e} on {dev}")),
        }
        let names = file_names(&dir);
        t.expect(
            names == ["run.ckpt"],
            "the backup folder holds the backup and nothing else",
            || format!("{names:?}"),
        );
    }
    // A backup of another model is refused, naming the first layer that differs.
    let dir = scratch("resume-other");
    let backup = dir.join("run.ckpt");
    let config = FitConfig {
        epochs: 1,
        backup: Some(backup.clone()),
        ..quiet()
    };
    let dev = Device::cpu();
    let first = train(&dev, &data, &config, None);
    let other = train(&dev, &data, &config, Some(0.5))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    t.expect(
        first.is_ok() && other.contains("another model") && other.contains("run.ckpt"),
        "a backup of another model is refused",
        || other.clone(),
    );
}

pub fn early_stopping_and_checkpoint(t: &mut Runner, rng: &mut Rng) {
    let dev = Device::cpu();
    let data = dataset(rng, 24);
    let dir = scratch("checkpoint");
    let path = dir.join("best.safetensors");
    let outcome = (|| -> keel::train::Result<(History, Vec<f32>, Vec<f32>, ModelInfo)> {
        let m = model(&dev, None)?;
        let config = FitConfig {
            epochs: 10,
            early_stopping: Some(EarlyStopping {
                patience: 1,
                min_delta: 1e9,
            }),
            checkpoint: Some(path.clone()),
            ..quiet()
        };
        let h = fit(&m, &mut Adam::new(0.01), &loss(), &data, &config, &dev)?;
        // The file holds the model after the first (best) epoch: train a twin one epoch.
        let twin = model(&dev, None)?;
        fit(
            &twin,
            &mut Adam::new(0.01),
            &loss(),
            &data,
            &FitConfig {
                epochs: 1,
                ..config
            },
            &dev,
        )?;
        let saved = load_model(&path, &dev)?;
        Ok((h, weights_of(&saved.model), weights_of(&twin), saved.info))
    })();
    match outcome {
        Ok((h, saved, twin, info)) => {
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
                saved == twin && info.classes == ["a", "b", "c"],
                "the best checkpoint is the whole model of the best epoch, with its classes",
                || {
                    format!(
                        "{} values vs {}, {:?}",
                        saved.len(),
                        twin.len(),
                        info.classes
                    )
                },
            );
        }
        Err(e) => t.expect(false, "early stopping", || e.to_string()),
    }
}

pub fn bad_input(t: &mut Runner, rng: &mut Rng) {
    let dev = Device::cpu();
    let m = model(&dev, None).expect("model");
    let run = |data: &dyn Samples, config: &FitConfig<'_>| {
        fit(&m, &mut Adam::new(0.01), &loss(), data, config, &dev)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let mut cases: Vec<(&str, String, Vec<&str>)> = Vec::new();
    let mut five = dataset(rng, 10);
    five.classes = (0..5).map(|i| format!("class{i}")).collect();
    cases.push((
        "a class count that does not match the head",
        run(&five, &quiet()),
        vec!["3 outputs", "5 classes"],
    ));
    let mut wrong = dataset(rng, 4);
    wrong.shape = vec![8, 8, 1];
    wrong.images.truncate(4 * 64);
    cases.push((
        "samples of the wrong shape",
        run(&wrong, &quiet()),
        vec!["[8, 8, 1]", "[8, 8, 3]"],
    ));
    let data = dataset(rng, 12);
    cases.push((
        "zero epochs",
        run(
            &data,
            &FitConfig {
                epochs: 0,
                ..quiet()
            },
        ),
        vec!["epochs"],
    ));
    cases.push((
        "a zero batch size",
        run(
            &data,
            &FitConfig {
                batch_size: 0,
                ..quiet()
            },
        ),
        vec!["batch size"],
    ));
    let tiny = dataset(rng, 2);
    cases.push((
        "a validation split that leaves nothing",
        run(
            &tiny,
            &FitConfig {
                validation: Validation::Split(0.1),
                ..quiet()
            },
        ),
        vec!["0.1 of 2 samples", "0 for validation"],
    ));
    let one_class = Dataset {
        labels: vec![0; 12],
        classes: vec!["only".into()],
        ..dataset(rng, 12)
    };
    let single = sequential("single")
        .add(global_avg_pool2d())
        .add(dense(1))
        .build(&[8, 8, 3], &dev, 1)
        .expect("model");
    let msg = fit(
        &single,
        &mut Adam::new(0.01),
        &loss(),
        &one_class,
        &quiet(),
        &dev,
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    cases.push(("one class", msg, vec!["1 class", "only", "at least 2"]));
    for lr in [f32::INFINITY, f32::NAN, -1.0, 0.0] {
        let msg = fit(&m, &mut Adam::new(lr), &loss(), &data, &quiet(), &dev)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        cases.push((
            "a learning rate that is not finite and positive",
            msg,
            vec!["learning rate of", "finite number above 0"],
        ));
    }
    let mut poisoned = dataset(rng, 12);
    poisoned.images.fill(f32::NAN);
    cases.push((
        "a non-finite loss (NaN inputs)",
        run(&poisoned, &quiet()),
        vec!["epoch 1, step 1", "the loss is NaN"],
    ));
    // More memory than there is: a clear error before anything is allocated.
    std::env::set_var("KEEL_MEMORY_LIMIT", "0");
    let msg = run(&data, &quiet());
    std::env::remove_var("KEEL_MEMORY_LIMIT");
    cases.push((
        "more memory than the limit",
        msg,
        vec![
            "training `model` needs about",
            "gradients",
            "optimizer state",
            "activations",
        ],
    ));
    // NaN in a weight: predictions and evaluations name the sample, never a NaN number.
    let poisoned_model = model(&dev, None).expect("model");
    let dense = poisoned_model
        .layers()
        .last()
        .expect("a last layer")
        .weights();
    let kernel = &dense[0].param;
    let mut values = kernel.value().to_vec().expect("values");
    values[3] = f32::NAN;
    kernel
        .set_value(
            keel::Tensor::from_vec(values, kernel.value().dims().to_vec(), &dev).expect("tensor"),
        )
        .expect("set");
    let msg = keel::train::predict(&poisoned_model, &data, 4, &dev)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    cases.push((
        "predictions of a model with a NaN weight",
        msg,
        vec!["outputs for sample 0 are not finite"],
    ));
    let msg = keel::train::evaluate(&poisoned_model, &loss(), &data, 4, &dev)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    cases.push((
        "an evaluation of a model with a NaN weight",
        msg,
        vec!["outputs for sample 0 are not finite"],
    ));
    m.set_trainable(false);
    cases.push((
        "a fully frozen model",
        run(&dataset(rng, 4), &quiet()),
        vec!["no trainable parameter"],
    ));
    for (case, msg, wanted) in cases {
        t.expect(wanted.iter().all(|w| msg.contains(w)), case, || msg.clone());
    }
}

/// The environment variable that makes the test binary a checkpoint writer (see below).
pub const WRITER: &str = "KEEL_TEST_CHECKPOINT_WRITER";

/// The child process of [`killed_writes`]: saves a 4 MB model to the path in `WRITER` over
/// and over, saying `ready` after the first save.
pub fn checkpoint_writer(path: &Path) -> ! {
    let dev = Device::cpu();
    let m = sequential("big")
        .add(dense(1000))
        .build(&[1000], &dev, 0)
        .expect("model");
    let info = ModelInfo::default();
    save_model(&m, &info, path).expect("first save");
    println!("ready");
    loop {
        save_model(&m, &info, path).expect("save");
    }
}

/// A process killed (SIGKILL) while it writes checkpoints leaves the last complete one loadable
/// and no other file, except in the instant between naming the new data `.NAME.tmp` and renaming
/// it over NAME, when `.NAME.tmp` may stay behind until the next write removes it.
pub fn killed_writes(t: &mut Runner, rng: &mut Rng) {
    use std::io::BufRead;
    let dir = scratch("killed");
    let path = dir.join("model.safetensors");
    let small = sequential("small")
        .add(dense(2))
        .build(&[3], &Device::cpu(), 0)
        .expect("model");
    let mut kills = 0;
    let mut problems = Vec::new();
    for round in 0..20 {
        let mut child = match std::process::Command::new(std::env::current_exe().expect("exe"))
            .env(WRITER, &path)
            .stdout(std::process::Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                problems.push(format!("spawn: {e}"));
                break;
            }
        };
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        std::thread::sleep(std::time::Duration::from_micros(
            rng.uniform(0.0, 30_000.0) as u64
        ));
        let _ = child.kill();
        let _ = child.wait();
        kills += 1;
        let names = file_names(&dir);
        let renaming = names == [".model.safetensors.tmp", "model.safetensors"];
        if names != ["model.safetensors"] && !renaming {
            problems.push(format!("round {round}: the folder holds {names:?}"));
        }
        if let Err(e) = load_model(&path, &Device::cpu()) {
            problems.push(format!("round {round}: {e}"));
        }
        if renaming {
            save_model(&small, &ModelInfo::default(), &path).expect("save");
            let names = file_names(&dir);
            if names != ["model.safetensors"] {
                problems.push(format!(
                    "round {round}: after the next write the folder holds {names:?}"
                ));
            }
        }
    }
    t.expect(
        kills == 20 && problems.is_empty(),
        "20 writers killed mid-write: the model loads, nothing else is left",
        || problems.join("; "),
    );
}

/// On wgpu no training step waits for the GPU (nor uploads a dropout mask): with the progress
/// bar off, `fit` reads the loss and accuracy sums back once per epoch for training and once
/// for validation, whatever the number of steps.
pub fn readbacks_per_epoch(t: &mut Runner, rng: &mut Rng) {
    let dev = match Device::wgpu() {
        Ok(d) => d,
        Err(e) => {
            let required = std::env::var("KEEL_REQUIRE_WGPU").is_ok_and(|v| v == "1");
            t.expect(!required, "a wgpu adapter (KEEL_REQUIRE_WGPU=1)", || {
                e.to_string()
            });
            return;
        }
    };
    let data = dataset(rng, 48);
    let config = FitConfig {
        epochs: 2,
        batch_size: 4,
        cache_features: false,
        ..quiet()
    };
    let mut counts = Vec::new();
    for dropout in [None, Some(0.5)] {
        let m = model(&dev, dropout).expect("model");
        let before = dev.counters();
        let outcome = fit(&m, &mut Adam::new(0.01), &loss(), &data, &config, &dev);
        counts.push(dev.counters().since(&before));
        t.expect(outcome.is_ok(), "fit on wgpu", || {
            format!("{:?}", outcome.err())
        });
    }
    // 36 training samples in 9 steps of 4 per epoch: 18 steps, each uploading its batch and
    // labels and submitted when it ends; 2 readbacks per epoch and no other wait.
    let used = counts[0];
    t.expect(
        used.readbacks == 4 && used.waits == 4 && used.uploads >= 36,
        "2 epochs of 9 steps: 4 readbacks (training and validation sums per epoch), no other wait",
        || format!("{used:?}"),
    );
    t.expect(
        used.submits >= 18,
        "each step is submitted when it ends, so the GPU runs it while the next batch uploads",
        || format!("{used:?}"),
    );
    t.expect(
        counts[1].uploads == used.uploads && counts[1].readbacks == used.readbacks,
        "dropout masks are made on the device: no upload or readback more",
        || format!("{counts:?}"),
    );
}

/// Features kept in f16 take half the bytes, in memory and on disk, and read back as the f32
/// features rounded to 11 significant bits.
pub fn half_precision_features(t: &mut Runner, rng: &mut Rng) {
    let root = image_folder(rng, "half", 30);
    let images =
        Images::from_folder(&root, &ImageOptions::new(8, Preset::Torchvision)).expect("index");
    let dev = Device::cpu();
    let m = model(&dev, None).expect("model");
    let prefix: Vec<&dyn Layer> = m.layers()[..2].iter().map(|l| l.as_ref()).collect();
    let opts = |budget, precision| FeatureOptions {
        budget: MemoryBudget::new(budget),
        progress: false,
        precision,
        ..FeatureOptions::default()
    };
    let batches = BatchOptions::new(4);
    let extract = |budget, precision| {
        extract_features(
            &prefix,
            &images,
            &opts(budget, precision),
            &batches,
            &dev,
            "images",
        )
        .expect("features")
    };
    let full = extract(1 << 20, Precision::F32);
    for (budget, place) in [(1u64 << 20, "memory"), (100, "disk")] {
        let half = extract(budget, Precision::F16);
        let (mut a, mut b) = (vec![0.0; 8], vec![0.0; 8]);
        let mut worst = 0f32;
        for i in 0..full.len() {
            full.read(i, &mut a).expect("read");
            half.read(i, &mut b).expect("read");
            for (x, y) in a.iter().zip(&b) {
                worst = worst.max((x - y).abs() / x.abs().max(1e-3));
            }
        }
        t.expect(
            half.bytes() * 2 == full.bytes() && half.in_memory() == (place == "memory"),
            &format!("f16 features in {place}: half the bytes"),
            || format!("{} and {} bytes", half.bytes(), full.bytes()),
        );
        t.expect(
            worst <= 1.0 / 2048.0 && worst > 0.0,
            &format!("f16 features in {place}: within 2^-11 of f32"),
            || format!("largest relative difference {worst:e}"),
        );
    }
}

/// A frozen backbone's kernels kept in f16 where the device has f16 storage: the outputs are
/// those of the f32 model with f16-rounded kernels, training the head works, training the
/// backbone is refused until its weights are f32 again; elsewhere nothing changes.
pub fn half_frozen_weights(t: &mut Runner, rng: &mut Rng) {
    let data = dataset(rng, 24);
    let x = keel::Tensor::from_slice(&data.images[..4 * 8 * 8 * 3], [4, 8, 8, 3], &Device::cpu())
        .expect("input");
    let mut devices = vec![Device::cpu()];
    devices.extend(Device::wgpu().ok());
    let config = FitConfig {
        epochs: 1,
        ..quiet()
    };
    for dev in devices {
        let m = model(&dev, None).expect("model");
        let x = x.to_device(&dev).expect("input");
        let outputs = |m: &Sequential| {
            m.predict(&x)
                .and_then(|y| Ok(y.to_vec()?))
                .expect("predict")
        };
        let full = outputs(&m);
        let done = m.keep_frozen_weights_f16().expect("f16 weights");
        let half = outputs(&m);
        if !dev.has_f16() {
            t.expect(
                done.kernels == 0 && half == full,
                "no f16 storage: nothing changes",
                || format!("{done:?} on {dev}"),
            );
            continue;
        }
        t.expect(
            done.kernels == 2 && done.bytes_saved == (3 * 3 * 3 * 6 + 3 * 3 * 6 * 8) * 2,
            "the two backbone kernels are kept in f16, the head's in f32",
            || format!("{done:?} on {dev}"),
        );
        let close = half
            .iter()
            .zip(&full)
            .all(|(h, f)| (h - f).abs() <= 1e-2 * f.abs().max(1.0));
        t.expect(
            close && half != full,
            "f16 kernels: within f16's rounding of f32",
            || format!("{half:?} vs {full:?} on {dev}"),
        );
        let head = fit(&m, &mut Adam::new(0.01), &loss(), &data, &config, &dev);
        t.expect(head.is_ok(), "training the head over f16 kernels", || {
            format!("{:?} on {dev}", head.err())
        });
        m.layers()[0].set_trainable(true);
        let refused = fit(&m, &mut Adam::new(0.01), &loss(), &data, &config, &dev)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        t.expect(
            refused.contains("f16") && refused.contains("f32_weights"),
            "training an f16 kernel is refused, naming the way out",
            || refused.clone(),
        );
        let trained = outputs(&m);
        m.f32_weights().expect("f32 again");
        let rounded = outputs(&m);
        let same = rounded
            .iter()
            .zip(&trained)
            .all(|(a, b)| (a - b).abs() <= 1e-5 * b.abs().max(1.0));
        t.expect(
            same,
            "f32 kernels holding the f16 values give the f16 outputs",
            || format!("{rounded:?} vs {trained:?} on {dev}"),
        );
    }
}
