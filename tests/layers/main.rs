//! Layer, backbone and head tests: parameter counts against Keras and torchvision, forward passes
//! and summaries of the two models of the Keras question on every device, freezing, weights
//! files (round trip, PyTorch layout, bad files), whole-model files (save, load, predict), and
//! golden outputs against PyTorch.

mod golden;
#[allow(dead_code)]
#[path = "../ops/harness.rs"]
mod harness;
mod model_files;
mod seeded;
mod weights_files;

use harness::{run_tests, Rng, Runner, Test};
use keel::autograd::Var;
use keel::layers::{
    backbones, flatten_head, gap_head, summary, with_head, BackboneOptions, HeadSpec, Layer,
    Sequential,
};
use keel::{Device, Tensor};

fn main() {
    let tests: &[(&str, Test)] = &[
        ("parameter_counts", parameter_counts),
        (
            "seed_models_forward_and_summary",
            seed_models_forward_and_summary,
        ),
        (
            "freezing_keeps_backbone_bit_identical",
            freezing_keeps_backbone_bit_identical,
        ),
        ("head_checks", head_checks),
        ("layer_norm_and_scale", layer_norm_and_scale),
        ("stochastic_depth", stochastic_depth),
        ("weights_round_trip", weights_files::round_trip),
        ("weights_torch_layout", weights_files::torch_layout),
        ("weights_bad_files", weights_files::bad_files),
        ("weights_timm_names", weights_files::timm_names),
        ("weights_torch_files", weights_files::torch_files),
        ("weights_keras_files", weights_files::keras_files),
        ("model_configs_round_trip", model_files::configs_round_trip),
        ("model_save_load_predict", model_files::save_load_predict),
        ("model_bad_files", model_files::bad_model_files),
        ("model_keras_whole", model_files::keras_whole_models),
        ("model_folded_batch_norms", model_files::folded_batch_norms),
        ("golden_tiny_mobilenet_v2", golden::tiny_mobilenet_v2),
        (
            "golden_imagenet_mobilenet_v2",
            golden::imagenet_mobilenet_v2,
        ),
        (
            "golden_imagenet_mobilenet_v2_pth",
            golden::imagenet_mobilenet_v2_pth,
        ),
        (
            "golden_imagenet_efficientnet_lite0",
            golden::imagenet_efficientnet_lite0,
        ),
        (
            "golden_seeded_torchvision",
            seeded::torchvision_architectures,
        ),
        ("golden_seeded_keras", seeded::keras_architectures),
        ("weights_timm_torchvision_names", seeded::timm_names),
    ];
    run_tests(tests, 31);
}

/// The largest absolute difference between `got` and `want`, element by element.
fn largest_difference(got: &[f32], want: &[f32]) -> f32 {
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0, f32::max)
}

/// Expects `got == want`, naming the count.
fn count(t: &mut Runner, what: &str, got: usize, want: usize) {
    t.expect(got == want, what, || format!("{got}, expected {want}"));
}

