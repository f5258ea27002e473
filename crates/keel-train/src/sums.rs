//! Loss and hit sums kept on the device and read back together, so that a training step never
//! waits for the GPU: one readback per flush (at the progress bar's refresh points and at the end
//! of a pass) instead of two per step.

use crate::{Error, Result};
use keel_tensor::{DType, Tensor};

/// The batches of one pass since its last flush, and the totals before them.
#[derive(Default)]
pub(crate) struct DeviceSums {
    /// Per batch: its mean loss and its hit count, each a one-element tensor on the device.
    pending: Vec<(Tensor, Tensor)>,
    /// Per pending batch: its size.
    sizes: Vec<usize>,
    /// Batches flushed so far.
    flushed: usize,
    loss_sum: f64,
    hits: f64,
    seen: usize,
}

impl DeviceSums {
    /// Adds a batch: its mean `loss` (a scalar tensor), and the hits of `outputs` ([n, classes])
    /// against `labels` ([n], i32): rows whose first largest output is the label.
    pub fn push(&mut self, loss: &Tensor, outputs: &Tensor, labels: &Tensor) -> Result<()> {
        let n = labels.elem_count();
        let predicted = outputs.argmax(-1, false)?.to_dtype(DType::F32)?;
        let hits = predicted
            .equal(&labels.to_dtype(DType::F32)?)?
            .sum_all()?
            .reshape([1])?;
        self.pending.push((loss.reshape([1])?, hits));
        self.sizes.push(n);
        Ok(())
    }

    /// Batches added and not yet read back.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Reads the pending batches back in one transfer and adds them to the totals. A
    /// non-finite loss is an error made by `non_finite` from the 1-based batch number and the
    /// value.
    pub fn flush(&mut self, non_finite: impl Fn(usize, f32) -> Error) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let parts: Vec<&Tensor> = self
            .pending
            .iter()
            .map(|(l, _)| l)
            .chain(self.pending.iter().map(|(_, h)| h))
            .collect();
        let values = Tensor::concat(&parts, 0)?.to_vec()?;
        let (losses, hits) = values.split_at(self.pending.len());
        for (i, ((&loss, &hit), &n)) in losses.iter().zip(hits).zip(&self.sizes).enumerate() {
            if !loss.is_finite() {
                return Err(non_finite(self.flushed + i + 1, loss));
            }
            self.loss_sum += f64::from(loss) * n as f64;
            self.hits += f64::from(hit);
            self.seen += n;
        }
        self.flushed += self.pending.len();
        self.pending.clear();
        self.sizes.clear();
        Ok(())
    }

    /// Samples flushed so far.
    pub fn seen(&self) -> usize {
        self.seen
    }

    /// Mean loss of the flushed samples.
    pub fn loss(&self) -> f32 {
        (self.loss_sum / self.seen.max(1) as f64) as f32
    }

    /// Accuracy of the flushed samples.
    pub fn accuracy(&self) -> f32 {
        (self.hits / self.seen.max(1) as f64) as f32
    }
}
