//! Gradients of convolution on the CPU. The kernel gradient reuses the forward pass's im2col and
//! GEMM (colsᵀ · dy, in the same per-thread tasks or shared chunks). The input gradient here is
//! dy · Wᵀ folded back onto the input pixels (col2im, written as a gather so that it runs in
//! parallel without races); stride-1 convolutions do not reach it, `Tensor::conv2d_backward_input`
//! runs them as a forward convolution with the flipped kernel. Depthwise convolutions get direct
//! loops.

use super::conv::{balanced_task_rows, im2col, MIN_TASK_ROWS, TASK_BYTES};
use super::matmul::{gemm_strided, parallelism, Dst};
use crate::geometry::WindowGeometry;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// The kernel of a stride-1 input gradient run as a convolution: HWIO `w`
/// ([taps, cg, groups, og]) with its taps in reverse order (both spatial axes flipped) and each
/// group's input and output channels swapped ([taps, og, groups, cg]), in one pass.
pub(crate) fn flipped_kernel(w: &[f32], g: &WindowGeometry) -> Vec<f32> {
    let (taps, cg, og) = (g.kernel_h * g.kernel_w, g.in_per_group(), g.out_per_group());
    let tap_len = cg * g.groups * og;
    let fill = |t: usize, out: &mut [MaybeUninit<f32>]| {
        let src = &w[(taps - 1 - t) * tap_len..][..tap_len];
        // Transposes of 16 × 16 pieces, each read and written within a few cache lines.
        for j0 in (0..og).step_by(16) {
            for i0 in (0..cg).step_by(16) {
                for grp in 0..g.groups {
                    for j in j0..(j0 + 16).min(og) {
                        for i in i0..(i0 + 16).min(cg) {
                            let value = src[(i * g.groups + grp) * og + j];
                            out[(j * g.groups + grp) * cg + i].write(value);
                        }
                    }
                }
            }
        }
    };
    // SAFETY: each tap's chunk gets every (j, grp, i) written once.
    unsafe { super::output_chunks(w.len(), tap_len, fill) }
}

/// Bytes of im2col scratch per chunk of images (at least one image per chunk).
const CHUNK_BYTES: usize = 16 << 20;

/// Images per chunk so that their patch matrix stays near `CHUNK_BYTES`.
fn images_per_chunk(g: &WindowGeometry) -> usize {
    let depth = g.kernel_h * g.kernel_w * g.in_per_group();
    let per_image = g.out_h * g.out_w * depth * 4;
    (CHUNK_BYTES / per_image.max(1)).clamp(1, g.batch.max(1))
}

fn is_depthwise(g: &WindowGeometry) -> bool {
    g.in_per_group() == 1 && g.groups > 1
}

/// dL/dw (HWIO) from the input `x` and the output gradient `dy`: colsᵀ · dy, per group.
pub(crate) fn conv2d_backward_kernel(x: &[f32], dy: &[f32], g: &WindowGeometry) -> Vec<f32> {
    if is_depthwise(g) {
        return depthwise_backward_kernel(x, dy, g);
    }
    let depth = g.kernel_h * g.kernel_w * g.in_per_group();
    let rows = g.out_pixels();
    let task_rows = TASK_BYTES / 4 / depth;
    // A 1×1 convolution's patches are the input itself: no scratch.
    let scratch_depth = if g.is_pointwise() { 0 } else { depth };
    if task_rows < MIN_TASK_ROWS {
        let mut dw = super::zeros(depth * g.out_c);
        let chunk = images_per_chunk(g) * g.out_h * g.out_w;
        let mut scratch = vec![MaybeUninit::uninit(); chunk.min(rows) * scratch_depth];
        for row0 in (0..rows).step_by(chunk) {
            let n_rows = chunk.min(rows - row0);
            let scratch = &mut scratch[..n_rows * scratch_depth];
            add_kernel_gradient(x, dy, g, (row0, n_rows), scratch, &mut dw, true);
        }
        return dw;
    }
    // Per-thread tasks (as in the forward pass), each adding into its own partial gradient.
    let task_rows = balanced_task_rows(rows, task_rows);
    let partial = || vec![0f32; depth * g.out_c];
    (0..rows.div_ceil(task_rows))
        .into_par_iter()
        .fold(partial, |mut dw, task| {
            let row0 = task * task_rows;
            let n_rows = task_rows.min(rows - row0);
            let mut scratch = vec![MaybeUninit::uninit(); n_rows * scratch_depth];
            add_kernel_gradient(x, dy, g, (row0, n_rows), &mut scratch, &mut dw, false);
            dw
        })
        .reduce(partial, |mut a, b| {
            a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
            a
        })
}

