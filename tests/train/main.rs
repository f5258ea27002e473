//! Training tests: optimizers and losses against f64 references on every device, `fit` with
//! cached features (in memory, spilled to disk, shared) equal to `fit` without, resuming,
//! early stopping and checkpoints, killed checkpoint writes, data (image folders, batches,
//! idx files, augmentation) and its errors.

mod data;
mod fitting;
#[allow(dead_code)]
#[path = "../ops/harness.rs"]
mod harness;

use harness::{run_tests, Expected, Input, Rng, Runner, Test};
use keel::autograd::{Param, Var};
use keel::train::{Adam, Clip, Loss, Optimizer, Sgd};
use keel::Tensor;

fn main() {
    if let Some(path) = std::env::var_os(fitting::WRITER) {
        fitting::checkpoint_writer(std::path::Path::new(&path));
    }
    let tests: &[(&str, Test)] = &[
        ("optimizers", optimizers),
        ("optimizer_state_by_name", optimizer_state_by_name),
        ("losses", losses),
        ("fit_cache_equals_uncached", fitting::cache_equals_uncached),
        (
            "fit_spilled_features_equal_memory",
            fitting::spilled_features_equal_memory,
        ),
        ("fit_shared_features", fitting::shared_features),
        (
            "fit_resume_equals_uninterrupted",
            fitting::resume_equals_uninterrupted,
        ),
        (
            "fit_early_stopping_and_checkpoint",
            fitting::early_stopping_and_checkpoint,
        ),
        ("fit_bad_input", fitting::bad_input),
        ("fit_readbacks_per_epoch", fitting::readbacks_per_epoch),
        (
            "fit_half_precision_features",
            fitting::half_precision_features,
        ),
        ("fit_half_frozen_weights", fitting::half_frozen_weights),
        ("checkpoint_killed_writes", fitting::killed_writes),
        ("data_image_folder", data::image_folder),
        (
            "data_batches_independent_of_workers",
            data::batches_independent_of_workers,
        ),
        ("data_image_cache", data::image_cache),
        ("data_idx", data::idx_files),
        ("data_resize_as_pillow", data::resize_as_pillow),
        ("data_augment", data::augment),
    ];
    run_tests(tests, 131);
}

/// f64 reference of `steps` updates of one parameter with gradients `grads[t]`.
fn reference_run(kind: &str, w0: &[f64], grads: &[Vec<f64>]) -> Vec<f64> {
    let (lr, mom, decay) = (0.1, 0.9, 0.01);
    let mut w = w0.to_vec();
    let mut v = vec![0.0; w.len()];
    let mut m = vec![0.0; w.len()];
    let mut s = vec![0.0; w.len()];
    for (t, g) in grads.iter().enumerate() {
        let t = t as i32 + 1;
        for i in 0..w.len() {
            match kind {
                "sgd" => w[i] -= lr * g[i],
                "sgd+decay" => w[i] -= lr * (g[i] + decay * w[i]),
                "momentum" | "nesterov" => {
                    v[i] = mom * v[i] - lr * g[i];
                    w[i] += if kind == "nesterov" {
                        mom * v[i] - lr * g[i]
                    } else {
                        v[i]
                    };
                }
                "adam" | "adamw" => {
                    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-7);
                    m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                    s[i] = b2 * s[i] + (1.0 - b2) * g[i] * g[i];
                    let step =
                        lr / (1.0 - b1.powi(t)) * m[i] / ((s[i] / (1.0 - b2.powi(t))).sqrt() + eps);
                    if kind == "adamw" {
                        w[i] *= 1.0 - lr * decay;
                    }
                    w[i] -= step;
                }
                _ => unreachable!(),
            }
        }
    }
    w
}

