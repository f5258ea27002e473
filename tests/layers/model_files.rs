//! Whole-model files: every layer's configuration survives the trip to JSON, the three
//! backbones with either head (trained a step, so that nothing is at its initial value) come
//! back from `save_model` → `load_model` with the outputs they had, on every device; bad
//! files are named; writes leave nothing behind.

use crate::harness::{Rng, Runner};
use keel::autograd::Var;
use keel::layers::layers::{
    activation, avg_pool2d, batch_norm, conv2d, dense, depthwise_conv2d, dropout, flatten,
    global_max_pool2d, layer_norm, layer_scale, max_pool2d, normalization, relu6, rescaling,
    residual, squeeze_excite, zero_padding2d, Activation,
};
use keel::layers::{
    backbones, flatten_head, gap_head, load_model, save_model, save_weights, sequential, with_head,
    write_atomic, BackboneOptions, Layer, LayerConfig, ModelInfo, Sequential,
};
use keel::{Device, Padding, Tensor};
use std::path::PathBuf;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keel-model-files-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A model with every layer kind keel has, each away from its defaults.
fn every_layer(dev: &Device) -> keel::layers::Result<Sequential> {
    sequential("every_layer")
        .add(rescaling(0.5, -1.0))
        .add(normalization(&[0.1, 0.2, 0.3], &[1.5, 2.0, 0.5]))
        .add(zero_padding2d((1, 0), (0, 2)))
        .add(
            conv2d(6, 3)
                .kernel_size((3, 2))
                .strides(2)
                .padding(Padding::Same)
                .groups(3)
                .activation(Activation::Tanh),
        )
        .add(
            depthwise_conv2d(3)
                .depth_multiplier(2)
                .padding(Padding::uniform(1))
                .use_bias(false),
        )
        .add(batch_norm().momentum(0.9).epsilon(1e-5))
        .add(relu6())
        .add(
            residual(
                sequential("block")
                    .add(conv2d(12, 1).dilation(1).name("block_conv"))
                    .add(activation(Activation::Sigmoid)),
            )
            .drop_path(0.1),
        )
        .add(
            residual(
                sequential("widen").add(conv2d(5, 3).padding(Padding::Same).name("widen_conv")),
            )
            .projection(sequential("widen_shortcut").add(conv2d(5, 1).name("widen_projection"))),
        )
        .add(
            squeeze_excite(2)
                .activation(Activation::Silu)
                .gate(Activation::HardSigmoid),
        )
        .add(activation(Activation::HardSwish))
        .add(layer_norm().epsilon(1e-6))
        .add(layer_scale(0.5))
        .add(activation(Activation::Gelu))
        .add(max_pool2d(2).strides(1))
        .add(avg_pool2d(2).padding(Padding::Same))
        .add(flatten())
        .add(dense(7).use_bias(false).activation(Activation::Relu))
        .add(dropout(0.25))
        .add(dense(3).activation(Activation::Softmax))
        .build(&[9, 8, 3], dev, 5)
}

pub fn configs_round_trip(t: &mut Runner, _rng: &mut Rng) {
    let dev = Device::cpu();
    let outcome = (|| -> keel::layers::Result<_> {
        let model = every_layer(&dev)?;
        let config = model.config();
        let json = serde_json::to_string(&config).expect("serialise");
        let back: LayerConfig = serde_json::from_str(&json).expect("deserialise");
        let rebuilt = back.to_sequential_spec().build(&[9, 8, 3], &dev, 0)?;
        let mut gap = sequential("gap").add(global_max_pool2d());
        gap = gap.add(dense(2));
        let small = gap.build(&[4, 4, 3], &dev, 0)?;
        Ok((config, back, rebuilt.config(), small.config()))
    })();
    match outcome {
        Ok((config, back, rebuilt, small)) => {
            t.expect(
                config == back && rebuilt == config,
                "every layer's configuration survives JSON and builds the same layer again",
                || format!("{config:?}\n{back:?}"),
            );
            t.expect(
                matches!(&small, LayerConfig::Sequential { layers, .. } if matches!(layers[0], LayerConfig::GlobalPooling2D { .. })),
                "global pooling is described",
                || format!("{small:?}"),
            );
        }
        Err(e) => t.expect(false, "configs", || e.to_string()),
    }
}

/// The transfer models: each backbone (small inputs, narrow where it can be) with a head.
fn transfer_models(dev: &Device) -> keel::layers::Result<Vec<Sequential>> {
    let opts = BackboneOptions::default().input(32, 32);
    let vgg = backbones::vgg16(&opts, dev)?;
    let mobilenet = backbones::mobilenet(&opts.clone().alpha(0.25), dev)?;
    let mobilenet_v2 = backbones::mobilenet_v2(&opts.alpha(0.35), dev)?;
    vgg.set_trainable(false);
    mobilenet.set_trainable(false);
    Ok(vec![
        with_head(vgg, &flatten_head(3), dev, 1)?,
        with_head(mobilenet, &gap_head(3).hidden(&[8]).dropout(0.5), dev, 2)?,
        // Trainable throughout, so that batch-norm statistics move too.
        with_head(
            mobilenet_v2,
            &gap_head(4).output_activation(Activation::Softmax),
            dev,
            3,
        )?,
    ])
}

