//! A labelled set held in memory as f32 values (small sets, features that fit the memory
//! budget).

use crate::samples::Samples;
use crate::Result;

/// Samples (preprocessed images, or features computed by a network) with class labels, all in
/// memory.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// All samples, one after another.
    pub images: Vec<f32>,
    /// The class index of each sample.
    pub labels: Vec<i32>,
    /// The shape of one sample: [height, width, channels] for images (or any shape, for
    /// features computed by a network).
    pub shape: Vec<usize>,
    /// Class names, by index.
    pub classes: Vec<String>,
}

impl Dataset {
    fn sample_len(&self) -> usize {
        self.shape.iter().product()
    }
}

impl Samples for Dataset {
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
    fn read(&self, index: usize, out: &mut [f32]) -> Result<bool> {
        let n = self.sample_len();
        out.copy_from_slice(&self.images[index * n..(index + 1) * n]);
        Ok(true)
    }
}
