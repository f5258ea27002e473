//! Batches built on worker threads: samples are read (decoded, resized, preprocessed) and
//! augmented off the training thread, a bounded number of batches ahead. Batch `b` is built by
//! worker `b mod workers` and handed over in order, and every draw is seeded by the sample's
//! position, so the batches do not depend on the number of workers.

use crate::augment::Augment;
use crate::rng::Rng;
use crate::samples::Samples;
use crate::Error;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;

/// How batches are built.
#[derive(Clone, Copy, Debug)]
pub struct BatchOptions {
    /// Samples per batch.
    pub batch_size: usize,
    /// Threads that build batches (at least 1).
    pub workers: usize,
    /// Batches each worker may have ready before the consumer takes them (at least 1).
    pub prefetch: usize,
}

/// One worker per core.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

impl BatchOptions {
    /// Batches of `batch_size` built by one worker per core, two ahead each.
    pub fn new(batch_size: usize) -> BatchOptions {
        BatchOptions {
            batch_size,
            workers: default_workers(),
            prefetch: 2,
        }
    }
}

/// Some samples, one after another, and their labels.
#[derive(Clone, Debug)]
pub struct Batch {
    /// The samples' values, [n, ...sample shape] row-major.
    pub values: Vec<f32>,
    /// Their labels.
    pub labels: Vec<i32>,
    /// Their indices in the data set.
    pub indices: Vec<usize>,
    /// [n, ...sample shape].
    pub dims: Vec<usize>,
}

/// The seed of the draws for the sample at `position` of an epoch seeded with `seed`.
fn sample_seed(seed: u64, position: usize) -> u64 {
    Rng::new(seed ^ (position as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93)).next_u64()
}

/// The samples of `data` at `order[positions]`, augmented; left-out samples are dropped.
fn build(
    data: &dyn Samples,
    order: &[usize],
    positions: std::ops::Range<usize>,
    augment: &Augment,
    seed: u64,
) -> Result<Batch, Error> {
    let shape = data.sample_shape().to_vec();
    let n: usize = shape.iter().product();
    let mut values = keel_tensor::cpu_cache::take(positions.len() * n);
    values.resize(positions.len() * n, 0.0);
    let mut labels = Vec::with_capacity(positions.len());
    let mut indices = Vec::with_capacity(positions.len());
    for position in positions {
        let index = order[position];
        let at = labels.len() * n;
        let out = &mut values[at..at + n];
        if data.read(index, out)? {
            if let [h, w, c] = shape[..] {
                augment.apply(out, [h, w, c], sample_seed(seed, position));
            }
            labels.push(data.label(index));
            indices.push(index);
        }
    }
    values.truncate(labels.len() * n);
    let mut dims = vec![labels.len()];
    dims.extend(shape);
    Ok(Batch {
        values,
        labels,
        indices,
        dims,
    })
}

/// Reads `data` in the order `order`, `options.batch_size` samples at a time, on worker threads,
/// and hands each non-empty batch to `consume` in order. Augmentation draws are seeded by
/// `seed` and each sample's position. An error — reading, or from `consume` — stops the
/// workers and is returned.
pub fn for_each_batch<E: From<Error>>(
    data: &dyn Samples,
    order: &[usize],
    options: &BatchOptions,
    augment: &Augment,
    seed: u64,
    mut consume: impl FnMut(Batch) -> Result<(), E>,
) -> Result<(), E> {
    let size = options.batch_size.max(1);
    let batches = order.len().div_ceil(size);
    let workers = options.workers.clamp(1, batches.max(1));
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let mut receivers = Vec::with_capacity(workers);
        for worker in 0..workers {
            let (sender, receiver) = sync_channel(options.prefetch.max(1));
            receivers.push(receiver);
            let stop = &stop;
            scope.spawn(move || {
                for b in (worker..batches).step_by(workers) {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let positions = b * size..((b + 1) * size).min(order.len());
                    let batch = build(data, order, positions, augment, seed);
                    if sender.send(batch).is_err() {
                        break;
                    }
                }
            });
        }
        let result = (0..batches).try_for_each(|b| {
            let batch = receivers[b % workers]
                .recv()
                .expect("a worker sends every batch it is given")?;
            if batch.labels.is_empty() {
                return Ok(());
            }
            consume(batch)
        });
        // Unblock and end the workers before the scope waits for them.
        stop.store(true, Ordering::Relaxed);
        drop(receivers);
        result
    })
}
