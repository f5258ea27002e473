//! Features: the outputs of a model's frozen first layers on a data set, computed once — Keras'
//! `features = conv_base.predict(data)` — and then trained on as a data set of their own. They
//! stay in memory up to a budget shared by every feature set made with it; beyond it they go
//! to a scratch file without a name (it vanishes with the process) and are read back by batch.

use crate::fit::infer;
use crate::Result;
use keel_data::{for_each_batch, progress_bar, Augment, BatchOptions, Preset, Provenance, Samples};
use keel_layers::{scratch_file, Layer};
use keel_tensor::Device;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Bytes of features that may stay in memory, shared by the feature sets made with it (clones
/// share it).
#[derive(Clone, Debug)]
pub struct MemoryBudget(Arc<Mutex<u64>>);

impl MemoryBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: u64) -> MemoryBudget {
        MemoryBudget(Arc::new(Mutex::new(bytes)))
    }

    /// Bytes not yet taken.
    pub fn remaining(&self) -> u64 {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `bytes` if that many remain; they come back when the reservation is dropped.
    fn reserve(&self, bytes: u64) -> Option<Reservation> {
        let mut left = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (*left >= bytes).then(|| {
            *left -= bytes;
            Reservation {
                budget: self.clone(),
                bytes,
            }
        })
    }
}

/// Bytes taken from a [`MemoryBudget`] until dropped.
struct Reservation {
    budget: MemoryBudget,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        *self.budget.0.lock().unwrap_or_else(|e| e.into_inner()) += self.bytes;
    }
}

/// How features are computed and kept.
#[derive(Clone, Debug)]
pub struct FeatureOptions {
    /// Memory for features; a set that does not fit goes to a file in `dir`. 1 GiB by default.
    pub budget: MemoryBudget,
    /// Where features beyond the budget go (the system's temporary folder by default).
    pub dir: PathBuf,
    /// Show a progress bar.
    pub progress: bool,
    /// How each value is kept: f32, or f16 for half the memory, disk and reading (values are
    /// rounded to 11 significant bits; training still computes in f32).
    pub precision: Precision,
}

impl Default for FeatureOptions {
    fn default() -> Self {
        FeatureOptions {
            budget: MemoryBudget::new(1 << 30),
            dir: std::env::temp_dir(),
            progress: true,
            precision: Precision::F32,
        }
    }
}

/// How a feature value is stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// 4 bytes, as computed.
    #[default]
    F32,
    /// 2 bytes (IEEE half): a relative error of at most 2^-11 for values up to 65,504; larger
    /// ones become infinite, which training reports as a non-finite loss.
    F16,
}

impl Precision {
    /// Bytes per value.
    pub fn bytes(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 2,
        }
    }

    /// `values` as stored bytes.
    fn encode(self, values: &[f32]) -> Vec<u8> {
        match self {
            Precision::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Precision::F16 => values
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
        }
    }

    /// Stored bytes back into `out`.
    fn decode(self, bytes: &[u8], out: &mut [f32]) {
        match self {
            Precision::F32 => {
                for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                    *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            Precision::F16 => {
                for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
                }
            }
        }
    }
}

/// Where the values are, as stored bytes.
enum Store {
    Memory(Vec<u8>),
    File(File),
}

/// A data set of features (see the module docs): the labels, classes and preprocessing of the
/// samples they came from, and the [`Provenance`] that ties them to the layers that made them.
pub struct Features {
    store: Store,
    precision: Precision,
    labels: Vec<i32>,
    shape: Vec<usize>,
    classes: Vec<String>,
    preset: Option<Preset>,
    provenance: Provenance,
    seconds: f64,
    _reservation: Option<Reservation>,
}

impl Features {
    /// Whether the values are in memory (else in a scratch file).
    pub fn in_memory(&self) -> bool {
        matches!(self.store, Store::Memory(_))
    }

    /// Bytes of feature values, as stored.
    pub fn bytes(&self) -> u64 {
        (self.labels.len() * self.sample_len() * self.precision.bytes()) as u64
    }

    /// Seconds it took to compute them.
    pub fn seconds(&self) -> f64 {
        self.seconds
    }

    fn sample_len(&self) -> usize {
        self.shape.iter().product()
    }
}