/// Adds to `dw` the kernel gradient of the `n_rows` output rows from `row0` on: per group,
/// their im2col patches (into `scratch`, unless the convolution is pointwise and the input is
/// its own patch matrix) transposed, times their rows of `dy`; `parallel` uses all threads.
fn add_kernel_gradient(
    x: &[f32],
    dy: &[f32],
    g: &WindowGeometry,
    (row0, n_rows): (usize, usize),
    scratch: &mut [MaybeUninit<f32>],
    dw: &mut [f32],
    parallel: bool,
) {
    let (cg, og) = (g.in_per_group(), g.out_per_group());
    let depth = g.kernel_h * g.kernel_w * cg;
    for grp in 0..g.groups {
        let (cols, col_strides) = if g.is_pointwise() {
            (&x[row0 * g.in_c + grp * cg..], (1, g.in_c))
        } else {
            (im2col(x, g, grp, row0, scratch, parallel), (1, depth))
        };
        let par = if parallel {
            parallelism(depth * og * n_rows)
        } else {
            gemm::Parallelism::None
        };
        // dw[:, group columns] += colsᵀ (depth × rows) · dy (rows × og)
        gemm_strided(
            depth,
            og,
            n_rows,
            Dst::Accumulate(&mut dw[grp * og..]),
            g.out_c,
            cols,
            col_strides,
            &dy[row0 * g.out_c + grp * og..],
            (g.out_c, 1),
            par,
        );
    }
}

/// dL/dx (NHWC) from the kernel `w` and the output gradient `dy`.
pub(crate) fn conv2d_backward_input(w: &[f32], dy: &[f32], g: &WindowGeometry) -> Vec<f32> {
    if is_depthwise(g) {
        return depthwise_backward_input(w, dy, g);
    }
    let cg = g.in_per_group();
    let og = g.out_per_group();
    let depth = g.kernel_h * g.kernel_w * cg;
    let in_img = g.in_h * g.in_w * g.in_c;
    let mut dx = super::zeros(g.batch * in_img);
    let per_image = g.out_h * g.out_w;
    let images = images_per_chunk(g);
    let mut dcols = vec![0f32; images.min(g.batch) * per_image * depth];
    for n0 in (0..g.batch).step_by(images) {
        let n_img = images.min(g.batch - n0);
        let n_rows = n_img * per_image;
        for grp in 0..g.groups {
            // dcols (rows × depth) = dy (rows × og) · W_groupᵀ (og × depth)
            gemm_strided(
                n_rows,
                depth,
                og,
                Dst::Overwrite(&mut dcols),
                depth,
                &dy[n0 * per_image * g.out_c + grp * og..],
                (g.out_c, 1),
                &w[grp * og..],
                (1, g.out_c),
                parallelism(depth * og * n_rows),
            );
            col2im(&dcols, g, grp, &mut dx[n0 * in_img..][..n_img * in_img]);
        }
    }
    dx
}

