//! Convolution on the CPU: GEMM straight on the input for 1×1 convolutions; on AVX-512 CPUs
//! Winograd's F(2×2, 3×3) for wide 3×3 convolutions at stride 1 (`winograd.rs`) and a direct
//! kernel for other dense ones (`direct_conv.rs`); im2col feeding the GEMM otherwise (per-thread
//! tasks, or shared chunks for deep patches); depthwise convolution has its own kernel
//! (`depthwise.rs`).

use super::depthwise::depthwise;
use super::matmul::{gemm_strided, parallelism, Dst};
#[cfg(target_arch = "x86_64")]
use super::{direct_conv, winograd};
use crate::geometry::WindowGeometry;
use crate::op::{Activation, UnaryOp};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Bytes of im2col scratch per chunk: large enough for full-speed GEMMs, small enough for caches
/// and memory (VGG16 block1 at batch 32 would need 3.7 GB in one piece).
const IM2COL_CHUNK_BYTES: usize = 16 << 20;

/// im2col scratch of one per-thread task: about the size of one core's L2 cache on the hosts
/// measured (docs/performance.md).
pub(super) const TASK_BYTES: usize = 5 << 19;

/// The fewest patches a per-thread task multiplies: with fewer rows the GEMM runs slower than
/// the shared-chunk path (K = 4608 at 113 rows ran at 85% of its speed at 1,820 rows).
pub(super) const MIN_TASK_ROWS: usize = 256;

/// What a convolution does to its output rows while they are still in cache:
/// y = act(y · scale[c] + shift[c]).
#[derive(Clone, Copy)]
pub(crate) struct Epilogue<'a> {
    pub scale: &'a [f32],
    pub shift: &'a [f32],
    pub act: Activation,
}

impl Epilogue<'_> {
    /// Applies the epilogue to `rows` (whole rows of `scale.len()` channels), written already.
    ///
    /// # Safety
    /// Every element of `rows` must have been written.
    pub(super) unsafe fn apply(&self, rows: &mut [MaybeUninit<f32>]) {
        // SAFETY: the caller's contract; MaybeUninit<f32> has f32's layout.
        let rows = unsafe { &mut *(rows as *mut [MaybeUninit<f32>] as *mut [f32]) };
        // One loop per activation, so the inner loop has no match and vectorises.
        match self.act {
            Activation::None => self.wide(rows, |v| v),
            Activation::Relu => self.wide(rows, |v| UnaryOp::Relu.apply(v)),
            Activation::Relu6 => self.wide(rows, |v| UnaryOp::Relu6.apply(v)),
            Activation::Silu => self.wide(rows, |v| UnaryOp::Silu.apply(v)),
            Activation::HardSwish => self.wide(rows, |v| UnaryOp::HardSwish.apply(v)),
        }
    }

    /// [`each`](Self::each) in the widest SIMD build this CPU runs (SiLU's exponential and
    /// division gain from it most).
    #[inline(always)]
    fn wide(&self, rows: &mut [f32], act: impl Fn(f32) -> f32) {
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f")]
            fn avx512(e: &Epilogue<'_>, rows: &mut [f32], act: impl Fn(f32) -> f32) {
                e.each(rows, act)
            }
            #[target_feature(enable = "avx2,fma")]
            fn avx2(e: &Epilogue<'_>, rows: &mut [f32], act: impl Fn(f32) -> f32) {
                e.each(rows, act)
            }
            if is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU supports AVX-512F (checked just above).
                return unsafe { avx512(self, rows, act) };
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                return unsafe { avx2(self, rows, act) };
            }
        }
        self.each(rows, act)
    }

    #[inline(always)]
    fn each(&self, rows: &mut [f32], act: impl Fn(f32) -> f32) {
        for row in rows.chunks_exact_mut(self.scale.len()) {
            for ((v, &s), &t) in row.iter_mut().zip(self.scale).zip(self.shift) {
                *v = act(*v * s + t);
            }
        }
    }
}

/// y = conv(x, w) for NHWC `x` and HWIO `w`, then `epilogue` on each output row.
pub(crate) fn conv2d(
    x: &[f32],
    w: &[f32],
    g: &WindowGeometry,
    epilogue: Option<Epilogue<'_>>,
) -> Vec<f32> {
    if g.in_per_group() == 1 && g.groups > 1 {
        return depthwise(x, w, g, epilogue);
    }
    let rows = g.out_pixels();
    let pointwise = g.is_pointwise();
    // SAFETY: both paths overwrite, for every chunk of output rows and every group, the group's
    // columns of those rows; the chunks cover all rows and the groups all columns.
    unsafe {
        super::uninit_output(rows * g.out_c, |y| match (pointwise, epilogue) {
            (true, None) => {
                let par = parallelism(rows * g.out_per_group() * g.in_per_group());
                pointwise_gemms(x, w, g, y, par)
            }
            (true, Some(e)) => pointwise_tasks(x, w, g, y, e),
            (false, e) => {
                #[cfg(target_arch = "x86_64")]
                if winograd::supports(g) && winograd::conv2d(x, w, g, y, e) {
                    return;
                }
                #[cfg(target_arch = "x86_64")]
                if direct_conv::supports(g) {
                    return direct_conv::conv2d(x, w, g, y, e);
                }
                im2col_gemms(x, w, g, y, e)
            }
        })
    }
}

