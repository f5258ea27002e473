//! Bounded fuzzing of the readers of files that come from outside: the safetensors, PyTorch
//! `.pth` and Keras HDF5 weights readers, the idx reader, the image-folder indexer (with decoding),
//! the saved-model loader and the loader of whole Keras models (`.h5`, `.keras`).
//! Each target starts from real files keel writes or reads, mutates them (truncations, bit
//! flips, overwritten bytes, cut or doubled chunks, and lying lengths, shapes, offsets and
//! sizes) and feeds them in for a fixed time. Every input must give a result or an error:
//! a panic fails the run, and an input that takes longer than a watchdog's limit aborts it,
//! naming the target and the input.
//!
//! `cargo test --test fuzz` runs each target for `KEEL_FUZZ_SECONDS` (default 8) and prints
//! how many inputs it tried; `cargo test --test fuzz -- idx` runs the targets whose names match.

#[allow(dead_code)]
#[path = "../ops/harness.rs"]
mod harness;

use harness::Rng;
use keel::data::{idx::read_idx, ImageOptions, Images, Preset, Samples};
use keel::layers::layers::{batch_norm, conv2d, dense, flatten, Activation};
use keel::layers::{load_model, load_weights, read_tensors, save_model, save_weights, sequential};
use keel::layers::{LoadOptions, ModelInfo, Sequential};
use keel::{Device, Padding};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The message of the last panic.
static PANIC: Mutex<String> = Mutex::new(String::new());

/// An input that takes longer than this is a hang.
const WATCHDOG: Duration = Duration::from_secs(20);

/// A value below `n` (0 for `n` = 0).
fn below(rng: &mut Rng, n: usize) -> usize {
    (rng.next_u64() % n.max(1) as u64) as usize
}

/// A number a lying header might hold: small, on a power of two's edge, or huge.
fn lie(rng: &mut Rng) -> u64 {
    match below(rng, 4) {
        0 => below(rng, 4097) as u64,
        1 => (1u64 << below(rng, 63))
            .wrapping_add(below(rng, 3) as u64)
            .wrapping_sub(1),
        2 => u64::MAX - below(rng, 3) as u64,
        _ => {
            let shift = below(rng, 64);
            rng.next_u64() >> shift
        }
    }
}

/// Where a target's input goes: a file of its own under the scratch folder.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keel-fuzz-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// One to four mutations of `seed`.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..1 + below(rng, 4) {
        let len = bytes.len();
        match below(rng, 7) {
            // Truncate.
            0 => bytes.truncate(below(rng, len + 1)),
            // Flip a few bits.
            1 => {
                for _ in 0..1 + below(rng, 8) {
                    if len > 0 {
                        let at = below(rng, len);
                        bytes[at] ^= 1 << below(rng, 8);
                    }
                }
            }
            // Overwrite a byte with a telling value.
            2 => {
                if len > 0 {
                    let at = below(rng, len);
                    bytes[at] = [0, 0xff, 0x7f, 0x80, b'9', b'-', b'"'][below(rng, 7)];
                }
            }
            // Cut a chunk out.
            3 => {
                let a = below(rng, len + 1);
                let b = (a + below(rng, 64)).min(len);
                bytes.drain(a..b);
            }
            // Repeat a chunk.
            4 => {
                let a = below(rng, len + 1);
                let b = (a + below(rng, 64)).min(len);
                let chunk = bytes[a..b].to_vec();
                bytes.splice(a..a, chunk);
            }
            // A lying 4- or 8-byte length, little or big endian (safetensors' header length,
            // idx dimensions).
            5 => {
                let width = if below(rng, 2) == 0 { 4 } else { 8 };
                if len >= width {
                    let at = if below(rng, 2) == 0 {
                        0
                    } else {
                        below(rng, len - width + 1)
                    };
                    let value = lie(rng);
                    let le = value.to_le_bytes();
                    let be = value.to_be_bytes();
                    let src = if below(rng, 2) == 0 {
                        &le[..width]
                    } else {
                        &be[8 - width..]
                    };
                    bytes[at..at + width].copy_from_slice(src);
                }
            }
            // A lying number in text (a JSON header's shape, offsets or layer sizes).
            _ => lie_in_text(&mut bytes, rng),
        }
    }
    bytes
}

/// Replaces one run of ASCII digits with a lying number.
fn lie_in_text(bytes: &mut Vec<u8>, rng: &mut Rng) {
    let runs: Vec<(usize, usize)> = {
        let mut runs = Vec::new();
        let mut i = 0;
        // Only the start of the file: safetensors' JSON header (the data after it is binary).
        let end = bytes.len().min(64 << 10);
        while i < end {
            if bytes[i].is_ascii_digit() {
                let start = i;
                while i < end && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                runs.push((start, i));
            }
            i += 1;
        }
        runs
    };
    if runs.is_empty() {
        return;
    }
    let (a, b) = runs[below(rng, runs.len())];
    let value = lie(rng).to_string();
    bytes.splice(a..b, value.into_bytes());
}

