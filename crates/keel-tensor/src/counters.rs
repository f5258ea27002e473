//! What a device has done: submits, transfers, pipeline compilations and buffer-pool reuse, so
//! that tests and benchmarks can see what a step costs in round trips to the GPU.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counts since the device was opened; [`since`](DeviceCounters::since) gives those of a
/// stretch of work. The CPU backend has no transfers: its counters stay at zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceCounters {
    /// Command buffers submitted to the GPU's queue.
    pub submits: u64,
    /// Tensors copied from the host to the device.
    pub uploads: u64,
    /// Bytes of those tensors.
    pub upload_bytes: u64,
    /// Times the host waited for the GPU to finish (each readback and each synchronize).
    pub waits: u64,
    /// Tensors read back to the host (each one waits for the GPU).
    pub readbacks: u64,
    /// Bytes read back.
    pub readback_bytes: u64,
    /// Compute pipelines compiled (once per shader entry point and device).
    pub pipeline_compilations: u64,
    /// Output buffers reused from the pool.
    pub pool_hits: u64,
    /// Output buffers newly allocated.
    pub pool_misses: u64,
}

impl DeviceCounters {
    /// The counts between `earlier` and `self`.
    pub fn since(&self, earlier: &DeviceCounters) -> DeviceCounters {
        DeviceCounters {
            submits: self.submits - earlier.submits,
            uploads: self.uploads - earlier.uploads,
            upload_bytes: self.upload_bytes - earlier.upload_bytes,
            waits: self.waits - earlier.waits,
            readbacks: self.readbacks - earlier.readbacks,
            readback_bytes: self.readback_bytes - earlier.readback_bytes,
            pipeline_compilations: self.pipeline_compilations - earlier.pipeline_compilations,
            pool_hits: self.pool_hits - earlier.pool_hits,
            pool_misses: self.pool_misses - earlier.pool_misses,
        }
    }
}

/// The live counters of one wgpu device.
#[derive(Default)]
pub(crate) struct Counters {
    pub submits: AtomicU64,
    pub uploads: AtomicU64,
    pub upload_bytes: AtomicU64,
    pub waits: AtomicU64,
    pub readbacks: AtomicU64,
    pub readback_bytes: AtomicU64,
    pub pipeline_compilations: AtomicU64,
    pub pool_hits: AtomicU64,
    pub pool_misses: AtomicU64,
}

impl Counters {
    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> DeviceCounters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DeviceCounters {
            submits: get(&self.submits),
            uploads: get(&self.uploads),
            upload_bytes: get(&self.upload_bytes),
            waits: get(&self.waits),
            readbacks: get(&self.readbacks),
            readback_bytes: get(&self.readback_bytes),
            pipeline_compilations: get(&self.pipeline_compilations),
            pool_hits: get(&self.pool_hits),
            pool_misses: get(&self.pool_misses),
        }
    }
}