/// A 1×1 convolution without stride or padding, for the output rows of `y` (the input rows of
/// `x` from the same pixel on): one GEMM per group straight on the input.
fn pointwise_gemms(
    x: &[f32],
    w: &[f32],
    g: &WindowGeometry,
    y: &mut [MaybeUninit<f32>],
    par: gemm::Parallelism,
) {
    let (cg, og) = (g.in_per_group(), g.out_per_group());
    let rows = y.len() / g.out_c;
    for grp in 0..g.groups {
        gemm_strided(
            rows,
            og,
            cg,
            Dst::Fresh(&mut y[grp * og..]),
            g.out_c,
            &x[grp * cg..],
            (g.in_c, 1),
            &w[grp * og..],
            (g.out_c, 1),
            par,
        );
    }
}

/// [`pointwise_gemms`] by blocks of output rows, one thread each, with `epilogue` on each block
/// right after its products, while it is in cache.
fn pointwise_tasks(
    x: &[f32],
    w: &[f32],
    g: &WindowGeometry,
    y: &mut [MaybeUninit<f32>],
    epilogue: Epilogue<'_>,
) {
    let rows = g.out_pixels();
    // Four blocks per thread balance the load; a block of fewer rows runs the GEMM slower.
    let threads = rayon::current_num_threads();
    let task_rows = rows
        .div_ceil(4 * threads)
        .clamp(MIN_TASK_ROWS.min(rows), 2048)
        .max(1);
    y.par_chunks_mut(task_rows * g.out_c)
        .enumerate()
        .for_each(|(task, y)| {
            let x = &x[task * task_rows * g.in_c..];
            pointwise_gemms(x, w, g, y, gemm::Parallelism::None);
            // SAFETY: the GEMMs wrote every group's columns of these rows.
            unsafe { epilogue.apply(y) };
        });
}

/// Rows per per-thread task: at most `max`, the same for every task, and a whole number of tasks
/// per thread (with one task more than that, one thread works alone at the end: 3 tasks on 2
/// threads took 1.3× the time of 4).
pub(super) fn balanced_task_rows(rows: usize, max: usize) -> usize {
    let threads = rayon::current_num_threads();
    let tasks = rows.div_ceil(max.max(1)).next_multiple_of(threads);
    rows.div_ceil(tasks).max(1)
}

/// Any other convolution, by im2col and GEMM. When a task of [`MIN_TASK_ROWS`] patches fits in
/// [`TASK_BYTES`], each task writes the patches of its own block of output rows and multiplies
/// them on its own thread, while they are still in cache and without waiting for the other
/// threads in between. Deeper patches go through shared chunks instead: one im2col by all threads,
/// then one GEMM by all threads, so each GEMM keeps enough rows to run at full speed.
fn im2col_gemms(
    x: &[f32],
    w: &[f32],
    g: &WindowGeometry,
    y: &mut [MaybeUninit<f32>],
    epilogue: Option<Epilogue<'_>>,
) {
    let depth = g.kernel_h * g.kernel_w * g.in_per_group();
    let task_rows = TASK_BYTES / 4 / depth;
    if task_rows >= MIN_TASK_ROWS {
        let task_rows = balanced_task_rows(g.out_pixels(), task_rows);
        y.par_chunks_mut(task_rows * g.out_c)
            .enumerate()
            .for_each(|(task, y)| {
                let mut scratch = vec![MaybeUninit::uninit(); y.len() / g.out_c * depth];
                chunk_gemms(x, w, g, task * task_rows, &mut scratch, y, false);
                if let Some(e) = epilogue {
                    // SAFETY: chunk_gemms wrote every column of these rows.
                    unsafe { e.apply(y) };
                }
            });
    } else {
        let chunk_rows = (IM2COL_CHUNK_BYTES / 4 / depth).max(1);
        let mut scratch = vec![MaybeUninit::uninit(); chunk_rows.min(g.out_pixels()) * depth];
        for (chunk, y) in y.chunks_mut(chunk_rows * g.out_c).enumerate() {
            let n_rows = y.len() / g.out_c;
            let scratch = &mut scratch[..n_rows * depth];
            chunk_gemms(x, w, g, chunk * chunk_rows, scratch, y, true);
            if let Some(e) = epilogue {
                // SAFETY: chunk_gemms wrote every column of these rows.
                y.par_chunks_mut(64 * g.out_c)
                    .for_each(|rows| unsafe { e.apply(rows) });
            }
        }
    }
}