/// A model's name, its outputs before saving and after loading, and whether its description
/// came back unchanged.
type RoundTrip = (String, Vec<f32>, Vec<f32>, bool);

/// One SGD step on a random batch, training mode (moves weights and batch-norm statistics).
fn train_a_step(model: &Sequential, x: &Tensor) -> keel::layers::Result<()> {
    let out = model.forward(&Var::constant(x.clone()), true)?;
    out.mul(&out)?.sum_all()?.backward()?;
    for p in model.trainable_params() {
        if let Some(g) = p.grad() {
            p.set_value(p.value().sub(&g.mul_scalar(1e-3)?)?)?;
            p.zero_grad();
        }
    }
    Ok(())
}

pub fn save_load_predict(t: &mut Runner, rng: &mut Rng) {
    let x = rng.values(2 * 32 * 32 * 3, -1.0, 1.0);
    let dir = scratch("save-load");
    for dev in t.devices().to_vec() {
        let outcome = (|| -> keel::layers::Result<Vec<RoundTrip>> {
            let input = Tensor::from_slice(&x, [2, 32, 32, 3], &dev)?;
            let mut out = Vec::new();
            for model in transfer_models(&dev)? {
                train_a_step(&model, &input)?;
                let path = dir.join(format!("{}.safetensors", model.layers()[0].name()));
                let info = ModelInfo {
                    classes: (0..model.output_shape()[0])
                        .map(|i| format!("class {i}"))
                        .collect(),
                    preprocessing: Some("torchvision".into()),
                };
                save_model(&model, &info, &path)?;
                let loaded = load_model(&path, &dev)?;
                let same_info = loaded.info == info
                    && loaded.model.input_shape() == model.input_shape()
                    && loaded.model.config() == model.config();
                out.push((
                    model.layers()[0].name().to_string(),
                    model.predict(&input)?.to_vec()?,
                    loaded.model.predict(&input)?.to_vec()?,
                    same_info,
                ));
            }
            Ok(out)
        })();
        match outcome {
            Ok(results) => {
                for (name, want, got, same_info) in results {
                    t.expect(
                        got == want && same_info,
                        &format!("{name} with its head: saved and loaded, the same outputs"),
                        || format!("{got:?} vs {want:?} on {dev} (info kept: {same_info})"),
                    );
                }
            }
            Err(e) => t.expect(false, "save and load", || format!("{e} on {dev}")),
        }
    }
}

pub fn bad_model_files(t: &mut Runner, _rng: &mut Rng) {
    let dev = Device::cpu();
    let dir = scratch("bad");
    let model = every_layer(&dev).expect("model");
    let weights_only = dir.join("weights.safetensors");
    save_weights(&model, &weights_only).expect("save");
    let msg = load_model(&weights_only, &dev)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    t.expect(
        msg.contains("weights.safetensors") && msg.contains("weights only"),
        "a weights-only file is not taken for a model",
        || msg.clone(),
    );
    let whole = dir.join("model.safetensors");
    save_model(&model, &ModelInfo::default(), &whole).expect("save");
    let bytes = std::fs::read(&whole).expect("read");
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let msg = load_model(&cut, &dev)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    t.expect(
        msg.contains("cut.safetensors") && msg.contains("not a valid safetensors file"),
        "a truncated model file is named",
        || msg.clone(),
    );
    // Overwriting leaves the file and nothing else.
    for _ in 0..3 {
        save_model(&model, &ModelInfo::default(), &whole).expect("save");
    }
    write_atomic(dir.join("notes.json"), b"{}").expect("write");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    t.expect(
        names
            == [
                "cut.safetensors",
                "model.safetensors",
                "notes.json",
                "weights.safetensors",
            ],
        "atomic writes leave no temporary file",
        || format!("{names:?}"),
    );
}