fn parameter_counts(t: &mut Runner, _rng: &mut Rng) {
    let dev = Device::cpu();
    let opts = BackboneOptions::default();
    let outcome = (|| -> keel::layers::Result<()> {
        let vgg = backbones::vgg16(&opts, &dev)?;
        count(
            t,
            "VGG16 without top, 224×224: total (Keras)",
            summary(&vgg).total,
            14_714_688,
        );
        t.expect(
            vgg.output_shape() == [7, 7, 512],
            "VGG16 output 7×7×512",
            || format!("{:?}", vgg.output_shape()),
        );
        vgg.set_trainable(false);
        let flatten_model = with_head(vgg, &flatten_head(3), &dev, 0)?;
        let s = summary(&flatten_model);
        count(
            t,
            "VGG16 + Flatten + Dense(3): trainable",
            s.trainable,
            25_088 * 3 + 3,
        );
        count(
            t,
            "VGG16 + Flatten + Dense(3): non-trainable",
            s.non_trainable,
            14_714_688,
        );

        let mobilenet = backbones::mobilenet(&opts, &dev)?;
        let s = summary(&mobilenet);
        count(
            t,
            "MobileNet without top: total (Keras)",
            s.total,
            3_228_864,
        );
        count(
            t,
            "MobileNet without top: moving statistics (Keras)",
            s.non_trainable,
            21_888,
        );
        mobilenet.set_trainable(false);
        let head = gap_head(3).hidden(&[1024, 1024, 512]);
        let gap_model = with_head(mobilenet, &head, &dev, 0)?;
        let s = summary(&gap_model);
        let head_params = (1024 * 1024 + 1024) * 2 + (1024 * 512 + 512) + (512 * 3 + 3);
        count(
            t,
            "MobileNet + GAP + 1024,1024,512 + Dense(3): trainable",
            s.trainable,
            head_params,
        );
        count(
            t,
            "MobileNet + GAP head: non-trainable",
            s.non_trainable,
            3_228_864,
        );

        let v2 = backbones::mobilenet_v2(&opts.clone().include_top(1000), &dev)?;
        let s = summary(&v2);
        count(
            t,
            "MobileNetV2 with top: trainable (torchvision's 3,504,872)",
            s.trainable,
            3_504_872,
        );
        let v2_top_free = backbones::mobilenet_v2(&opts, &dev)?;
        t.expect(
            v2_top_free.output_shape() == [7, 7, 1280],
            "MobileNetV2 output 7×7×1280",
            || format!("{:?}", v2_top_free.output_shape()),
        );
        count(
            t,
            "MobileNetV2 without top: trainable",
            summary(&v2_top_free).trainable,
            3_504_872 - 1_281_000,
        );
        let lite = backbones::efficientnet_lite0(&opts.clone().include_top(1000), &dev)?;
        count(
            t,
            "EfficientNet-Lite0 with top: trainable (the checkpoint's 4,652,008)",
            summary(&lite).trainable,
            4_652_008,
        );
        let lite_top_free = backbones::efficientnet_lite0(&opts, &dev)?;
        count(
            t,
            "EfficientNet-Lite0 without top: trainable",
            summary(&lite_top_free).trainable,
            4_652_008 - 1_281_000,
        );
        t.expect(
            lite_top_free.output_shape() == [7, 7, 1280],
            "EfficientNet-Lite0 output 7×7×1280",
            || format!("{:?}", lite_top_free.output_shape()),
        );
        for (name, with_top, output) in [
            ("resnet18", 11_689_512, [7, 7, 512]),
            ("resnet50", 25_557_032, [7, 7, 2048]),
            ("efficientnet_b0", 5_288_548, [7, 7, 1280]),
            ("mobilenet_v3_large", 5_483_032, [7, 7, 960]),
            ("mobilenet_v3_small", 2_542_856, [7, 7, 576]),
            ("convnext_tiny", 28_589_128, [7, 7, 768]),
            ("keras_resnet50", 25_583_592, [7, 7, 2048]),
            ("keras_mobilenet_v2", 3_504_872, [7, 7, 1280]),
            ("keras_efficientnet_b0", 5_288_548, [7, 7, 1280]),
        ] {
            let top = backbones::by_name(name, &opts.clone().include_top(1000), &dev)?;
            count(
                t,
                &format!("{name} with top: trainable (torchvision's or Keras')"),
                summary(&top).trainable,
                with_top,
            );
            let free = backbones::by_name(name, &opts, &dev)?;
            t.expect(
                free.output_shape() == output,
                "torchvision backbones' outputs",
                || format!("{name}: {:?}", free.output_shape()),
            );
        }
        let keras_b0 = backbones::keras_efficientnet_b0(&opts.clone().include_top(1000), &dev)?;
        count(
            t,
            "Keras EfficientNetB0: non-trainable (Keras' 42,023 less Normalization's `count`)",
            summary(&keras_b0).non_trainable,
            42_022,
        );
        for name in backbones::NAMES {
            t.expect(
                backbones::by_name(name, &opts, &dev).is_ok(),
                "every listed backbone builds by name",
                || name.to_string(),
            );
        }
        // Fine-tuning: unfreeze the top 3 layers of the backbone (Keras' recipe).
        mobilenet_top_n(t, &dev)?;
        // Other input sizes the architectures allow.
        let small = backbones::vgg16(&opts.clone().input(96, 128), &dev)?;
        t.expect(
            small.output_shape() == [3, 4, 512],
            "VGG16 at 96×128",
            || format!("{:?}", small.output_shape()),
        );
        let tiny = backbones::vgg16(&opts.clone().input(16, 16), &dev);
        let too_small = |r: keel::layers::Result<keel::layers::Sequential>| match r {
            Ok(_) => "built".to_string(),
            Err(e) => e.to_string(),
        };
        let msg = too_small(tiny);
        t.expect(
            msg.contains("at least 32×32") && msg.contains("got 16×16"),
            "VGG16 at 16×16 is too small, and says how small it may be",
            || msg.clone(),
        );
        let msg = too_small(backbones::mobilenet_v2(&opts.clone().input(7, 7), &dev));
        t.expect(
            msg.contains("at least 32×32") && msg.contains("got 7×7"),
            "MobileNetV2 at 7×7 is too small (computed from its strides)",
            || msg.clone(),
        );
        Ok(())
    })();
    if let Err(e) = outcome {
        t.expect(false, "parameter counts", || e.to_string());
    }
}

