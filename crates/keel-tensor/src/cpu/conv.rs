//! Convolution on the CPU: GEMM straight on the input for 1×1 convolutions, im2col in bounded
//! chunks feeding the GEMM otherwise, and a direct kernel for depthwise convolution.

use super::matmul::{gemm_strided, parallelism};
use crate::geometry::WindowGeometry;
use rayon::prelude::*;

/// Bytes of im2col scratch per chunk: large enough for full-speed GEMMs, small enough for caches
/// and memory (VGG16 block1 at batch 32 would need 3.7 GB in one piece).
const IM2COL_CHUNK_BYTES: usize = 16 << 20;

/// y = conv(x, w) for NHWC `x` and HWIO `w`.
pub(crate) fn conv2d(x: &[f32], w: &[f32], g: &WindowGeometry) -> Vec<f32> {
    if g.in_per_group() == 1 && g.groups > 1 {
        return depthwise(x, w, g);
    }
    let rows = g.out_pixels();
    let mut y = super::output(rows * g.out_c);
    let cg = g.in_per_group();
    let og = g.out_per_group();
    let pointwise = g.kernel_h == 1
        && g.kernel_w == 1
        && g.stride_h == 1
        && g.stride_w == 1
        && g.pad_top == 0
        && g.pad_left == 0
        && g.out_h == g.in_h
        && g.out_w == g.in_w;
    if pointwise {
        for grp in 0..g.groups {
            let par = parallelism(rows * og * cg);
            gemm_strided(
                rows,
                og,
                cg,
                &mut y[grp * og..],
                g.out_c,
                &x[grp * cg..],
                (g.in_c, 1),
                &w[grp * og..],
                (g.out_c, 1),
                false,
                par,
            );
        }
        return y;
    }
    let depth = g.kernel_h * g.kernel_w * cg;
    let chunk_rows = (IM2COL_CHUNK_BYTES / 4 / depth).clamp(1, rows);
    let mut cols = vec![0f32; chunk_rows * depth];
    for row0 in (0..rows).step_by(chunk_rows) {
        let n_rows = chunk_rows.min(rows - row0);
        for grp in 0..g.groups {
            im2col(x, g, grp, row0, &mut cols[..n_rows * depth]);
            let par = parallelism(n_rows * og * depth);
            let out = &mut y[row0 * g.out_c + grp * og..];
            gemm_strided(
                n_rows,
                og,
                depth,
                out,
                g.out_c,
                &cols,
                (depth, 1),
                &w[grp * og..],
                (g.out_c, 1),
                false,
                par,
            );
        }
    }
    y
}

/// Fills `cols` (rows × depth) with the input patches of output pixels `row0..` for group `grp`.
pub(super) fn im2col(x: &[f32], g: &WindowGeometry, grp: usize, row0: usize, cols: &mut [f32]) {
    let cg = g.in_per_group();
    let depth = g.kernel_h * g.kernel_w * cg;
    cols.par_chunks_mut(depth)
        .enumerate()
        .for_each(|(r, patch)| {
            let row = row0 + r;
            let n = row / (g.out_h * g.out_w);
            let oh = (row / g.out_w) % g.out_h;
            let ow = row % g.out_w;
            for kh in 0..g.kernel_h {
                let ih = (oh * g.stride_h + kh * g.dilation_h) as isize - g.pad_top as isize;
                for kw in 0..g.kernel_w {
                    let iw = (ow * g.stride_w + kw * g.dilation_w) as isize - g.pad_left as isize;
                    let dst = &mut patch[(kh * g.kernel_w + kw) * cg..][..cg];
                    if ih < 0 || iw < 0 || ih >= g.in_h as isize || iw >= g.in_w as isize {
                        dst.fill(0.0);
                    } else {
                        let pixel = (n * g.in_h + ih as usize) * g.in_w + iw as usize;
                        dst.copy_from_slice(&x[pixel * g.in_c + grp * cg..][..cg]);
                    }
                }
            }
        });
}

