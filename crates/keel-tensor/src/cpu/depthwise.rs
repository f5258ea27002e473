//! Depthwise convolution on the CPU (one input channel per group, `out_per_group` outputs each):
//! a direct, register-blocked kernel. A block of [`LANES`] output channels × up to [`PIXELS`]
//! output pixels sums all its taps in registers and is stored once, so each output element is
//! written once and each input element is read from cache once per tap that covers it.
//! Padding takes part as zeros, so a non-finite tap reaches every output whose window holds it
//! (as the dense kernels, which multiply im2col's zeros, and every wgpu kernel do).

use crate::geometry::WindowGeometry;
use std::mem::MaybeUninit;

/// Output channels per block: one AVX-512 register, two AVX2 or four NEON registers.
const LANES: usize = 16;

/// Output pixels per block away from the padding: 4 × [`LANES`] accumulators leave room in any
/// SIMD register file for the operands.
const PIXELS: usize = 4;

/// y = depthwise_conv(x, w) for NHWC `x` and HWIO `w` (I = 1), parallel over output rows.
pub(crate) fn depthwise(
    x: &[f32],
    w: &[f32],
    g: &WindowGeometry,
    epilogue: Option<super::conv::Epilogue<'_>>,
) -> Vec<f32> {
    let row_len = g.out_w * g.out_c;
    let kernel = row_kernel();
    // SAFETY: `compute_row` writes every element of its row: pixel blocks cover 0..out_w and
    // channel blocks 0..out_c.
    unsafe {
        super::output_chunks(g.batch * g.out_h * row_len, row_len, |r, out| {
            let row = OutputRow {
                x,
                w,
                g,
                n: r / g.out_h,
                oh: r % g.out_h,
            };
            kernel(&row, out);
            if let Some(e) = epilogue {
                // The kernel wrote the whole row (`Epilogue::apply`'s contract).
                e.apply(out);
            }
        })
    }
}

/// The operands of one output row: image `n`, row `oh`.
struct OutputRow<'a> {
    x: &'a [f32],
    w: &'a [f32],
    g: &'a WindowGeometry,
    n: usize,
    oh: usize,
}