fn optimizers(t: &mut Runner, rng: &mut Rng) {
    let w0 = Input::random(rng, &[7, 3]);
    let grads: Vec<Input> = (0..4).map(|_| Input::random(rng, &[7, 3])).collect();
    for kind in ["sgd", "sgd+decay", "momentum", "nesterov", "adam", "adamw"] {
        let want = reference_run(
            kind,
            &w0.f64(),
            &grads.iter().map(Input::f64).collect::<Vec<_>>(),
        );
        let mut inputs = vec![w0.clone()];
        inputs.extend(grads.iter().cloned());
        t.check(
            &format!("{kind}, 4 steps"),
            &inputs,
            |x: &[Tensor]| -> keel::train::Result<Tensor> {
                let mut opt: Box<dyn Optimizer> = match kind {
                    "sgd" => Box::new(Sgd::new(0.1)),
                    "sgd+decay" => Box::new(Sgd::new(0.1).weight_decay(0.01)),
                    "momentum" => Box::new(Sgd::new(0.1).momentum(0.9, false)),
                    "nesterov" => Box::new(Sgd::new(0.1).momentum(0.9, true)),
                    "adam" => Box::new(Adam::new(0.1)),
                    _ => Box::new(Adam::adamw(0.1, 0.01)),
                };
                let p = Param::new("w", x[0].clone());
                for g in &x[1..] {
                    // Seed the gradient through a backward pass of Σ w·g.
                    p.var()
                        .mul(&Var::constant(g.clone()))?
                        .sum_all()?
                        .backward()?;
                    opt.step(std::slice::from_ref(&p))?;
                }
                Ok(p.value())
            },
            &Expected {
                shape: vec![7, 3],
                data: want,
            },
        );
    }
    // Global-norm clipping scales the whole gradient to the bound.
    let g = Input::random(rng, &[5]);
    let norm = g.f64().iter().map(|v| v * v).sum::<f64>().sqrt();
    let want: Vec<f64> = g.f64().iter().map(|v| -v * 0.5 / norm).collect();
    t.check(
        "SGD with global-norm clipping to 0.5",
        &[g],
        |x: &[Tensor]| -> keel::train::Result<Tensor> {
            let p = Param::new("w", Tensor::zeros([5], x[0].device())?);
            p.var()
                .mul(&Var::constant(x[0].clone()))?
                .sum_all()?
                .backward()?;
            Sgd::new(1.0)
                .clip(Clip::GlobalNorm(0.5))
                .step(std::slice::from_ref(&p))?;
            Ok(p.value())
        },
        &Expected {
            shape: vec![5],
            data: want,
        },
    );
}

/// An optimizer's state moves to another optimizer by parameter name, and the next step is
/// the one the first optimizer would have made.
fn optimizer_state_by_name(t: &mut Runner, rng: &mut Rng) {
    let w0 = Input::random(rng, &[4, 3]);
    let grads: Vec<Input> = (0..3).map(|_| Input::random(rng, &[4, 3])).collect();
    for kind in ["momentum", "adam"] {
        let mut inputs = vec![w0.clone()];
        inputs.extend(grads.iter().cloned());
        let make = || -> Box<dyn Optimizer> {
            match kind {
                "momentum" => Box::new(Sgd::new(0.1).momentum(0.9, false)),
                _ => Box::new(Adam::new(0.1)),
            }
        };
        let run = |x: &[Tensor], switch: bool| -> keel::train::Result<Tensor> {
            let p = Param::new("dense/kernel", x[0].clone());
            let mut opt = make();
            for (i, g) in x[1..].iter().enumerate() {
                if switch && i == 2 {
                    // A new process: a new parameter of the same name, a new optimizer.
                    let state = opt.state();
                    opt = make();
                    opt.load_state(state)?;
                }
                p.var()
                    .mul(&Var::constant(g.clone()))?
                    .sum_all()?
                    .backward()?;
                opt.step(std::slice::from_ref(&p))?;
            }
            Ok(p.value())
        };
        let dev = keel::Device::cpu();
        let tensors: Vec<Tensor> = inputs
            .iter()
            .map(|i| Tensor::from_slice(&i.data, i.shape.clone(), &dev).expect("upload"))
            .collect();
        let (straight, switched) = (run(&tensors, false), run(&tensors, true));
        let same =
            matches!((&straight, &switched), (Ok(a), Ok(b)) if a.to_vec().ok() == b.to_vec().ok());
        t.expect(same, &format!("{kind}: state restored by name"), || {
            format!("{:?} / {:?}", straight.map(|_| ()), switched.map(|_| ()))
        });
    }
    let twins = [
        Param::new(
            "w",
            Tensor::zeros([2], &keel::Device::cpu()).expect("zeros"),
        ),
        Param::new(
            "w",
            Tensor::zeros([2], &keel::Device::cpu()).expect("zeros"),
        ),
    ];
    let msg = Sgd::new(0.1)
        .step(&twins)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    t.expect(
        msg.contains("two parameters are named `w`"),
        "duplicate names are refused",
        || msg.clone(),
    );
}

