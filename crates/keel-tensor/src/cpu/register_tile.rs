//! The AVX-512 register tile under the direct and Winograd convolutions: 12 rows × 32 columns of
//! a product summed in registers, each row a run of values (a window, or a row of a matrix) times
//! a kernel block packed so that a block's columns are adjacent for each value.

use std::mem::MaybeUninit;

/// Lanes of one AVX-512 register.
pub(super) const LANES: usize = 16;

/// Output channels per block: two registers. With 12 pixels per tile that is 24 accumulators and
/// half the kernel bytes per multiply-add of a 6 × 64 tile (which ran 0–15% slower).
pub(super) const BLOCK: usize = 2 * LANES;

/// Output pixels per register tile.
const TILE_PIXELS: usize = 12;

/// Where a row's values lie: `rows` runs of `row_len` values, `row_stride` apart, from its start.
pub(super) struct Window {
    pub rows: usize,
    pub row_len: usize,
    pub row_stride: usize,
}

/// `starts` (where each output row's window starts in an input) padded with the last start up to
/// a whole last tile, as [`products`] takes it.
pub(super) fn padded_starts(starts: impl Iterator<Item = usize>) -> Vec<usize> {
    let mut starts: Vec<usize> = starts.collect();
    let last = *starts.last().expect("at least one output row");
    starts.resize(starts.len() + TILE_PIXELS, last);
    starts
}

/// out[p][c] = Σ_k window_p[k] · kernel_c[k] for every output row p < `pixels` and column
/// c < `out_c`, rows `out_stride` apart: window p at `input` + `starts[p]`, the kernel block of
/// columns c0.. (width [`BLOCK`], or less for the last) at `block(c0, width)`, one row of `width`
/// values per window value.
///
/// # Safety
/// The CPU must have AVX-512F; `starts` must come from [`padded_starts`] with at least `pixels`
/// rows; every window and kernel block must be readable and the `pixels` output rows writable.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn products(
    input: *const f32,
    starts: &[usize],
    pixels: usize,
    window: &Window,
    block: impl Fn(usize, usize) -> *const f32,
    out: *mut f32,
    out_stride: usize,
    out_c: usize,
) {
    for c0 in (0..out_c).step_by(BLOCK) {
        let width = BLOCK.min(out_c - c0);
        let kernel = block(c0, width);
        let tile: TileFn = if width == BLOCK { tile::<2> } else { tile::<1> };
        for p0 in (0..pixels).step_by(TILE_PIXELS) {
            let valid = TILE_PIXELS.min(pixels - p0);
            // SAFETY: the caller's contract; `starts` holds a whole tile from every p0.
            unsafe {
                tile(
                    input,
                    &starts[p0..],
                    window,
                    kernel,
                    out.add(p0 * out_stride + c0),
                    out_stride,
                    valid,
                )
            };
        }
    }
}

type TileFn = unsafe fn(*const f32, &[usize], &Window, *const f32, *mut f32, usize, usize);

/// One register tile: [`TILE_PIXELS`] output pixels (windows at `input` + `starts[r]`, at least
/// that many given) × `VECTORS` registers of output channels, summed over every window value
/// (the kernel block holds one row of `VECTORS` · 16 values per window value) and stored into
/// the first `valid` pixels' rows of `out`, `out_stride` apart.
///
/// # Safety
/// The CPU must have AVX-512F; every window and the kernel block must be readable and the
/// stored rows writable.
#[target_feature(enable = "avx512f")]
unsafe fn tile<const VECTORS: usize>(
    input: *const f32,
    starts: &[usize],
    window: &Window,
    kernel: *const f32,
    out: *mut f32,
    out_stride: usize,
    valid: usize,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); VECTORS]; TILE_PIXELS];
    let mut w = kernel;
    // SAFETY: the caller's contract keeps every read and write in bounds.
    unsafe {
        for row in 0..window.rows {
            let mut x = [input; TILE_PIXELS];
            for (x, &s) in x.iter_mut().zip(starts) {
                *x = input.add(s + row * window.row_stride);
            }
            for i in 0..window.row_len {
                let mut wv = [_mm512_setzero_ps(); VECTORS];
                for (v, wv) in wv.iter_mut().enumerate() {
                    *wv = _mm512_loadu_ps(w.add(v * LANES));
                }
                for (acc, x) in acc.iter_mut().zip(&x) {
                    let b = _mm512_set1_ps(*x.add(i));
                    for (a, &wv) in acc.iter_mut().zip(&wv) {
                        *a = _mm512_fmadd_ps(b, wv, *a);
                    }
                }
                w = w.add(VECTORS * LANES);
            }
        }
        for (r, acc) in acc.iter().enumerate().take(valid) {
            for (v, &a) in acc.iter().enumerate() {
                _mm512_storeu_ps(out.add(r * out_stride + v * LANES), a);
            }
        }
    }
}

/// A packed kernel of `len` values written by `pack`, its first value at the start of a cache
/// line where the allocator allows (a vector load across two lines costs two: 7–10% of the
/// tile's speed).
pub(super) fn aligned_kernel(
    len: usize,
    pack: impl FnOnce(&mut [MaybeUninit<f32>]),
) -> AlignedKernel {
    let start = |buffer: *const MaybeUninit<f32>| buffer.align_offset(4 * LANES).min(LANES - 1);
    let write = |buffer: &mut [MaybeUninit<f32>]| {
        let (head, rest) = buffer.split_at_mut(start(buffer.as_ptr()));
        let (packed, tail) = rest.split_at_mut(len);
        head.fill(MaybeUninit::new(0.0));
        tail.fill(MaybeUninit::new(0.0));
        pack(packed);
    };
    // SAFETY: `write` writes the head and the tail, and `pack` (the caller's) the rest.
    let buffer = unsafe { super::uninit_output(len + LANES - 1, write) };
    let offset = start(buffer.as_ptr() as *const MaybeUninit<f32>);
    AlignedKernel { buffer, offset }
}

/// A packed kernel, its first value at the start of a cache line where the allocator allows.
pub(super) struct AlignedKernel {
    buffer: Vec<f32>,
    offset: usize,
}

impl AlignedKernel {
    pub(super) fn values(&self) -> &[f32] {
        &self.buffer[self.offset..]
    }
}