type RowKernel = fn(&OutputRow<'_>, &mut [MaybeUninit<f32>]);

/// What a block needs along a row, copied out of the geometry so it stays in registers.
#[derive(Clone, Copy)]
struct Columns {
    in_w: usize,
    in_c: usize,
    out_c: usize,
    mult: usize,
    kernel_w: usize,
    stride: usize,
    dilation: usize,
    pad_left: usize,
}

/// A kernel row: its taps (kernel_w × out_c) and its input row (zeros in the padding).
type KernelRow<'a> = (&'a [f32], &'a [f32]);

/// Computes one output row, [`LANES`] channels at a time. `AVX512`: built for AVX-512, whose
/// kernel ([`avx512::interior`]) takes the inner columns of the common shapes.
#[inline(always)]
fn compute_row<const FMA: bool, const AVX512: bool>(
    row: &OutputRow<'_>,
    out: &mut [MaybeUninit<f32>],
) {
    let g = row.g;
    let cols = Columns {
        in_w: g.in_w,
        in_c: g.in_c,
        out_c: g.out_c,
        mult: g.out_per_group(),
        kernel_w: g.kernel_w,
        stride: g.stride_w,
        dilation: g.dilation_w,
        pad_left: g.pad_left,
    };
    let in_len = g.in_w * g.in_c;
    let taps_len = g.kernel_w * g.out_c;
    let input_row = |kh: usize| {
        let ih = (row.oh * g.stride_h + kh * g.dilation_h).checked_sub(g.pad_top)?;
        (ih < g.in_h).then(|| &row.x[(row.n * g.in_h + ih) * in_len..][..in_len])
    };
    let padded = (0..g.kernel_h).any(|kh| input_row(kh).is_none());
    let zeros = vec![0f32; if padded { in_len } else { 0 }];
    let rows: Vec<KernelRow<'_>> = (0..g.kernel_h)
        .map(|kh| {
            let input = input_row(kh).unwrap_or(&zeros);
            (&row.w[kh * taps_len..][..taps_len], input)
        })
        .collect();
    let (first, end) = inner_columns(g);
    let mut ow = 0;
    while ow < first {
        pixels::<1, true, FMA>(cols, &rows, out, ow);
        ow += 1;
    }
    #[cfg(target_arch = "x86_64")]
    if AVX512 {
        // SAFETY: compute_row::<_, true> runs only inside row_kernel's AVX-512 build; ow..end
        // are inner columns.
        ow = unsafe { avx512::interior(cols, &rows, out, ow, end) };
    }
    while ow + PIXELS <= end {
        pixels::<PIXELS, false, FMA>(cols, &rows, out, ow);
        ow += PIXELS;
    }
    while ow < g.out_w {
        pixels::<1, true, FMA>(cols, &rows, out, ow);
        ow += 1;
    }
}

/// The output columns `first..end` whose taps all fall inside the image (no padding checks).
pub(super) fn inner_columns(g: &WindowGeometry) -> (usize, usize) {
    let first = g.pad_left.div_ceil(g.stride_w).min(g.out_w);
    let reach = (g.kernel_w - 1) * g.dilation_w;
    let end = (g.in_w + g.pad_left)
        .checked_sub(reach + 1)
        .map_or(0, |last| (last / g.stride_w + 1).min(g.out_w));
    (first, end.max(first))
}

/// Output pixels `ow0..ow0 + P`, every channel, [`LANES`] at a time (so the few input pixels
/// under them stay in L1 from one channel block to the next). `CHECKED`: the pixels' taps may
/// fall in the left or right padding.
#[inline(always)]
fn pixels<const P: usize, const CHECKED: bool, const FMA: bool>(
    cols: Columns,
    rows: &[KernelRow<'_>],
    out: &mut [MaybeUninit<f32>],
    ow0: usize,
) {
    let dense = !CHECKED && cols.stride == 1 && cols.dilation == 1;
    for c0 in (0..cols.out_c).step_by(LANES) {
        if cols.mult != 1 || c0 + LANES > cols.out_c {
            block::<P, false, CHECKED, FMA>(cols, rows, out, ow0, c0);
        } else if dense && cols.kernel_w == 3 {
            sliding::<P, 3, FMA>(cols, rows, out, ow0, c0);
        } else if dense && cols.kernel_w == 5 {
            sliding::<P, 5, FMA>(cols, rows, out, ow0, c0);
        } else {
            block::<P, true, CHECKED, FMA>(cols, rows, out, ow0, c0);
        }
    }
}

/// Output pixels `ow0..ow0 + P`, channels `c0..c0 + LANES` (fewer at the last block unless
/// `FULL`, which also means one output per input channel). `CHECKED`: taps may fall in the left
/// or right padding, where the input is zero.
#[inline(always)]
fn block<const P: usize, const FULL: bool, const CHECKED: bool, const FMA: bool>(
    c: Columns,
    rows: &[KernelRow<'_>],
    out: &mut [MaybeUninit<f32>],
    ow0: usize,
    c0: usize,
) {
    let lanes = if FULL { LANES } else { LANES.min(c.out_c - c0) };
    let mut acc = [[0f32; LANES]; P];
    // Input column of pixel ow0's first tap (negative in the left padding).
    let x0 = (ow0 * c.stride) as isize - c.pad_left as isize;
    for &(kernel_row, input) in rows {
        for kw in 0..c.kernel_w {
            let mut taps = [0f32; LANES];
            taps[..lanes].copy_from_slice(&kernel_row[kw * c.out_c + c0..][..lanes]);
            for (p, acc) in acc.iter_mut().enumerate() {
                let iw = x0 + (p * c.stride + kw * c.dilation) as isize;
                let mut xs = [0f32; LANES];
                if !CHECKED || (iw >= 0 && iw < c.in_w as isize) {
                    let pixel = &input[iw as usize * c.in_c..][..c.in_c];
                    if FULL {
                        xs.copy_from_slice(&pixel[c0..c0 + LANES]);
                    } else {
                        for (l, x) in xs[..lanes].iter_mut().enumerate() {
                            *x = pixel[(c0 + l) / c.mult];
                        }
                    }
                }
                for l in 0..LANES {
                    acc[l] = super::multiply_add::<FMA>(xs[l], taps[l], acc[l]);
                }
            }
        }
    }
    for (p, acc) in acc.iter().enumerate() {
        store(&mut out[(ow0 + p) * c.out_c + c0..][..lanes], &acc[..lanes]);
    }
}

/// [`block`] for a full block of channels away from the padding, at stride 1 without dilation,
/// for kernels `K` wide. With `K` and `P` fixed the loops unroll, and each input pixel under the
/// block is loaded once per kernel row for all (up to `K`) outputs it reaches.
#[inline(always)]
fn sliding<const P: usize, const K: usize, const FMA: bool>(
    c: Columns,
    rows: &[KernelRow<'_>],
    out: &mut [MaybeUninit<f32>],
    ow0: usize,
    c0: usize,
) {
    let mut acc = [[0f32; LANES]; P];
    let start = (ow0 - c.pad_left) * c.in_c + c0;
    for &(kernel_row, input) in rows {
        let mut taps = [[0f32; LANES]; K];
        for (kw, t) in taps.iter_mut().enumerate() {
            t.copy_from_slice(&kernel_row[kw * c.out_c + c0..][..LANES]);
        }
        // The P + K - 1 input pixels under the block, as one slice.
        let span = &input[start..start + (P + K - 2) * c.in_c + LANES];
        for (kw, taps) in taps.iter().enumerate() {
            for (p, acc) in acc.iter_mut().enumerate() {
                let offset = (p + kw) * c.in_c;
                debug_assert!(offset + LANES <= span.len());
                // SAFETY: p + kw <= P + K - 2, so offset + LANES <= span.len(), and [f32; LANES]
                // has f32's alignment. (A checked slice here costs a bounds check per pixel and
                // tap, which LLVM does not hoist; it made the kernel 1.3-1.8x slower.)
                let xs = unsafe { &*(span.as_ptr().add(offset) as *const [f32; LANES]) };
                for l in 0..LANES {
                    acc[l] = super::multiply_add::<FMA>(xs[l], taps[l], acc[l]);
                }
            }
        }
    }
    for (p, acc) in acc.iter().enumerate() {
        store(&mut out[(ow0 + p) * c.out_c + c0..][..LANES], acc);
    }
}

/// Writes `values` to the output elements `out` (of equal length).
#[inline(always)]
fn store(out: &mut [MaybeUninit<f32>], values: &[f32]) {
    for (o, &v) in out.iter_mut().zip(values) {
        o.write(v);
    }
}

/// The widest SIMD build of [`compute_row`] this CPU runs (chosen at run time, so one binary is
/// fast on AVX-512 and still runs on any x86-64).
fn row_kernel() -> RowKernel {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512(row: &OutputRow<'_>, out: &mut [MaybeUninit<f32>]) {
            compute_row::<true, true>(row, out)
        }
        #[target_feature(enable = "avx2,fma")]
        fn avx2(row: &OutputRow<'_>, out: &mut [MaybeUninit<f32>]) {
            compute_row::<true, false>(row, out)
        }
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            return |row, out| unsafe { avx512(row, out) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            return |row, out| unsafe { avx2(row, out) };
        }
    }
    compute_row::<false, false>
}

/// Inner columns on AVX-512: 8 output pixels × 16 channels in registers, for 3-wide kernels at
/// stride 1 or 2 without dilation or multiplier (1.3–1.6× the portable kernel's speed on
/// MobileNetV2's layers on two threads; docs/performance.md).
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Columns, KernelRow, LANES};
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    /// Output pixels per block: 8 accumulators, each input pixel under them loaded once per tap
    /// from L1.
    const PIXELS: usize = 8;

    /// Computes columns `ow..end`, every channel, by blocks of [`PIXELS`] (the last one ending at
    /// `end`), and returns the first column left: `end`, or `ow` itself for other shapes and
    /// fewer columns than a block. (Handling the edge columns here too ran 5–12% slower than
    /// the portable path.)
    ///
    /// # Safety
    /// The CPU must have AVX-512F; columns `ow..end` must be inner columns (every tap inside the
    /// image) and `rows` the kernel rows of `out`'s output row.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn interior(
        c: Columns,
        rows: &[KernelRow<'_>],
        out: &mut [MaybeUninit<f32>],
        mut ow: usize,
        end: usize,
    ) -> usize {
        if c.mult != 1 || c.dilation != 1 || c.kernel_w != 3 || !c.out_c.is_multiple_of(LANES) {
            return ow;
        }
        let block = match c.stride {
            1 => block::<3, 1>,
            2 => block::<3, 2>,
            _ => return ow,
        };
        if ow + PIXELS > end {
            return ow;
        }
        assert!(end * c.out_c <= out.len());
        // Blocks from `ow`, the last one ending at `end` (overlapping the one before it, whose
        // outputs it writes again with the same values).
        let last = end - PIXELS;
        loop {
            let ow0 = ow.min(last);
            for c0 in (0..c.out_c).step_by(LANES) {
                // SAFETY: the caller's contract; these pixels' rows of `out` lie inside it.
                unsafe { block(c, rows, out.as_mut_ptr() as *mut f32, ow0, c0) };
            }
            if ow0 == last {
                return end;
            }
            ow += PIXELS;
        }
    }

    /// Output pixels `ow0..ow0 + PIXELS`, channels `c0..c0 + 16`, for a `K`-wide kernel at
    /// stride `S`.
    ///
    /// # Safety
    /// As [`interior`]'s, for these pixels.
    #[target_feature(enable = "avx512f")]
    unsafe fn block<const K: usize, const S: usize>(
        c: Columns,
        rows: &[KernelRow<'_>],
        out: *mut f32,
        ow0: usize,
        c0: usize,
    ) {
        let mut acc = [_mm512_setzero_ps(); PIXELS];
        for &(taps, input) in rows {
            debug_assert!(((ow0 + PIXELS - 1) * S + K - c.pad_left) * c.in_c <= input.len());
            // SAFETY (this block): inner columns, so every tap of these pixels lies inside
            // `input` (the caller's contract), and the taps row holds K · out_c values.
            unsafe {
                let x = input.as_ptr().add((ow0 * S - c.pad_left) * c.in_c + c0);
                for kw in 0..K {
                    let tap = _mm512_loadu_ps(taps.as_ptr().add(kw * c.out_c + c0));
                    for (p, acc) in acc.iter_mut().enumerate() {
                        let xs = _mm512_loadu_ps(x.add((p * S + kw) * c.in_c));
                        *acc = _mm512_fmadd_ps(xs, tap, *acc);
                    }
                }
            }
        }
        for (p, acc) in acc.into_iter().enumerate() {
            // SAFETY: the caller's contract.
            unsafe { _mm512_storeu_ps(out.add((ow0 + p) * c.out_c + c0), acc) };
        }
    }
}