/// Adds each patch-matrix entry back onto the input pixel it was read from (channels of group
/// `grp` only). Parallel over input rows: each gathers from the output pixels whose windows cover it.
fn col2im(dcols: &[f32], g: &WindowGeometry, grp: usize, dx: &mut [f32]) {
    let cg = g.in_per_group();
    let depth = g.kernel_h * g.kernel_w * cg;
    let row_len = g.in_w * g.in_c;
    dx.par_chunks_mut(row_len)
        .enumerate()
        .for_each(|(r, dx_row)| {
            let n = r / g.in_h;
            let ih = r % g.in_h;
            for kh in 0..g.kernel_h {
                let Some(oh) = source(ih, kh, g.dilation_h, g.pad_top, g.stride_h, g.out_h) else {
                    continue;
                };
                for iw in 0..g.in_w {
                    let dst = &mut dx_row[iw * g.in_c + grp * cg..][..cg];
                    for kw in 0..g.kernel_w {
                        let Some(ow) =
                            source(iw, kw, g.dilation_w, g.pad_left, g.stride_w, g.out_w)
                        else {
                            continue;
                        };
                        let row = (n * g.out_h + oh) * g.out_w + ow;
                        let src = &dcols[row * depth + (kh * g.kernel_w + kw) * cg..][..cg];
                        dst.iter_mut().zip(src).for_each(|(d, &s)| *d += s);
                    }
                }
            }
        });
}

/// The output position whose tap `k` reads input position `i` along one axis, if any:
/// o · stride + k · dilation − pad = i.
pub(crate) fn source(
    i: usize,
    k: usize,
    dilation: usize,
    pad: usize,
    stride: usize,
    out: usize,
) -> Option<usize> {
    let t = (i + pad).checked_sub(k * dilation)?;
    (t % stride == 0 && t / stride < out).then_some(t / stride)
}

/// Depthwise dL/dx: each input channel gathers from its `multiplier` output channels.
fn depthwise_backward_input(w: &[f32], dy: &[f32], g: &WindowGeometry) -> Vec<f32> {
    let mult = g.out_per_group();
    let row_len = g.in_w * g.in_c;
    // The (tap, output column) pairs that read each input column, worked out once.
    let columns: Vec<Vec<(usize, usize)>> = (0..g.in_w)
        .map(|iw| {
            (0..g.kernel_w)
                .filter_map(|kw| {
                    source(iw, kw, g.dilation_w, g.pad_left, g.stride_w, g.out_w).map(|ow| (kw, ow))
                })
                .collect()
        })
        .collect();
    let fill = |r: usize, dx_row: &mut [MaybeUninit<f32>]| {
        let (n, ih) = (r / g.in_h, r % g.in_h);
        let rows: Vec<(usize, &[f32])> = (0..g.kernel_h)
            .filter_map(|kh| {
                let oh = source(ih, kh, g.dilation_h, g.pad_top, g.stride_h, g.out_h)?;
                let row = &dy[(n * g.out_h + oh) * g.out_w * g.out_c..][..g.out_w * g.out_c];
                Some((kh, row))
            })
            .collect();
        for (iw, columns) in columns.iter().enumerate() {
            let dst = &mut dx_row[iw * g.in_c..][..g.in_c];
            if mult == 1 {
                gather_pixel(w, g, &rows, columns, dst);
                continue;
            }
            for (c, d) in dst.iter_mut().enumerate() {
                let mut sum = 0.0;
                for &(kh, dy_row) in &rows {
                    for &(kw, ow) in columns {
                        let taps = &w[(kh * g.kernel_w + kw) * g.out_c..][..g.out_c];
                        let grad = &dy_row[ow * g.out_c..][..g.out_c];
                        for m in 0..mult {
                            sum += grad[c * mult + m] * taps[c * mult + m];
                        }
                    }
                }
                d.write(sum);
            }
        }
    };
    // SAFETY: chunk r is input row r, and `fill` writes each of its pixels' channels.
    unsafe { super::output_chunks(g.batch * g.in_h * row_len, row_len, fill) }
}