/// What a target does with one input file: `Ok` or `Err` are both fine, only panics and hangs
/// are failures.
type Run = Box<dyn Fn(&Path) -> Result<(), String>>;

struct Target {
    name: &'static str,
    /// Real files to start from.
    seeds: Vec<Vec<u8>>,
    /// The input's file name (its extension tells readers what it is).
    file: &'static str,
    run: Run,
}

/// The input being tried, for the watchdog's report.
struct Current {
    target: &'static str,
    input: u64,
    started: Instant,
}

fn watchdog(current: Arc<Mutex<Option<Current>>>) {
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_secs(1));
        let guard = current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = guard.as_ref() {
            if c.started.elapsed() > WATCHDOG {
                println!(
                    "FAILED {}: input {} has run for more than {:?} (a hang)",
                    c.target, c.input, WATCHDOG
                );
                let _ = std::io::stdout().flush();
                std::process::exit(1);
            }
        }
    });
}

/// Runs `target` for `budget`; returns the inputs tried, or the first panic.
fn fuzz(
    target: &Target,
    budget: Duration,
    current: &Arc<Mutex<Option<Current>>>,
) -> Result<u64, String> {
    let dir = scratch(target.name);
    let path = dir.join(target.file);
    let mut rng = Rng::new(target.name.len() as u64 * 7919);
    let tried = AtomicU64::new(0);
    let start = Instant::now();
    while start.elapsed() < budget {
        let n = tried.fetch_add(1, Ordering::Relaxed);
        let seed = &target.seeds[below(&mut rng, target.seeds.len())];
        let input = mutate(seed, &mut rng);
        std::fs::write(&path, &input).map_err(|e| format!("{}: {e}", path.display()))?;
        *current.lock().unwrap_or_else(|e| e.into_inner()) = Some(Current {
            target: target.name,
            input: n,
            started: Instant::now(),
        });
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (target.run)(&path)));
        if outcome.is_err() {
            let kept = dir.with_extension("panic");
            let _ = std::fs::write(&kept, &input);
            return Err(format!(
                "input {n} panicked (kept as {}): {}",
                kept.display(),
                PANIC.lock().unwrap_or_else(|e| e.into_inner())
            ));
        }
    }
    *current.lock().unwrap_or_else(|e| e.into_inner()) = None;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(tried.into_inner())
}

/// A small model with convolution, batch norm and Dense weights.
fn small_model(device: &Device) -> Sequential {
    sequential("small")
        .add(
            conv2d(4, 3)
                .padding(Padding::Same)
                .activation(Activation::Relu),
        )
        .add(batch_norm())
        .add(flatten())
        .add(dense(3))
        .build(&[6, 5, 2], device, 1)
        .expect("the small model builds")
}

/// The bytes of `tests/fixtures/NAME`.
fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(path).expect("fixture")
}

fn safetensors_target(dir: &Path) -> Target {
    let device = Device::cpu();
    let model = small_model(&device);
    let path = dir.join("small.safetensors");
    save_weights(&model, &path).expect("save weights");
    let mut seeds = vec![std::fs::read(&path).expect("read weights")];
    seeds.push(fixture("tiny_mobilenet_v2_io.safetensors"));
    Target {
        name: "safetensors",
        seeds,
        file: "weights.safetensors",
        run: Box::new(move |p| {
            load_weights(&model, p, LoadOptions::default())
                .map(|_| ())
                .map_err(|e| e.to_string())
        }),
    }
}

/// PyTorch files: the zip and legacy fixtures, a wrapped state dict and a refused pickle.
fn pth_target() -> Target {
    Target {
        name: "pth",
        seeds: [
            "torch_small_zip.pth",
            "torch_small_legacy.pth",
            "torch_small_wrapped.pth",
            "torch_evil.pth",
        ]
        .map(fixture)
        .to_vec(),
        file: "weights.pth",
        run: Box::new(|p| {
            read_tensors(p, &Device::cpu())
                .map(|_| ())
                .map_err(|e| e.to_string())
        }),
    }
}

/// Keras HDF5 files: Keras 3's `.weights.h5` and the legacy `.h5` of `model.save`.
fn keras_target() -> Target {
    Target {
        name: "keras_h5",
        seeds: ["keras_small.weights.h5", "keras_small.h5"]
            .map(fixture)
            .to_vec(),
        file: "weights.h5",
        run: Box::new(|p| {
            read_tensors(p, &Device::cpu())
                .map(|_| ())
                .map_err(|e| e.to_string())
        }),
    }
}

