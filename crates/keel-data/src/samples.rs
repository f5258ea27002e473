//! Labelled samples read one at a time: the one interface every data set offers to batches,
//! `fit` and `evaluate` (image folders, idx files, values in memory, cached features).

use crate::preset::Preset;
use crate::rng::Rng;
use crate::Result;

/// A labelled data set that produces its samples on demand, so that a set larger than memory
/// can be read batch by batch. Implementations are shared by the worker threads that build
/// batches.
pub trait Samples: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The shape of one sample: [height, width, channels] for images, any shape for features.
    fn sample_shape(&self) -> &[usize];
    /// Class names, by label.
    fn classes(&self) -> &[String];
    /// The label of sample `index`.
    fn label(&self, index: usize) -> i32;
    /// Writes sample `index` into `out` (as many values as the sample shape holds). `Ok(false)`
    /// means the sample was left out (an image that does not decode, already reported by the
    /// set); errors end the work that asked.
    fn read(&self, index: usize, out: &mut [f32]) -> Result<bool>;
    /// The preprocessing the values went through, when they are images (or come from them).
    fn preset(&self) -> Option<Preset> {
        None
    }
    /// When the samples are the outputs of layers of a model (cached features): which.
    fn provenance(&self) -> Option<&Provenance> {
        None
    }
    /// Sample `index` as an error message names it: its file where it has one.
    fn describe(&self, index: usize) -> String {
        format!("sample {index}")
    }
}

/// Which layers computed a set of samples: their names in order and a fingerprint of their
/// weights, so that features are only fed to a model that starts with the same layers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provenance {
    /// The layers' names, first to last.
    pub layers: Vec<String>,
    /// A hash of the layers' weights.
    pub weights: u64,
}

/// Some samples of another set, by index (a view: nothing is copied).
pub struct Subset<'a> {
    inner: &'a dyn Samples,
    indices: Vec<usize>,
}

impl<'a> Subset<'a> {
    /// The samples of `inner` at `indices`, in that order.
    pub fn new(inner: &'a dyn Samples, indices: Vec<usize>) -> Subset<'a> {
        Subset { inner, indices }
    }
}

impl Samples for Subset<'_> {
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn sample_shape(&self) -> &[usize] {
        self.inner.sample_shape()
    }
    fn classes(&self) -> &[String] {
        self.inner.classes()
    }
    fn label(&self, index: usize) -> i32 {
        self.inner.label(self.indices[index])
    }
    fn read(&self, index: usize, out: &mut [f32]) -> Result<bool> {
        self.inner.read(self.indices[index], out)
    }
    fn preset(&self) -> Option<Preset> {
        self.inner.preset()
    }
    fn provenance(&self) -> Option<&Provenance> {
        self.inner.provenance()
    }
    fn describe(&self, index: usize) -> String {
        self.inner.describe(self.indices[index])
    }
}

/// Splits off a shuffled fraction for validation — Keras' `validation_split` with a seed:
/// (training, validation) views of `data`.
pub fn split(data: &dyn Samples, validation: f32, seed: u64) -> (Subset<'_>, Subset<'_>) {
    let mut order: Vec<usize> = (0..data.len()).collect();
    Rng::new(seed).shuffle(&mut order);
    let n_val = ((data.len() as f32 * validation).round() as usize).min(data.len());
    let train = order.split_off(n_val);
    (Subset::new(data, train), Subset::new(data, order))
}

/// The label of every sample, in order.
pub fn labels(data: &dyn Samples) -> Vec<i32> {
    (0..data.len()).map(|i| data.label(i)).collect()
}