/// Whole Keras models as Keras' `model.save` wrote them (`tools/make_keras_fixtures.py`): each
/// loads with `load_model` and gives Keras' outputs on every device, frozen where Keras froze
/// it and with the preprocessing of its backbone; models outside what keel builds are refused
/// by their first such layer.
pub fn keras_whole_models(t: &mut Runner, _rng: &mut Rng) {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let io = "tests/fixtures/keras_transfer_io.safetensors";
    let (x_shape, x) = crate::golden::fixture(io, "input");
    let (small_shape, small_x) =
        crate::golden::fixture("tests/fixtures/keras_small_io.safetensors", "input");
    // (file, input, its shape, Keras' output, trainable parameters, preprocessing)
    let cases = [
        (
            "keras_small.h5",
            &small_x,
            &small_shape,
            crate::golden::fixture("tests/fixtures/keras_small_io.safetensors", "output").1,
            4 * 27 + 4 + 8 + 3 * 3 * 4 + 4 + 4 * 4 * 4 * 5 + 5,
            None,
        ),
        (
            "keras_transfer_nested.keras",
            &x,
            &x_shape,
            crate::golden::fixture(io, "nested").1,
            1280 * 3 + 3,
            Some("tf"),
        ),
        (
            "keras_transfer_flat.h5",
            &x,
            &x_shape,
            crate::golden::fixture(io, "flat").1,
            0,
            Some("tf"),
        ),
    ];
    for dev in t.devices().to_vec() {
        for (file, input, shape, want, trainable, preprocessing) in &cases {
            let outcome = (|| -> keel::layers::Result<(Vec<f32>, usize, Option<String>)> {
                let saved = load_model(fixtures.join(file), &dev)?;
                let y = saved
                    .model
                    .predict(&Tensor::from_slice(input, shape.to_vec(), &dev)?)?;
                let trainable = keel::layers::summary(&saved.model).trainable;
                Ok((y.to_vec()?, trainable, saved.info.preprocessing))
            })();
            match outcome {
                Ok((got, got_trainable, got_preprocessing)) => {
                    let largest = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    let worst = crate::largest_difference(&got, want);
                    t.expect(
                        got.len() == want.len() && worst <= 1e-4 * largest,
                        "a whole Keras model gives Keras' outputs",
                        || format!("{file} on {dev}: difference {worst:.2e} of {largest:.3}"),
                    );
                    // The flat model's trainable count is everything but the statistics.
                    let full = *trainable == 0;
                    t.expect(
                        full || got_trainable == *trainable,
                        "layers Keras froze stay frozen",
                        || format!("{file}: {got_trainable} trainable, want {trainable}"),
                    );
                    t.expect(
                        got_preprocessing.as_deref() == *preprocessing,
                        "the backbone's preprocessing is reported",
                        || format!("{file}: {got_preprocessing:?}"),
                    );
                }
                Err(e) => t.expect(false, "a whole Keras model loads", || {
                    format!("{file} on {dev}: {e}")
                }),
            }
        }
    }
    for (file, names) in [
        ("keras_refused_add.keras", ["`skip`", "Add"]),
        ("keras_refused_transpose.keras", ["`up`", "Conv2DTranspose"]),
        ("keras_small.weights.h5", ["weights only", "load_weights"]),
    ] {
        let msg = match load_model(fixtures.join(file), &Device::cpu()) {
            Ok(_) => "loaded".to_string(),
            Err(e) => e.to_string(),
        };
        t.expect(
            names.iter().all(|n| msg.contains(n)) && msg.contains(file),
            "a model keel cannot build is refused by its first such layer, naming the file",
            || msg.clone(),
        );
    }
}

/// `Sequential::folded`: batch norms folded into the convolutions before them give what the
/// model predicts, within 1e-5 of the largest output, on every device and every backbone with
/// batch norms (random statistics, so that no batch norm is the identity); the original model
/// keeps its layers and outputs.
pub fn folded_batch_norms(t: &mut Runner, rng: &mut Rng) {
    let options = BackboneOptions::default().input(64, 64);
    for dev in t.devices().to_vec() {
        for name in [
            "mobilenet",
            "mobilenet_v2",
            "keras_mobilenet_v2",
            "keras_resnet50",
            "resnet18",
            "efficientnet_b0",
            "mobilenet_v3_small",
            "keras_efficientnet_b0",
        ] {
            let outcome = (|| -> keel::layers::Result<(f32, f32, usize, usize, bool)> {
                let model = backbones::by_name(name, &options, &dev)?;
                for w in model.weights() {
                    let n = w.param.value().elem_count();
                    let (lo, hi) = match w.role.keras_name() {
                        "moving_variance" | "gamma" => (0.5, 1.5),
                        "moving_mean" | "beta" => (-0.5, 0.5),
                        _ => continue,
                    };
                    let dims = w.param.value().dims().to_vec();
                    w.param
                        .set_value(Tensor::from_vec(rng.values(n, lo, hi), dims, &dev)?)?;
                }
                let x =
                    Tensor::from_vec(rng.values(2 * 64 * 64 * 3, -1.0, 1.0), [2, 64, 64, 3], &dev)?;
                let want = model.predict(&x)?.to_vec()?;
                let folded = model.folded()?;
                let got = folded.predict(&x)?.to_vec()?;
                let norms = |m: &dyn Layer| {
                    m.weights()
                        .iter()
                        .filter(|w| w.role == keel::layers::Role::MovingMean)
                        .count()
                };
                let again = model.predict(&x)?.to_vec()? == want;
                let largest = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                Ok((
                    crate::largest_difference(&got, &want),
                    largest,
                    norms(&model),
                    norms(&folded),
                    again,
                ))
            })();
            match outcome {
                Ok((worst, largest, before, after, unchanged)) => t.expect(
                    worst <= 1e-5 * largest && after < before && unchanged,
                    "folded batch norms give the model's outputs, and the model is unchanged",
                    || format!("{name} on {dev}: difference {worst:.2e} of {largest:.3}, batch norms {before} → {after}, original unchanged: {unchanged}"),
                ),
                Err(e) => t.expect(false, "folding", || format!("{name} on {dev}: {e}")),
            }
        }
    }
}
