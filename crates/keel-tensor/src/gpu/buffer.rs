//! Device buffers: uploads, pooled output buffers, and reading them back.

use super::GpuContext;
use crate::counters::Counters;
use crate::{Error, Result};
use std::collections::HashMap;
use std::sync::Arc;
use wgpu::util::DeviceExt;

/// Pooled buffers are kept up to this many bytes in all; beyond it, freed buffers are released.
const POOL_CAPACITY_BYTES: u64 = 1 << 31;

/// Freed output buffers by capacity, for reuse by later ops.
#[derive(Default)]
pub(crate) struct BufferPool {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    pooled_bytes: u64,
}

/// Rounds a request up to a size class (steps of 1/16 of the next power of two, at least 256 bytes)
/// so that buffers of similar size can be reused; waste is under 12.5%.
fn size_class(bytes: u64) -> u64 {
    let step = (bytes.next_power_of_two() / 16).max(256);
    bytes.div_ceil(step) * step
}

const STORAGE_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// A tensor's storage on a wgpu device. Output buffers go back to the pool when dropped.
pub(crate) struct GpuBuffer {
    buffer: Option<wgpu::Buffer>,
    /// Bytes the tensor uses (the buffer may be larger).
    bytes: u64,
    pooled: bool,
    ctx: Arc<GpuContext>,
}

impl GpuBuffer {
    /// The wgpu buffer.
    pub fn raw(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("buffer is present until drop")
    }

    /// Bytes the tensor uses.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The context the buffer belongs to.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// Reads the first `bytes()` bytes back to the host.
    pub fn read(&self) -> Result<Vec<u8>> {
        self.ctx.read_bytes(self.raw(), self.bytes.div_ceil(4) * 4)
    }
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        let Some(buffer) = self.buffer.take() else {
            return;
        };
        if !self.pooled {
            return;
        }
        let mut pool = self.ctx.pool.lock().unwrap();
        if pool.pooled_bytes + buffer.size() <= POOL_CAPACITY_BYTES {
            pool.pooled_bytes += buffer.size();
            pool.free.entry(buffer.size()).or_default().push(buffer);
        }
    }
}

impl GpuContext {
    fn check_buffer_size(&self, op: &'static str, what: &str, bytes: u64) -> Result<()> {
        if bytes > self.limits.max_buffer_size {
            return Err(Error::TooLarge {
                op,
                what: what.to_string(),
                bytes,
                limit: self.limits.max_buffer_size,
                limit_name: "max_buffer_size",
            });
        }
        Ok(())
    }

    /// A buffer holding `data` (never taken from the pool, so no recorded op can still be reading it).
    pub fn upload(self: &Arc<Self>, op: &'static str, data: &[u8]) -> Result<GpuBuffer> {
        self.check_buffer_size(op, "uploaded tensor", data.len() as u64)?;
        // Pad to 16 bytes so any buffer can also be read as vec4s.
        let mut padded;
        let contents = if data.len().is_multiple_of(16) {
            data
        } else {
            padded = data.to_vec();
            padded.resize(data.len().div_ceil(16) * 16, 0);
            &padded
        };
        Counters::add(&self.counters.uploads, 1);
        Counters::add(&self.counters.upload_bytes, data.len() as u64);
        let buffer = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("keel tensor"),
                contents,
                usage: STORAGE_USAGE,
            });
        Ok(GpuBuffer {
            buffer: Some(buffer),
            bytes: data.len() as u64,
            pooled: false,
            ctx: self.clone(),
        })
    }

    /// A buffer for an op's output, from the pool when one of the right size class is free.
    /// Its contents are unspecified (NaN when output poisoning is on, see `crate::debug`).
    pub fn alloc(self: &Arc<Self>, op: &'static str, bytes: u64) -> Result<GpuBuffer> {
        let bytes = bytes.max(4);
        self.check_buffer_size(op, "output tensor", bytes)?;
        let mut capacity = size_class(bytes.div_ceil(16) * 16);
        if capacity > self.limits.max_buffer_size {
            capacity = bytes.div_ceil(16) * 16;
        }
        let reused = {
            let mut pool = self.pool.lock().unwrap();
            let found = pool.free.get_mut(&capacity).and_then(|v| v.pop());
            if found.is_some() {
                pool.pooled_bytes -= capacity;
            }
            found
        };
        let counter = if reused.is_some() {
            &self.counters.pool_hits
        } else {
            &self.counters.pool_misses
        };
        Counters::add(counter, 1);
        let buffer = reused.unwrap_or_else(|| {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("keel output"),
                size: capacity,
                usage: STORAGE_USAGE,
                mapped_at_creation: false,
            })
        });
        let out = GpuBuffer {
            buffer: Some(buffer),
            bytes,
            pooled: true,
            ctx: self.clone(),
        };
        if crate::debug::poison_outputs() {
            super::ops::fill(&out, f32::NAN)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_bound_the_waste() {
        for bytes in [
            4u64,
            255,
            256,
            1000,
            4096,
            4097,
            1 << 20,
            (1 << 20) + 1,
            411_041_792,
        ] {
            let c = size_class(bytes);
            assert!(
                c >= bytes && (c - bytes) as f64 <= 0.125 * bytes as f64 + 256.0,
                "{bytes} -> {c}"
            );
        }
    }
}