/// One input pixel's gradient of a depthwise convolution without multiplier: the sum over the
/// output rows (`rows`: tap kh and its dy row) and columns (tap kw and output column) that read
/// it of dy · w, 16 channels at a time in registers, written once.
#[inline(always)]
fn gather_pixel(
    w: &[f32],
    g: &WindowGeometry,
    rows: &[(usize, &[f32])],
    columns: &[(usize, usize)],
    dst: &mut [MaybeUninit<f32>],
) {
    let c = g.in_c;
    let full = c - c % 16;
    for c0 in (0..full).step_by(16) {
        gather_block::<16>(w, g, rows, columns, c0, &mut dst[c0..c0 + 16]);
    }
    for c0 in full..c {
        gather_block::<1>(w, g, rows, columns, c0, &mut dst[c0..c0 + 1]);
    }
}

/// [`gather_pixel`] for channels `c0..c0 + N`.
#[inline(always)]
fn gather_block<const N: usize>(
    w: &[f32],
    g: &WindowGeometry,
    rows: &[(usize, &[f32])],
    columns: &[(usize, usize)],
    c0: usize,
    dst: &mut [MaybeUninit<f32>],
) {
    let c = g.in_c;
    let mut acc = [0f32; N];
    for &(kh, dy_row) in rows {
        for &(kw, ow) in columns {
            let mut taps = [0f32; N];
            taps.copy_from_slice(&w[(kh * g.kernel_w + kw) * c + c0..][..N]);
            let mut grad = [0f32; N];
            grad.copy_from_slice(&dy_row[ow * c + c0..][..N]);
            for l in 0..N {
                acc[l] += grad[l] * taps[l];
            }
        }
    }
    for (d, &a) in dst.iter_mut().zip(&acc) {
        d.write(a);
    }
}

/// Depthwise dL/dw: per output row a partial kernel gradient, summed across threads. Padded
/// taps multiply zeros, as in the forward pass, so a non-finite dy reaches them too.
fn depthwise_backward_kernel(x: &[f32], dy: &[f32], g: &WindowGeometry) -> Vec<f32> {
    let add_row = match (g.out_per_group(), g.kernel_h, g.kernel_w) {
        (1, 3, 3) => row_gradient_kernel::<3, 3>(),
        (1, 5, 5) => row_gradient_kernel::<5, 5>(),
        _ => return depthwise_multiplier_backward_kernel(x, dy, g),
    };
    let taps = g.kernel_h * g.kernel_w * g.out_c;
    (0..g.batch * g.out_h)
        .into_par_iter()
        .fold(
            || vec![0f32; taps],
            |mut dw, r| {
                add_row(x, dy, g, r, &mut dw);
                dw
            },
        )
        .reduce(
            || vec![0f32; taps],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        )
}

/// Adds to `dw` the kernel gradient of a KH×KW depthwise convolution (multiplier 1) from
/// output row `r` (image and row), 16 channels at a time: the block's KH·KW tap sums stay in
/// registers across the whole output row, and each dy value is loaded once. `AVX512`: built for
/// AVX-512, whose kernel ([`avx512::block_gradient`]) takes the full blocks without dilation.
#[inline(always)]
fn add_row_gradient<const KH: usize, const KW: usize, const FMA: bool, const AVX512: bool>(
    x: &[f32],
    dy: &[f32],
    g: &WindowGeometry,
    r: usize,
    dw: &mut [f32],
) {
    let c = g.out_c;
    let (n, oh) = (r / g.out_h, r % g.out_h);
    let x_rows: [Option<&[f32]>; KH] = std::array::from_fn(|kh| {
        let ih = (oh * g.stride_h + kh * g.dilation_h) as isize - g.pad_top as isize;
        (ih >= 0 && ih < g.in_h as isize)
            .then(|| &x[(n * g.in_h + ih as usize) * g.in_w * c..][..g.in_w * c])
    });
    let dy_row = &dy[r * g.out_w * c..][..g.out_w * c];
    let full = c - c % 16;
    let (first, end) = super::depthwise::inner_columns(g);
    for c0 in (0..full).step_by(16) {
        #[cfg(target_arch = "x86_64")]
        if AVX512 && g.dilation_w == 1 {
            // SAFETY: add_row_gradient::<_, _, _, true> runs only inside row_gradient_kernel's
            // AVX-512 build; channels c0..c0 + 16 exist; first..end are the inner columns.
            unsafe { avx512::block_gradient::<KH, KW>(&x_rows, dy_row, g, c0, first..end, dw) };
            continue;
        }
        add_block_gradient::<16, KH, KW, FMA>(&x_rows, dy_row, g, c0, dw);
    }
    for c0 in full..c {
        add_block_gradient::<1, KH, KW, FMA>(&x_rows, dy_row, g, c0, dw);
    }
}