/// The two models of the question, on 32×32 inputs (the smallest both architectures allow).
fn seed_models(dev: &Device) -> keel::layers::Result<(Sequential, Sequential)> {
    let opts = BackboneOptions::default().input(32, 32).seed(7);
    let vgg = backbones::vgg16(&opts, dev)?;
    vgg.set_trainable(false);
    let a = with_head(
        vgg,
        &flatten_head(3).output_activation(keel::layers::layers::Activation::Softmax),
        dev,
        1,
    )?;
    let mobilenet = backbones::mobilenet(&opts, dev)?;
    mobilenet.set_trainable(false);
    let head = gap_head(3)
        .hidden(&[1024, 1024, 512])
        .output_activation(keel::layers::layers::Activation::Softmax);
    let b = with_head(mobilenet, &head, dev, 1)?;
    Ok((a, b))
}

fn seed_models_forward_and_summary(t: &mut Runner, rng: &mut Rng) {
    let x = rng.values(2 * 32 * 32 * 3, 0.0, 1.0);
    let mut outputs: Vec<(String, Vec<f32>, Vec<f32>)> = Vec::new();
    for dev in t.devices().to_vec() {
        let outcome = (|| -> keel::layers::Result<(Vec<f32>, Vec<f32>, String)> {
            let (a, b) = seed_models(&dev)?;
            let input = Tensor::from_slice(&x, [2, 32, 32, 3], &dev)?;
            let ya = a.predict(&input)?;
            let yb = b.predict(&input)?;
            Ok((
                ya.to_vec()?,
                yb.to_vec()?,
                format!("{}\n{}", summary(&a), summary(&b)),
            ))
        })();
        match outcome {
            Ok((ya, yb, text)) => {
                let rows_sum_to_one = |y: &[f32]| {
                    y.len() == 6
                        && y.chunks(3)
                            .all(|r| (r.iter().sum::<f32>() - 1.0).abs() < 1e-4)
                };
                t.expect(
                    rows_sum_to_one(&ya) && rows_sum_to_one(&yb),
                    "both models give [2, 3] probabilities",
                    || format!("{ya:?} {yb:?} on {dev}"),
                );
                let has = |s: &str| text.contains(s);
                t.expect(
                    has("vgg16 (Sequential)")
                        && has("flatten (Flatten)")
                        && has("(None, 512)")
                        && has("Trainable params: 1,539")
                        && has("Non-trainable params: 14,714,688")
                        && has("global_average_pooling2d (GlobalAveragePooling2D)"),
                    "summaries name the layers, shapes and totals",
                    || text.clone(),
                );
                outputs.push((dev.to_string(), ya, yb));
            }
            Err(e) => t.expect(false, "seed models", || format!("{e} on {dev}")),
        }
    }
    if let [(d0, a0, b0), (d1, a1, b1), ..] = &outputs[..] {
        let diff = a0
            .iter()
            .chain(b0)
            .zip(a1.iter().chain(b1))
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max);
        t.expect(diff < 1e-4, "devices agree on both models", || {
            format!("{d0} vs {d1}: max difference {diff:.2e}")
        });
    }
    if let Ok((a, _)) = seed_models(&Device::cpu()) {
        println!("{}", summary(&a));
    }
}

