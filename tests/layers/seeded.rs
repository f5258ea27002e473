//! Full-size torchvision and Keras Applications architectures against PyTorch and Keras
//! without committing their weights: every tensor is drawn from a generator seeded by its name,
//! the same one `tools/make_seeded_fixtures.py` implements (see there for the rule), and only
//! the reference library's outputs are committed (`tests/fixtures/seeded_logits.safetensors`,
//! `keras_seeded_io.safetensors`).

use crate::harness::{Rng, Runner};
use keel::layers::{
    backbones, load_weights, BackboneOptions, Layer, Layout, LoadOptions, Role, Weight,
};
use keel::{Device, Tensor};
use safetensors::tensor::{Dtype, TensorView};
use std::path::Path;

fn fnv1a(name: &str) -> u64 {
    name.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    })
}

/// `n` values in [-1, 1) of the stream named `name`.
fn uniform(name: &str, n: usize) -> Vec<f32> {
    let seed = fnv1a(name);
    (1..=n as u64)
        .map(|i| {
            let mut z = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

/// The shape PyTorch gives weight `w`.
fn torch_shape(w: &Weight) -> Vec<usize> {
    let keel = w.param.value().dims().to_vec();
    match (w.role, &keel[..]) {
        (Role::ConvKernel, &[h, k, i, o]) => vec![o, i, h, k],
        (Role::DepthwiseKernel, &[h, k, c, m]) => vec![c * m, 1, h, k],
        (Role::DenseKernel, &[i, o]) => vec![o, i],
        (Role::LayerScale, &[c]) => vec![c, 1, 1],
        _ => keel,
    }
}

/// The seeded values of the tensor `name` of shape `shape` in `layout`: PyTorch's fan-in is
/// over every axis but the first, Keras' over every axis but the last.
fn seeded(name: &str, shape: &[usize], layout: Layout) -> Vec<f32> {
    let v = uniform(name, shape.iter().product());
    if shape.len() >= 2 {
        let fan_in: usize = match layout {
            Layout::Torch => shape[1..].iter().product(),
            _ => shape[..shape.len() - 1].iter().product(),
        };
        let scale = (1.0 / (fan_in as f64).sqrt()) as f32;
        v.into_iter().map(|x| x * scale).collect()
    } else if [
        ".weight",
        "running_var",
        "/gamma",
        "/moving_variance",
        "/variance",
    ]
    .iter()
    .any(|s| name.ends_with(s))
    {
        v.into_iter().map(|x| 1.0 + 0.25 * x).collect()
    } else {
        v.into_iter().map(|x| 0.1 * x).collect()
    }
}

/// `model`'s weights drawn by the seeded rule, as a safetensors file in `layout` (Torch or
/// Keras).
fn seeded_file(model: &dyn Layer, path: &Path, layout: Layout) {
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = model
        .weights()
        .iter()
        .map(|w| {
            let (key, shape) = match layout {
                Layout::Torch => (w.torch_key(), torch_shape(w)),
                _ => (w.keras_key(), w.param.value().dims().to_vec()),
            };
            let bytes = seeded(&key, &shape, layout)
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            (key, shape, bytes)
        })
        .collect();
    let views = tensors.iter().map(|(k, shape, bytes)| {
        (
            k.clone(),
            TensorView::new(Dtype::F32, shape.clone(), bytes).expect("view"),
        )
    });
    std::fs::write(
        path,
        safetensors::serialize(views, None).expect("serialize"),
    )
    .expect("write");
}

/// Each architecture on every device: PyTorch's logits within 1e-4 of the largest.
pub fn torchvision_architectures(t: &mut Runner, _rng: &mut Rng) {
    let options = BackboneOptions::default().include_top(1000);
    architectures(t, "seeded_logits.safetensors", Layout::Torch, &options);
}

/// Keras Applications' forms on every device: Keras' outputs within 1e-4 of the largest.
pub fn keras_architectures(t: &mut Runner, _rng: &mut Rng) {
    architectures(
        t,
        "keras_seeded_io.safetensors",
        Layout::Keras,
        &BackboneOptions::default(),
    );
}

/// Every architecture of `fixture` (a key `ARCH`, or `ARCH@SIZE` for another input size than
/// 64×64) with seeded weights in `layout`, against its outputs.
fn architectures(t: &mut Runner, fixture: &str, layout: Layout, options: &BackboneOptions) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let expected =
        keel::layers::read_tensors(root.join("tests/fixtures").join(fixture), &Device::cpu())
            .expect("fixture");
    let dir = std::env::temp_dir().join(format!("keel-seeded-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch");
    for (key, want) in &expected {
        let (arch, size) = match key.split_once('@') {
            Some((arch, size)) => (arch, size.parse().expect("an input size")),
            None => (key.as_str(), 64),
        };
        let x = seeded_input(size, layout);
        let options = options.clone().input(size, size);
        let want = want.to_vec().expect("outputs");
        let largest = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for dev in t.devices().to_vec() {
            let outcome = (|| -> keel::layers::Result<Vec<f32>> {
                let model = backbones::by_name(arch, &options, &dev)?;
                let path = dir.join(format!("{arch}.safetensors"));
                seeded_file(&model, &path, layout);
                let strict = LoadOptions {
                    layout,
                    strict: true,
                    rename: None,
                };
                load_weights(&model, &path, strict)?;
                let input = Tensor::from_slice(&x, [2, size, size, 3], &dev)?;
                Ok(model.predict(&input)?.to_vec()?)
            })();
            match outcome {
                Ok(got) => {
                    let worst = crate::largest_difference(&got, &want);
                    t.expect(
                        got.len() == want.len() && worst <= 1e-4 * largest,
                        "the reference library's outputs within 1e-4 of the largest",
                        || format!("{key} on {dev}: difference {worst:.2e}, largest {largest:.3}"),
                    );
                }
                Err(e) => t.expect(false, "the seeded architecture runs", || {
                    format!("{key} on {dev}: {e}")
                }),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The seeded input of two `size` × `size` images, NHWC: drawn NCHW for PyTorch (and moved),
/// NHWC for Keras.
fn seeded_input(size: usize, layout: Layout) -> Vec<f32> {
    let plane = size * size;
    let drawn = uniform("input", 2 * 3 * plane);
    if layout != Layout::Torch {
        return drawn;
    }
    let mut x = vec![0.0; drawn.len()];
    for (i, v) in drawn.iter().enumerate() {
        let (n, c, p) = (i / (3 * plane), i / plane % 3, i % plane);
        x[(n * plane + p) * 3 + c] = *v;
    }
    x
}

/// timm's names (`tests/fixtures/timm_keys.txt`: each tensor's name and shape in timm 1.0's
/// `efficientnet_b0`, `mobilenetv3_large_100`, `mobilenetv3_small_100` and `convnext_tiny`)
/// load through `backbones::timm_key` strictly, and the seeded weights stored under them give
/// PyTorch's torchvision logits: every name maps to the torchvision weight of the same place.
pub fn timm_names(t: &mut Runner, _rng: &mut Rng) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let keys = std::fs::read_to_string(root.join("tests/fixtures/timm_keys.txt")).expect("keys");
    let expected = keel::layers::read_tensors(
        root.join("tests/fixtures/seeded_logits.safetensors"),
        &Device::cpu(),
    )
    .expect("fixture");
    let dir = std::env::temp_dir().join(format!("keel-timm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch");
    let dev = Device::cpu();
    for arch in [
        "efficientnet_b0",
        "mobilenet_v3_large",
        "mobilenet_v3_small",
        "convnext_tiny",
    ] {
        let rename = backbones::timm_key(arch).expect("a timm translation");
        let outcome = (|| -> keel::layers::Result<Vec<f32>> {
            let options = BackboneOptions::default().include_top(1000).input(64, 64);
            let model = backbones::by_name(arch, &options, &dev)?;
            let weights = model.weights();
            let mut tensors = Vec::new();
            for line in keys.lines().filter(|l| l.starts_with(&format!("{arch} "))) {
                let [_, key, shape] = line.split(' ').collect::<Vec<_>>()[..] else {
                    panic!("a line of timm_keys.txt: {line}");
                };
                let shape: Vec<usize> = shape
                    .split(',')
                    .map(|d| d.parse().expect("a dim"))
                    .collect();
                let torch = rename(key).unwrap_or_default();
                let Some(w) = weights.iter().find(|w| w.torch_key() == torch) else {
                    return Err(keel::layers::Error::Layer {
                        layer: arch.to_string(),
                        msg: format!("`{key}` maps to `{torch}`, no weight"),
                    });
                };
                let bytes: Vec<u8> = seeded(&torch, &torch_shape(w), Layout::Torch)
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect();
                tensors.push((key.to_string(), shape, bytes));
            }
            let views = tensors.iter().map(|(k, shape, bytes)| {
                (
                    k.clone(),
                    TensorView::new(Dtype::F32, shape.clone(), bytes).expect("view"),
                )
            });
            let path = dir.join(format!("{arch}.safetensors"));
            std::fs::write(
                &path,
                safetensors::serialize(views, None).expect("serialize"),
            )
            .expect("write");
            let options = LoadOptions {
                layout: Layout::Torch,
                strict: true,
                rename: Some(rename),
            };
            load_weights(&model, &path, options)?;
            let x = Tensor::from_slice(&seeded_input(64, Layout::Torch), [2, 64, 64, 3], &dev)?;
            Ok(model.predict(&x)?.to_vec()?)
        })();
        let want = expected[arch].to_vec().expect("logits");
        let largest = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        match outcome {
            Ok(got) => {
                let worst = crate::largest_difference(&got, &want);
                t.expect(
                    worst <= 1e-4 * largest,
                    "timm's names give torchvision's logits",
                    || format!("{arch}: difference {worst:.2e} of {largest:.3}"),
                );
            }
            Err(e) => t.expect(false, "timm's names load strictly", || {
                format!("{arch}: {e}")
            }),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
