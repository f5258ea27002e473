//! Reuse of freed CPU buffers. Every op writes a new tensor; for a large buffer the system
//! allocator maps fresh pages on each allocation (a page fault and a zeroed page per 4 KiB) and
//! returns them on free. So f32 buffers of at least [`MIN_BYTES`] are kept here when their
//! tensor is dropped, up to a limit in all ([`DEFAULT_LIMIT`] unless [`set_limit`] says
//! otherwise), and handed to the next CPU output of the same length. On this project's 2-core
//! host that made the main job's backbone pass 15-20% faster (see docs/performance.md).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Smaller buffers are left to the allocator, whose free lists reuse them well.
pub const MIN_BYTES: usize = 128 << 10;

/// The limit a process starts with: 1 GiB.
pub const DEFAULT_LIMIT: usize = 1 << 30;

static LIMIT: AtomicUsize = AtomicUsize::new(DEFAULT_LIMIT);
static CACHE: Mutex<Cache> = Mutex::new(Cache {
    free: None,
    bytes: 0,
});

/// Freed buffers by capacity (elements).
struct Cache {
    free: Option<HashMap<usize, Vec<Vec<f32>>>>,
    bytes: usize,
}

impl Cache {
    fn free(&mut self) -> &mut HashMap<usize, Vec<Vec<f32>>> {
        self.free.get_or_insert_with(HashMap::new)
    }

    /// Drops cached buffers until at most `limit` bytes are held.
    fn shrink_to(&mut self, limit: usize) {
        while self.bytes > limit {
            let free = self.free();
            let Some(&len) = free.keys().next() else {
                break;
            };
            let list = free.get_mut(&len).expect("key just seen");
            list.pop();
            if list.is_empty() {
                free.remove(&len);
            }
            self.bytes -= len * 4;
        }
    }
}

/// Keeps at most `bytes` of freed buffers for reuse (0 turns the cache off), dropping what is
/// held beyond it now.
pub fn set_limit(bytes: usize) {
    LIMIT.store(bytes, Ordering::Relaxed);
    lock().shrink_to(bytes);
}

/// Bytes of freed buffers held for reuse now.
pub fn cached_bytes() -> usize {
    lock().bytes
}

/// Returns every cached buffer to the system allocator.
pub fn clear() {
    lock().shrink_to(0);
}

/// The cache, even if a thread panicked while holding it (its state stays consistent).
fn lock() -> std::sync::MutexGuard<'static, Cache> {
    CACHE.lock().unwrap_or_else(|e| e.into_inner())
}

/// An empty buffer with room for `len` elements: a cached one of exactly that capacity if any.
/// For values about to become a CPU tensor (`Tensor::from_vec`), such as a batch built on
/// another thread: taking its buffer here recycles the previous batch's instead of leaving a
/// freed buffer in that thread's allocator arena.
pub fn take(len: usize) -> Vec<f32> {
    if len * 4 >= MIN_BYTES {
        let mut cache = lock();
        if let Some(mut v) = cache.free().get_mut(&len).and_then(Vec::pop) {
            cache.bytes -= len * 4;
            v.clear();
            return v;
        }
    }
    Vec::with_capacity(len)
}

/// Keeps `v`'s allocation for reuse if it is large enough and fits under the limit, evicting
/// other cached buffers to make room; otherwise frees it.
pub(crate) fn give(v: Vec<f32>) {
    let bytes = v.capacity() * 4;
    let limit = LIMIT.load(Ordering::Relaxed);
    if bytes < MIN_BYTES || bytes > limit {
        return;
    }
    let mut cache = lock();
    cache.shrink_to(limit - bytes);
    cache.bytes += bytes;
    cache.free().entry(v.capacity()).or_default().push(v);
}