fn losses(t: &mut Runner, rng: &mut Rng) {
    let logits = Input::random_in(rng, &[4, 5], -3.0, 3.0);
    let labels = [1i32, 0, 4, 2];
    let l64 = logits.f64();
    let log_softmax: Vec<f64> = l64
        .chunks(5)
        .flat_map(|r| {
            let m = r.iter().copied().fold(f64::MIN, f64::max);
            let s: f64 = r.iter().map(|v| (v - m).exp()).sum();
            r.iter().map(move |v| v - m - s.ln()).collect::<Vec<_>>()
        })
        .collect();
    let ce = -labels
        .iter()
        .enumerate()
        .map(|(i, &l)| log_softmax[i * 5 + l as usize])
        .sum::<f64>()
        / 4.0;
    let probs: Vec<f32> = log_softmax.iter().map(|v| v.exp() as f32).collect();
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    let targets: Vec<f32> = (0..20).map(|i| (i % 3 == 0) as u8 as f32).collect();
    let bce = l64
        .iter()
        .zip(&targets)
        .map(|(&x, &y)| {
            -(f64::from(y) * sigmoid(x).ln() + (1.0 - f64::from(y)) * (1.0 - sigmoid(x)).ln())
        })
        .sum::<f64>()
        / 20.0;
    type Case = (&'static str, Loss, f64, bool);
    let cases: [Case; 5] = [
        (
            "sparse CE from logits",
            Loss::SparseCategoricalCrossentropy { from_logits: true },
            ce,
            false,
        ),
        (
            "sparse CE from probabilities",
            Loss::SparseCategoricalCrossentropy { from_logits: false },
            ce,
            true,
        ),
        (
            "categorical CE from logits",
            Loss::CategoricalCrossentropy { from_logits: true },
            ce,
            false,
        ),
        (
            "binary CE from logits",
            Loss::BinaryCrossentropy { from_logits: true },
            bce,
            false,
        ),
        (
            "binary CE from probabilities",
            Loss::BinaryCrossentropy { from_logits: false },
            bce,
            false,
        ),
    ];
    for (name, loss, want, use_probs) in cases {
        let x = if use_probs {
            Input {
                shape: vec![4, 5],
                data: probs.clone(),
            }
        } else {
            logits.clone()
        };
        let targets = targets.clone();
        t.check(
            name,
            &[x],
            |x: &[Tensor]| -> keel::train::Result<Tensor> {
                let dev = x[0].device();
                let y = match loss {
                    Loss::SparseCategoricalCrossentropy { .. } => {
                        Tensor::from_i32(labels.to_vec(), [4], dev)?
                    }
                    Loss::CategoricalCrossentropy { .. } => {
                        keel::autograd::one_hot(&Tensor::from_i32(labels.to_vec(), [4], dev)?, 5)?
                    }
                    Loss::BinaryCrossentropy { .. } => {
                        Tensor::from_vec(targets.clone(), [4, 5], dev)?
                    }
                };
                let input = match loss {
                    Loss::BinaryCrossentropy { from_logits: false } => {
                        Var::constant(x[0].sigmoid()?)
                    }
                    _ => Var::constant(x[0].clone()),
                };
                Ok(loss.compute(&input, &y)?.tensor().reshape([1])?)
            },
            &Expected {
                shape: vec![1],
                data: vec![want],
            },
        );
    }
}