/// Bits of every backbone weight (moving statistics included).
fn snapshot(model: &dyn Layer) -> keel::layers::Result<Vec<Vec<u32>>> {
    model
        .weights()
        .iter()
        .map(|w| {
            Ok(w.param
                .value()
                .to_vec()?
                .iter()
                .map(|v| v.to_bits())
                .collect())
        })
        .collect()
}

fn freezing_keeps_backbone_bit_identical(t: &mut Runner, rng: &mut Rng) {
    let x = rng.values(4 * 32 * 32 * 3, 0.0, 1.0);
    for dev in t.devices().to_vec() {
        let outcome = (|| -> keel::layers::Result<(bool, bool, usize)> {
            let mobilenet =
                backbones::mobilenet(&BackboneOptions::default().input(32, 32).alpha(0.25), &dev)?;
            mobilenet.set_trainable(false);
            let model = with_head(mobilenet, &gap_head(3).hidden(&[16]).dropout(0.5), &dev, 2)?;
            let backbone = &*model.layers()[0];
            let before = snapshot(backbone)?;
            let head_before = snapshot(&*model.layers()[2])?;
            let input = Var::constant(Tensor::from_slice(&x, [4, 32, 32, 3], &dev)?);
            let labels = Tensor::from_i32(vec![0, 1, 2, 0], [4], &dev)?;
            let loss = model
                .forward(&input, true)?
                .sparse_softmax_cross_entropy(&labels)?;
            let recorded = loss.graph_size();
            for (p, g) in loss.backward()?.iter() {
                p.set_value(p.value().sub(&g.mul_scalar(0.1)?)?)?;
            }
            Ok((
                snapshot(backbone)? == before,
                snapshot(&*model.layers()[2])? != head_before,
                recorded,
            ))
        })();
        match outcome {
            Ok((frozen_same, head_moved, recorded)) => {
                t.expect(frozen_same, "a training step leaves the frozen backbone (BN statistics included) bit-identical", || format!("changed on {dev}"));
                t.expect(head_moved, "the head's weights move", || {
                    format!("unchanged on {dev}")
                });
                // GAP, Dense+bias+ReLU, dropout, Dense+bias, loss, 4 leaves.
                t.expect(recorded <= 12, "the graph holds the head only", || {
                    format!("{recorded} nodes on {dev}")
                });
            }
            Err(e) => t.expect(false, "freezing", || format!("{e} on {dev}")),
        }
    }
}

fn mobilenet_top_n(t: &mut Runner, dev: &Device) -> keel::layers::Result<()> {
    let m = backbones::mobilenet(&BackboneOptions::default().input(32, 32), dev)?;
    m.set_trainable_top(3); // conv_pw_13 (1,048,576), conv_pw_13_bn (γ, β: 2,048), conv_pw_13_relu
    let s = summary(&m);
    count(
        t,
        "MobileNet with the top 3 layers unfrozen: trainable",
        s.trainable,
        1024 * 1024 + 2 * 1024,
    );
    count(
        t,
        "and the optimizer sees exactly those",
        m.trainable_params().len(),
        3,
    );
    Ok(())
}

/// Heads that cannot be built, or would not fit in memory, are errors that say why, before
/// anything is allocated.
fn head_checks(t: &mut Runner, _rng: &mut Rng) {
    let dev = Device::cpu();
    let backbone = || {
        backbones::mobilenet(&BackboneOptions::default().input(32, 32).alpha(0.25), &dev)
            .expect("backbone")
    };
    let message = |head: &HeadSpec| match with_head(backbone(), head, &dev, 0) {
        Ok(_) => "built".to_string(),
        Err(e) => e.to_string(),
    };
    let cases: [(&str, HeadSpec, &[&str]); 4] = [
        ("no classes", gap_head(0), &["at least 1 class, got 0"]),
        (
            "an empty hidden layer",
            flatten_head(3).hidden(&[16, 0]),
            &["hidden layer 2", "0 units"],
        ),
        (
            "a dropout rate of 1",
            gap_head(3).hidden(&[8]).dropout(1.0),
            &["dropout rate of 1"],
        ),
        (
            "a head over the memory limit",
            flatten_head(3).hidden(&[1 << 20]),
            &["needs about", "head weights", "more than the 1.0 MB"],
        ),
    ];
    for (case, head, words) in cases {
        let limited = case.contains("memory");
        if limited {
            std::env::set_var("KEEL_MEMORY_LIMIT", "1");
        }
        let msg = message(&head);
        if limited {
            std::env::remove_var("KEEL_MEMORY_LIMIT");
        }
        t.expect(words.iter().all(|w| msg.contains(w)), case, || msg.clone());
    }
    let sizes = flatten_head(3).hidden(&[16]).weight_sizes(&[2, 2, 8]);
    t.expect(
        sizes == [32 * 16, 16, 16 * 3, 3],
        "a head's weights are counted without building it",
        || format!("{sizes:?}"),
    );
}

