//! Dense convolution straight on the input, for CPUs with AVX-512 (no im2col, no packing of the
//! patches). A register tile of 12 output pixels × 32 output channels sums every tap and input
//! channel of its windows in registers and is stored once. Each task copies a band of input rows,
//! padding included, into a buffer small enough to stay in L2 cache beside one block of the
//! kernel, which is packed so that a block's channels are adjacent for each tap and input channel.

use super::conv::{write, Epilogue};
use super::register_tile::{aligned_kernel, padded_starts, products, AlignedKernel, Window};
use super::register_tile::{BLOCK, LANES};
use crate::geometry::WindowGeometry;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Bytes of padded input rows one task copies: with a block of the kernel (0.6 MB at 3×3×512),
/// it stays in one core's L2 cache (2 MB on the hosts measured, docs/performance.md).
const BAND_BYTES: usize = 512 << 10;

/// Whether [`conv2d`] computes this convolution: dense (one group), no dilation, output channels
/// in whole registers, at least a register's worth of input channels, on a CPU with AVX-512.
pub(super) fn supports(g: &WindowGeometry) -> bool {
    g.groups == 1
        && g.dilation_h == 1
        && g.dilation_w == 1
        && g.out_c.is_multiple_of(LANES)
        && g.in_c >= LANES
        && g.out_pixels() > 0
        && is_x86_feature_detected!("avx512f")
}

/// Overwrites `y` with conv(x, w) for NHWC `x` and HWIO `w`, then `epilogue` on each output row.
/// The caller checked [`supports`].
pub(super) fn conv2d(
    x: &[f32],
    w: &[f32],
    g: &WindowGeometry,
    y: &mut [MaybeUninit<f32>],
    epilogue: Option<Epilogue<'_>>,
) {
    let kernel = pack_kernel(w, g);
    let band = Band::new(g);
    let image_len = g.out_h * g.out_w * g.out_c;
    y.par_chunks_mut(image_len).enumerate().for_each(|(n, y)| {
        y.par_chunks_mut(band.rows * g.out_w * g.out_c)
            .enumerate()
            .for_each(|(b, y)| {
                let oh0 = b * band.rows;
                let input = band.copy(x, g, n, oh0, y.len() / (g.out_w * g.out_c));
                // SAFETY: `supports` checked AVX-512; `input` holds every window of these
                // output rows and `kernel` every block (`band_products`' contract).
                unsafe { band_products(&input, kernel.values(), g, &band, y) };
                if let Some(e) = epilogue {
                    // SAFETY: band_products wrote every element of these rows.
                    unsafe { e.apply(y) };
                }
            });
    });
}

/// The kernel as blocks of [`BLOCK`] output channels (the last block may be narrower), each
/// block `depth × width` with depth = kernel_h · kernel_w · in_c in HWI order.
fn pack_kernel(w: &[f32], g: &WindowGeometry) -> AlignedKernel {
    let depth = g.kernel_h * g.kernel_w * g.in_c;
    aligned_kernel(w.len(), |packed| {
        packed
            .par_chunks_mut(BLOCK * depth)
            .enumerate()
            .for_each(|(b, block)| {
                let width = block.len() / depth;
                for (k, row) in block.chunks_exact_mut(width).enumerate() {
                    write(row, &w[k * g.out_c + b * BLOCK..][..width]);
                }
            })
    })
}

/// How output rows are split into tasks, and the padded input rows under each.
struct Band {
    /// Output rows per task.
    rows: usize,
    /// Padded input columns: every column some window reaches.
    width: usize,
}

impl Band {
    fn new(g: &WindowGeometry) -> Self {
        let width = (g.out_w - 1) * g.stride_w + g.kernel_w;
        let row_bytes = width * g.in_c * 4;
        let fit = (BAND_BYTES / row_bytes).saturating_sub(g.kernel_h) / g.stride_h + 1;
        // At least four tasks per thread where the batch allows, to balance the load.
        let tasks = 4 * rayon::current_num_threads();
        let balanced = (g.batch * g.out_h).div_ceil(tasks).max(1);
        Band {
            rows: fit.min(balanced).min(g.out_h),
            width,
        }
    }

    /// Input rows under `rows` output rows.
    fn input_rows(&self, g: &WindowGeometry, rows: usize) -> usize {
        (rows - 1) * g.stride_h + g.kernel_h
    }

    /// The padded input under output rows `oh0..oh0 + rows` of image `n`: zeros where a window
    /// reaches past the image.
    fn copy(&self, x: &[f32], g: &WindowGeometry, n: usize, oh0: usize, rows: usize) -> Vec<f32> {
        let c = g.in_c;
        let row_len = self.width * c;
        let mut band = Vec::with_capacity(self.input_rows(g, rows) * row_len);
        // Padded column p is image column p - pad_left.
        let first = g.pad_left.min(self.width);
        let last = (g.pad_left + g.in_w).min(self.width).max(first);
        for r in 0..self.input_rows(g, rows) {
            let ih = (oh0 * g.stride_h + r) as isize - g.pad_top as isize;
            if ih < 0 || ih >= g.in_h as isize || first == last {
                band.resize(band.len() + row_len, 0.0);
                continue;
            }
            let src_row = (n * g.in_h + ih as usize) * g.in_w;
            band.resize(band.len() + first * c, 0.0);
            band.extend_from_slice(&x[(src_row + first - g.pad_left) * c..][..(last - first) * c]);
            band.resize(band.len() + (self.width - last) * c, 0.0);
        }
        band
    }
}

/// Every block of output channels for every output pixel of `y` (whole output rows of one
/// band), by register tiles.
///
/// # Safety
/// The CPU must have AVX-512F; `input` must be [`Band::copy`]'s for these rows and `kernel`
/// [`pack_kernel`]'s.
#[target_feature(enable = "avx512f")]
unsafe fn band_products(
    input: &[f32],
    kernel: &[f32],
    g: &WindowGeometry,
    band: &Band,
    y: &mut [MaybeUninit<f32>],
) {
    let pixels = y.len() / g.out_c;
    let depth = g.kernel_h * g.kernel_w * g.in_c;
    let window = Window {
        rows: g.kernel_h,
        row_len: g.kernel_w * g.in_c,
        row_stride: band.width * g.in_c,
    };
    // Where each output pixel's window starts in `input`.
    let starts = (0..pixels).map(|p| {
        let (r, ow) = (p / g.out_w, p % g.out_w);
        (r * g.stride_h * band.width + ow * g.stride_w) * g.in_c
    });
    let block = |c0: usize, width: usize| kernel[c0 * depth..][..width * depth].as_ptr();
    // SAFETY: every window lies inside `input` (the band covers each output row's windows);
    // each block is depth × width; `y` holds `pixels` rows of out_c.
    unsafe {
        products(
            input.as_ptr(),
            &padded_starts(starts),
            pixels,
            &window,
            block,
            y.as_mut_ptr() as *mut f32,
            g.out_c,
            g.out_c,
        )
    };
}
