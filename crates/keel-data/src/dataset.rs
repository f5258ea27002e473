//! An in-memory labelled image set: preprocessed NHWC values and integer labels.

use crate::augment::Augment;
use crate::rng::Rng;
use crate::Result;
use keel_tensor::{Device, Tensor};

/// Images (already preprocessed, NHWC f32) with class labels.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// All images, one after another.
    pub images: Vec<f32>,
    /// The class index of each image.
    pub labels: Vec<i32>,
    /// The shape of one sample: [height, width, channels] for images (or any shape, for
    /// features computed by a network).
    pub shape: Vec<usize>,
    /// Class names, by index.
    pub classes: Vec<String>,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let n = self.image_len();
        Dataset {
            images: indices
                .iter()
                .flat_map(|&i| self.images[i * n..(i + 1) * n].iter().copied())
                .collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            shape: self.shape.clone(),
            classes: self.classes.clone(),
        }
    }

    /// Splits off a shuffled fraction for validation: (training, validation), by `seed`.
    pub fn split(&self, validation: f32, seed: u64) -> (Dataset, Dataset) {
        let mut order: Vec<usize> = (0..self.len()).collect();
        Rng::new(seed).shuffle(&mut order);
        let n_val = ((self.len() as f32 * validation).round() as usize).min(self.len());
        let (val, train) = order.split_at(n_val);
        (self.subset(train), self.subset(val))
    }

    /// The samples at `indices` as a `[b, ...shape]` tensor and their labels as i32 `[b]`, with
    /// `augment` applied to images (seeded by `seed`).
    pub fn batch(
        &self,
        indices: &[usize],
        augment: &Augment,
        seed: u64,
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let n = self.image_len();
        let mut values: Vec<f32> = Vec::with_capacity(indices.len() * n);
        for &i in indices {
            values.extend_from_slice(&self.images[i * n..(i + 1) * n]);
        }
        if let [h, w, c] = self.shape[..] {
            augment.apply(&mut values, [h, w, c], seed);
        }
        let mut dims = vec![indices.len()];
        dims.extend(&self.shape);
        let x = Tensor::from_vec(values, dims, device)?;
        let y = Tensor::from_i32(
            indices.iter().map(|&i| self.labels[i]).collect(),
            [indices.len()],
            device,
        )?;
        Ok((x, y))
    }
}