/// Layer normalisation over the channels and a layer scale, against an f64 reference.
fn layer_norm_and_scale(t: &mut Runner, rng: &mut Rng) {
    use harness::{Expected, Input};
    use keel::layers::layers::{layer_norm, layer_scale};
    let x = Input::random_in(rng, &[2, 3, 4, 6], -3.0, 3.0);
    let (eps, scale) = (1e-3f64, 0.5f64);
    let want: Vec<f64> = x
        .f64()
        .chunks(6)
        .flat_map(|row| {
            let mean = row.iter().sum::<f64>() / 6.0;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 6.0;
            row.iter()
                .map(move |v| (v - mean) / (var + eps).sqrt() * scale)
                .collect::<Vec<_>>()
        })
        .collect();
    t.check(
        "layer_norm then layer_scale(0.5), [2, 3, 4, 6]",
        &[x],
        |v: &[Tensor]| -> keel::layers::Result<Tensor> {
            let model = keel::layers::sequential("ln")
                .add(layer_norm())
                .add(layer_scale(0.5))
                .build(&[3, 4, 6], v[0].device(), 0)?;
            model.predict(&v[0])
        },
        &Expected {
            shape: vec![2, 3, 4, 6],
            data: want,
        },
    );
}

/// Stochastic depth: while training, each sample keeps its shortcut and either loses the block's
/// output or gets it scaled by 1 / (1 − rate); the same samples on every device; inference
/// unchanged.
fn stochastic_depth(t: &mut Runner, rng: &mut Rng) {
    use keel::layers::layers::{conv2d, residual};
    let (n, rate) = (64, 0.5f32);
    let x = rng.values(n * 2 * 2 * 3, -1.0, 1.0);
    let mut kept_by_device = Vec::new();
    for dev in t.devices().to_vec() {
        let outcome = (|| -> keel::layers::Result<(Vec<f32>, Vec<f32>)> {
            let model = keel::layers::sequential("sd")
                .add(residual(keel::layers::sequential("body").add(conv2d(3, 1))).drop_path(rate))
                .build(&[2, 2, 3], &dev, 9)?;
            let input = Tensor::from_slice(&x, [n, 2, 2, 3], &dev)?;
            let eval = model.predict(&input)?.to_vec()?;
            let train = model
                .forward(&Var::constant(input), true)?
                .tensor()
                .to_vec()?;
            Ok((eval, train))
        })();
        let Ok((eval, train)) = outcome else {
            t.expect(false, "stochastic depth runs", || {
                format!("{:?} on {dev}", outcome.err())
            });
            continue;
        };
        let per_sample = 12;
        let mut kept = Vec::new();
        let mut consistent = true;
        for i in 0..n {
            let r = i * per_sample..(i + 1) * per_sample;
            let branch: Vec<f32> = r.clone().map(|j| eval[j] - x[j]).collect();
            let got: Vec<f32> = r.clone().map(|j| train[j] - x[j]).collect();
            let dropped = got.iter().all(|v| v.abs() < 1e-6);
            let scaled = got
                .iter()
                .zip(&branch)
                .all(|(g, b)| (g - b / (1.0 - rate)).abs() < 1e-5);
            consistent &= dropped || scaled;
            kept.push(!dropped);
        }
        let count = kept.iter().filter(|k| **k).count();
        t.expect(
            consistent && (16..=48).contains(&count),
            "each sample: block dropped, or kept and scaled by 2",
            || format!("{count} of {n} kept, consistent: {consistent}, on {dev}"),
        );
        kept_by_device.push(kept);
    }
    t.expect(
        kept_by_device.windows(2).all(|w| w[0] == w[1]),
        "the same samples dropped on every device",
        || "masks differ".into(),
    );
}