impl Samples for Features {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn sample_shape(&self) -> &[usize] {
        &self.shape
    }
    fn classes(&self) -> &[String] {
        &self.classes
    }
    fn label(&self, index: usize) -> i32 {
        self.labels[index]
    }
    fn read(&self, index: usize, out: &mut [f32]) -> keel_data::Result<bool> {
        let width = self.sample_len() * self.precision.bytes();
        match &self.store {
            Store::Memory(bytes) => self
                .precision
                .decode(&bytes[index * width..(index + 1) * width], out),
            Store::File(file) => {
                let mut bytes = vec![0u8; width];
                read_at(file, &mut bytes, (index * width) as u64).map_err(|e| {
                    keel_data::Error::Io {
                        path: PathBuf::from("<feature scratch file>"),
                        source: e,
                    }
                })?;
                self.precision.decode(&bytes, out);
            }
        }
        Ok(true)
    }
    fn preset(&self) -> Option<Preset> {
        self.preset
    }
    fn provenance(&self) -> Option<&Provenance> {
        Some(&self.provenance)
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

/// A hash of the names and weight values of `layers` (FNV-1a over 64-bit words).
pub fn fingerprint(layers: &[&dyn Layer]) -> Result<u64> {
    const PRIME: u64 = 0x0000_0100_0000_01B3;
    let mut hash: u64 = 0xCBF2_9CE4_8422_2325;
    let mut mix = |word: u64| hash = (hash ^ word).wrapping_mul(PRIME);
    for layer in layers {
        layer.name().bytes().for_each(|b| mix(u64::from(b)));
        for weight in layer.weights() {
            let values = weight.param.value().to_vec()?;
            mix(values.len() as u64);
            for pair in values.chunks(2) {
                let lo = u64::from(pair[0].to_bits());
                let hi = pair.get(1).map_or(0, |v| u64::from(v.to_bits()));
                mix(lo | hi << 32);
            }
        }
    }
    Ok(hash)
}

/// What comes out of `layers`: the provenance of features they compute from `data`.
fn provenance_after(data: &dyn Samples, layers: &[&dyn Layer]) -> Result<Provenance> {
    let mut names = data
        .provenance()
        .map_or_else(Vec::new, |p| p.layers.clone());
    names.extend(layers.iter().map(|l| l.name().to_string()));
    let before = data.provenance().map_or(0, |p| p.weights);
    Ok(Provenance {
        layers: names,
        weights: before.rotate_left(1) ^ fingerprint(layers)?,
    })
}

/// Runs `layers` (frozen; inference mode) on every sample of `data` once, in `batches`, and
/// keeps the outputs, in memory when the budget allows, else in a scratch file. `what` names the
/// set in the progress bar (`training data`, say).
pub fn extract_features(
    layers: &[&dyn Layer],
    data: &dyn Samples,
    options: &FeatureOptions,
    batches: &BatchOptions,
    device: &Device,
    what: &str,
) -> Result<Features> {
    let start = Instant::now();
    let Some(last) = layers.last() else {
        return Err(crate::Error::Mismatch(
            "no layers to compute features with".into(),
        ));
    };
    let shape = last.output_shape().to_vec();
    let n: usize = shape.iter().product();
    let precision = options.precision;
    let bytes = (data.len() * n * precision.bytes()) as u64;
    let reservation = options.budget.reserve(bytes);
    let mut store = match reservation {
        Some(_) => Store::Memory(Vec::with_capacity(bytes as usize)),
        None => Store::File(scratch_file(&options.dir)?),
    };
    let names: Vec<&str> = layers.iter().map(|l| l.name()).collect();
    let progress = progress_bar(
        options.progress,
        data.len() as u64,
        format!("features of {} on {what}", names.join(", ")),
    );
    let mut labels = Vec::with_capacity(data.len());
    let order: Vec<usize> = (0..data.len()).collect();
    for_each_batch(
        data,
        &order,
        batches,
        &Augment::none(),
        0,
        |batch| -> Result<()> {
            let count = batch.labels.len() as u64;
            labels.extend(&batch.labels);
            let values = infer(layers.iter().copied(), batch, device)?.to_vec()?;
            let encoded = precision.encode(&values);
            match &mut store {
                Store::Memory(all) => all.extend_from_slice(&encoded),
                Store::File(file) => {
                    file.write_all(&encoded)
                        .map_err(|e| keel_layers::Error::Io {
                            path: options.dir.clone(),
                            source: e,
                        })?
                }
            }
            progress.inc(count);
            Ok(())
        },
    )?;
    progress.finish_and_clear();
    Ok(Features {
        store,
        precision,
        labels,
        shape,
        classes: data.classes().to_vec(),
        preset: data.preset(),
        provenance: provenance_after(data, layers)?,
        seconds: start.elapsed().as_secs_f64(),
        _reservation: reservation,
    })
}