/// Depthwise convolution (one input channel per group, `out_per_group` outputs each),
/// parallel over output rows. Each (tap row, tap column) adds one shifted input row times the
/// tap weights to the output row; the columns whose taps fall in the padding are skipped by
/// range, so the inner loop is a branch-free multiply-add over contiguous channels.
fn depthwise(x: &[f32], w: &[f32], g: &WindowGeometry) -> Vec<f32> {
    let row_len = g.out_w * g.out_c;
    let accumulate = tap_kernel();
    let mut y = super::output(g.batch * g.out_h * row_len);
    y.par_chunks_mut(row_len)
        .enumerate()
        .for_each(|(r, out_row)| {
            let n = r / g.out_h;
            let oh = r % g.out_h;
            out_row.fill(0.0);
            for kh in 0..g.kernel_h {
                let ih = (oh * g.stride_h + kh * g.dilation_h) as isize - g.pad_top as isize;
                if ih < 0 || ih >= g.in_h as isize {
                    continue;
                }
                let in_row = &x[(n * g.in_h + ih as usize) * g.in_w * g.in_c..][..g.in_w * g.in_c];
                for kw in 0..g.kernel_w {
                    let taps = &w[(kh * g.kernel_w + kw) * g.out_c..][..g.out_c];
                    // Output columns whose input column iw = ow·stride + shift lies inside the image.
                    let shift = (kw * g.dilation_w) as isize - g.pad_left as isize;
                    let first = if shift >= 0 {
                        0
                    } else {
                        (-shift as usize).div_ceil(g.stride_w)
                    };
                    let last = g.in_w as isize - 1 - shift;
                    let end = if last < 0 {
                        0
                    } else {
                        (last as usize / g.stride_w + 1).min(g.out_w)
                    };
                    if first < end {
                        let t = Taps {
                            input: in_row,
                            taps,
                            in_c: g.in_c,
                            mult: g.out_per_group(),
                            stride: g.stride_w,
                            shift,
                        };
                        accumulate(out_row, &t, first, end);
                    }
                }
            }
        });
    y
}

/// One tap of a depthwise kernel applied along an output row.
struct Taps<'a> {
    input: &'a [f32],
    taps: &'a [f32],
    in_c: usize,
    mult: usize,
    stride: usize,
    shift: isize,
}

type TapKernel = fn(&mut [f32], &Taps<'_>, usize, usize);

/// out[ow] += input[ow·stride + shift] ⊙ taps for ow in first..end.
#[inline(always)]
fn accumulate_taps(out: &mut [f32], t: &Taps<'_>, first: usize, end: usize) {
    let oc = t.taps.len();
    for ow in first..end {
        let iw = (ow * t.stride) as isize + t.shift;
        let pixel = &t.input[iw as usize * t.in_c..][..t.in_c];
        let acc = &mut out[ow * oc..][..oc];
        if t.mult == 1 {
            // Equal-length slices: no bounds checks, so the loop vectorises.
            for ((a, &x), &w) in acc.iter_mut().zip(pixel).zip(t.taps) {
                *a += x * w;
            }
        } else {
            for (i, (a, &w)) in acc.iter_mut().zip(t.taps).enumerate() {
                *a += pixel[i / t.mult] * w;
            }
        }
    }
}

/// The widest SIMD build of [`accumulate_taps`] this CPU runs (chosen at run time, so one
/// binary is fast on AVX-512 and still runs on any x86-64).
fn tap_kernel() -> TapKernel {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512(out: &mut [f32], t: &Taps<'_>, first: usize, end: usize) {
            accumulate_taps(out, t, first, end)
        }
        #[target_feature(enable = "avx2,fma")]
        fn avx2(out: &mut [f32], t: &Taps<'_>, first: usize, end: usize) {
            accumulate_taps(out, t, first, end)
        }
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            return |o, t, a, b| unsafe { avx512(o, t, a, b) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            return |o, t, a, b| unsafe { avx2(o, t, a, b) };
        }
    }
    accumulate_taps
}