/// Overwrites `y`, the output rows from `row0` on, with their convolution: per group, the im2col
/// patches of those rows into `scratch`, times the group's kernel; `parallel` uses all threads.
fn chunk_gemms(
    x: &[f32],
    w: &[f32],
    g: &WindowGeometry,
    row0: usize,
    scratch: &mut [MaybeUninit<f32>],
    y: &mut [MaybeUninit<f32>],
    parallel: bool,
) {
    let (cg, og) = (g.in_per_group(), g.out_per_group());
    let n_rows = y.len() / g.out_c;
    let depth = g.kernel_h * g.kernel_w * cg;
    for grp in 0..g.groups {
        let cols = im2col(x, g, grp, row0, scratch, parallel);
        let par = if parallel {
            parallelism(n_rows * og * depth)
        } else {
            gemm::Parallelism::None
        };
        gemm_strided(
            n_rows,
            og,
            depth,
            Dst::Fresh(&mut y[grp * og..]),
            g.out_c,
            cols,
            (depth, 1),
            &w[grp * og..],
            (g.out_c, 1),
            par,
        );
    }
}

/// Copies `src` into the equally long `dst`.
pub(super) fn write(dst: &mut [MaybeUninit<f32>], src: &[f32]) {
    for (d, &v) in dst.iter_mut().zip(src) {
        d.write(v);
    }
}

/// Writes into `cols` (rows × depth) the input patches of output pixels `row0..` for group
/// `grp`, and returns it, now initialised; `parallel` spreads the patches over all threads.
pub(super) fn im2col<'a>(
    x: &[f32],
    g: &WindowGeometry,
    grp: usize,
    row0: usize,
    cols: &'a mut [MaybeUninit<f32>],
    parallel: bool,
) -> &'a [f32] {
    let cg = g.in_per_group();
    let depth = g.kernel_h * g.kernel_w * cg;
    let row_len = g.kernel_w * cg;
    // Without groups or horizontal dilation, a kernel row's pixels are adjacent in the input, so a
    // kernel row inside the image is one copy (for few channels, far fewer than one per tap).
    let runs = g.groups == 1 && g.dilation_w == 1;
    let patch = |(r, patch): (usize, &mut [MaybeUninit<f32>])| {
        let row = row0 + r;
        let n = row / (g.out_h * g.out_w);
        let oh = (row / g.out_w) % g.out_h;
        let ow = row % g.out_w;
        let iw0 = (ow * g.stride_w) as isize - g.pad_left as isize;
        let row_inside = iw0 >= 0 && iw0 as usize + g.kernel_w <= g.in_w;
        for kh in 0..g.kernel_h {
            let ih = (oh * g.stride_h + kh * g.dilation_h) as isize - g.pad_top as isize;
            let dst_row = &mut patch[kh * row_len..][..row_len];
            if ih < 0 || ih >= g.in_h as isize {
                dst_row.fill(MaybeUninit::new(0.0));
                continue;
            }
            let image_row = (n * g.in_h + ih as usize) * g.in_w;
            if runs && row_inside {
                let src = &x[(image_row + iw0 as usize) * g.in_c..][..row_len];
                write(dst_row, src);
                continue;
            }
            for (kw, dst) in dst_row.chunks_exact_mut(cg).enumerate() {
                let iw = iw0 + (kw * g.dilation_w) as isize;
                if iw < 0 || iw >= g.in_w as isize {
                    dst.fill(MaybeUninit::new(0.0));
                } else {
                    let pixel = image_row + iw as usize;
                    write(dst, &x[pixel * g.in_c + grp * cg..][..cg]);
                }
            }
        }
    };
    if parallel {
        cols.par_chunks_mut(depth).enumerate().for_each(patch);
    } else {
        cols.chunks_mut(depth).enumerate().for_each(patch);
    }
    // SAFETY: every patch (depth = kernel_h · kernel_w · cg values) was written whole above: each
    // of its kernel_h rows of kernel_w · cg values is zero-filled, copied as one run, or written
    // slot by slot (each of its kernel_w slots of cg values zero-filled or copied).
    // MaybeUninit<f32> has f32's layout.
    unsafe { &*(cols as *const [MaybeUninit<f32>] as *const [f32]) }
}