/// [`add_row_gradient`] for channels `c0..c0 + N`: `x_rows` the input rows the kernel rows
/// read (`None` in the padding).
#[inline(always)]
#[allow(
    clippy::needless_range_loop,
    reason = "indexed by kw and kh the tap sums stay in registers; zipped iterators spilled them (1.3-1.5× slower)"
)]
fn add_block_gradient<const N: usize, const KH: usize, const KW: usize, const FMA: bool>(
    x_rows: &[Option<&[f32]>; KH],
    dy_row: &[f32],
    g: &WindowGeometry,
    c0: usize,
    dw: &mut [f32],
) {
    let c = g.out_c;
    let mut acc = [[[0f32; N]; KW]; KH];
    for ow in 0..g.out_w {
        let mut grad = [0f32; N];
        grad.copy_from_slice(&dy_row[ow * c + c0..][..N]);
        for kw in 0..KW {
            let iw = (ow * g.stride_w + kw * g.dilation_w) as isize - g.pad_left as isize;
            let inside = iw >= 0 && iw < g.in_w as isize;
            for kh in 0..KH {
                // A padded tap reads zero: 0 · dy, so that a non-finite dy still shows.
                let mut xs = [0f32; N];
                if let (true, Some(row)) = (inside, x_rows[kh]) {
                    xs.copy_from_slice(&row[iw as usize * c + c0..][..N]);
                }
                for l in 0..N {
                    acc[kh][kw][l] = super::multiply_add::<FMA>(xs[l], grad[l], acc[kh][kw][l]);
                }
            }
        }
    }
    for (kh, row) in acc.iter().enumerate() {
        for (kw, acc) in row.iter().enumerate() {
            let dst = &mut dw[(kh * KW + kw) * c + c0..][..N];
            dst.iter_mut().zip(acc).for_each(|(d, a)| *d += a);
        }
    }
}

type RowGradient = fn(&[f32], &[f32], &WindowGeometry, usize, &mut [f32]);

/// The widest SIMD build of [`add_row_gradient`] this CPU runs (chosen at run time).
fn row_gradient_kernel<const KH: usize, const KW: usize>() -> RowGradient {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512<const KH: usize, const KW: usize>(
            x: &[f32],
            dy: &[f32],
            g: &WindowGeometry,
            r: usize,
            dw: &mut [f32],
        ) {
            add_row_gradient::<KH, KW, true, true>(x, dy, g, r, dw)
        }
        #[target_feature(enable = "avx2,fma")]
        fn avx2<const KH: usize, const KW: usize>(
            x: &[f32],
            dy: &[f32],
            g: &WindowGeometry,
            r: usize,
            dw: &mut [f32],
        ) {
            add_row_gradient::<KH, KW, true, false>(x, dy, g, r, dw)
        }
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            return |x, dy, g, r, dw| unsafe { avx512::<KH, KW>(x, dy, g, r, dw) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            return |x, dy, g, r, dw| unsafe { avx2::<KH, KW>(x, dy, g, r, dw) };
        }
    }
    add_row_gradient::<KH, KW, false, false>
}