/// Whole Keras models: the legacy `.h5` of `model.save` and `.keras` archives.
fn keras_model_target() -> Target {
    Target {
        name: "keras_model",
        seeds: [
            "keras_small.h5",
            "keras_refused_add.keras",
            "keras_refused_transpose.keras",
        ]
        .map(fixture)
        .to_vec(),
        file: "model.keras",
        run: Box::new(|p| {
            load_model(p, &Device::cpu())
                .map(|_| ())
                .map_err(|e| e.to_string())
        }),
    }
}

fn idx_target(dir: &Path) -> Target {
    // Images (rank 3) and labels (rank 1), raw and gzip'd.
    let mut images = vec![0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 4, 0, 0, 0, 3];
    images.extend((0..60u8).map(|v| v.wrapping_mul(37)));
    let labels = vec![0, 0, 8, 1, 0, 0, 0, 5, 1, 0, 2, 1, 0];
    let gzip = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("gzip");
        e.finish().expect("gzip")
    };
    let _ = dir;
    Target {
        name: "idx",
        seeds: vec![images.clone(), labels.clone(), gzip(&images), gzip(&labels)],
        file: "data-idx3-ubyte.gz",
        run: Box::new(|p| read_idx(p).map(|_| ()).map_err(|e| e.to_string())),
    }
}

/// The encoded bytes of a small picture in `format`.
fn picture(format: image::ImageFormat, shade: u8) -> Vec<u8> {
    let img =
        image::RgbImage::from_fn(9, 7, |x, y| image::Rgb([shade, x as u8 * 20, y as u8 * 30]));
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), format)
        .expect("encode");
    bytes
}

fn folder_target(dir: &Path) -> Target {
    use image::ImageFormat as F;
    let seeds = [F::Png, F::Jpeg, F::Bmp, F::Gif, F::WebP]
        .iter()
        .enumerate()
        .map(|(i, &f)| picture(f, i as u8 * 40))
        .collect();
    // The mutated file sits in a class folder beside intact images; the indexer and every
    // sample's decoding must cope.
    let root = dir.join("folder");
    for class in ["a", "b"] {
        std::fs::create_dir_all(root.join(class)).expect("class folder");
    }
    std::fs::write(root.join("a/good.png"), picture(F::Png, 200)).expect("image");
    std::fs::write(root.join("b/good.jpg"), picture(F::Jpeg, 100)).expect("image");
    Target {
        name: "image_folder",
        seeds,
        file: "input",
        run: Box::new(move |p| {
            std::fs::copy(p, root.join("b/input.jpg")).map_err(|e| e.to_string())?;
            let options = ImageOptions::new(8, Preset::Torchvision);
            let images = Images::from_folder(&root, &options).map_err(|e| e.to_string())?;
            let mut out = vec![0f32; images.sample_shape().iter().product()];
            for i in 0..images.len() {
                images.read(i, &mut out).map_err(|e| e.to_string())?;
            }
            Ok(())
        }),
    }
}

fn model_target(dir: &Path) -> Target {
    let device = Device::cpu();
    let model = small_model(&device);
    let path = dir.join("model.safetensors");
    let info = ModelInfo {
        classes: vec!["x".into(), "y".into(), "z".into()],
        preprocessing: Some(Preset::Torchvision.name().to_string()),
    };
    save_model(&model, &info, &path).expect("save model");
    Target {
        name: "saved_model",
        seeds: vec![std::fs::read(&path).expect("read model")],
        file: "model.safetensors",
        run: Box::new(move |p| {
            load_model(p, &device)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }),
    }
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let seconds: u64 = std::env::var("KEEL_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    // A panic is reported with its input; its message is kept for that report.
    std::panic::set_hook(Box::new(|info| {
        *PANIC.lock().unwrap_or_else(|e| e.into_inner()) = info.to_string();
    }));
    let seeds = scratch("seeds");
    let targets = [
        safetensors_target(&seeds),
        pth_target(),
        keras_target(),
        keras_model_target(),
        idx_target(&seeds),
        folder_target(&seeds),
        model_target(&seeds),
    ];
    let current = Arc::new(Mutex::new(None));
    watchdog(current.clone());
    let mut failed = 0;
    for target in &targets {
        if !filter.is_empty() && !filter.iter().any(|f| target.name.contains(f.as_str())) {
            continue;
        }
        match fuzz(target, Duration::from_secs(seconds), &current) {
            Ok(n) => println!(
                "fuzz {} ... ok: {n} inputs in {seconds} s, no panic, no hang",
                target.name
            ),
            Err(e) => {
                println!("fuzz {} ... FAILED: {e}", target.name);
                failed += 1;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&seeds);
    if failed > 0 {
        std::process::exit(1);
    }
}