/// The depthwise kernel gradient's blocks on AVX-512.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use crate::geometry::WindowGeometry;
    use std::arch::x86_64::*;

    /// Adds to `dw` the tap sums of channels `c0..c0 + 16` over one output row (dy in `dy_row`,
    /// `x_rows` the input rows its kernel rows read, None in the padding), all KH · KW sums in
    /// registers; the `inner` columns, whose taps all lie inside the image, load without checks.
    ///
    /// # Safety
    /// The CPU must have AVX-512F; channels `c0..c0 + 16` must exist, dilation be 1 and `inner`
    /// be the inner columns.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn block_gradient<const KH: usize, const KW: usize>(
        x_rows: &[Option<&[f32]>; KH],
        dy_row: &[f32],
        g: &WindowGeometry,
        c0: usize,
        inner: std::ops::Range<usize>,
        dw: &mut [f32],
    ) {
        let c = g.out_c;
        assert!(c0 + 16 <= c && dy_row.len() == g.out_w * c && dw.len() == KH * KW * c);
        let mut acc = [[_mm512_setzero_ps(); KW]; KH];
        for ow in 0..g.out_w {
            // SAFETY (this loop): dy_row holds out_w pixels of c channels; a tap's input pixel
            // is read only inside its row (checked outside the inner columns, which hold every
            // tap by definition).
            unsafe {
                let grad = _mm512_loadu_ps(dy_row.as_ptr().add(ow * c + c0));
                let x0 = (ow * g.stride_w) as isize - g.pad_left as isize;
                let unchecked = inner.contains(&ow);
                for (sums, x_row) in acc.iter_mut().zip(x_rows) {
                    for (kw, sum) in sums.iter_mut().enumerate() {
                        let iw = x0 + kw as isize;
                        // A padded tap reads zero: 0 · dy, so that a non-finite dy still shows.
                        let xs = match x_row {
                            Some(row) if unchecked || (0..g.in_w as isize).contains(&iw) => {
                                _mm512_loadu_ps(row.as_ptr().add(iw as usize * c + c0))
                            }
                            _ => _mm512_setzero_ps(),
                        };
                        *sum = _mm512_fmadd_ps(xs, grad, *sum);
                    }
                }
            }
        }
        for (kh, row) in acc.iter().enumerate() {
            for (kw, &acc) in row.iter().enumerate() {
                let dst = &mut dw[(kh * KW + kw) * c + c0..][..16];
                // SAFETY: `dst` holds 16 values.
                unsafe {
                    let sum = _mm512_add_ps(_mm512_loadu_ps(dst.as_ptr()), acc);
                    _mm512_storeu_ps(dst.as_mut_ptr(), sum);
                }
            }
        }
    }
}

/// [`depthwise_backward_kernel`] for any channel multiplier and kernel width.
fn depthwise_multiplier_backward_kernel(x: &[f32], dy: &[f32], g: &WindowGeometry) -> Vec<f32> {
    let mult = g.out_per_group();
    let taps = g.kernel_h * g.kernel_w * g.out_c;
    let zero_pixel = vec![0f32; g.in_c];
    (0..g.batch * g.out_h)
        .into_par_iter()
        .fold(
            || vec![0f32; taps],
            |mut dw, r| {
                let n = r / g.out_h;
                let oh = r % g.out_h;
                for kh in 0..g.kernel_h {
                    let ih = (oh * g.stride_h + kh * g.dilation_h) as isize - g.pad_top as isize;
                    let row_inside = ih >= 0 && ih < g.in_h as isize;
                    for kw in 0..g.kernel_w {
                        let acc = &mut dw[(kh * g.kernel_w + kw) * g.out_c..][..g.out_c];
                        for ow in 0..g.out_w {
                            let iw = (ow * g.stride_w + kw * g.dilation_w) as isize
                                - g.pad_left as isize;
                            let xs = if row_inside && iw >= 0 && iw < g.in_w as isize {
                                let pixel = (n * g.in_h + ih as usize) * g.in_w + iw as usize;
                                &x[pixel * g.in_c..][..g.in_c]
                            } else {
                                &zero_pixel
                            };
                            let grad = &dy[(r * g.out_w + ow) * g.out_c..][..g.out_c];
                            for (oc, a) in acc.iter_mut().enumerate() {
                                *a += xs[oc / mult] * grad[oc];
                            }
                        }
                    }
                }
                dw
            },
        )
        .reduce(
            || vec![0f32; taps],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        )
}
