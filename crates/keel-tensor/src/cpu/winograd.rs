//! 3×3 convolution with stride 1 by Winograd's minimal filtering F(2×2, 3×3) (Lavin and Gray,
//! "Fast Algorithms for Convolutional Neural Networks", 2016) on CPUs with AVX-512: each 2×2
//! block of output pixels ("tile") comes from its 4×4 block of input through 16 products per
//! input and output channel instead of 36.
//!
//! With d a tile's 4×4 input (one channel), g a 3×3 kernel and ⊙ the element-wise product,
//! y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A. The kernel transform U = G g Gᵀ is computed once per call;
//! the input transform V = Bᵀ d B per tile; then, for each of the 16 positions e of the 4×4
//! transform, M_e = V_e · U_e sums over the input channels (a matrix product, tiles × in_c times
//! in_c × out_c, by the register tile); the output transform Aᵀ M A gives the 2×2 outputs.
//! The transforms only add, subtract and halve, so the result stays within a few roundings of
//! the direct sum (tests/ops holds it to the same f64 reference).

use super::conv::{balanced_task_rows, Epilogue};
use super::register_tile::{aligned_kernel, padded_starts, products, AlignedKernel, Window};
use super::register_tile::{BLOCK, LANES};
use crate::geometry::WindowGeometry;
use rayon::prelude::*;
use std::arch::x86_64::*;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};

/// Positions of the 4×4 transform.
const POSITIONS: usize = 16;

/// Transformed inputs and products of one task are written once and read once; a task takes
/// enough tiles to keep their scratch (V and M) near this size, for the product to run from cache.
const TASK_SCRATCH_BYTES: usize = 1 << 20;

/// The fewest input and output channels, and output rows and columns, for which F(2×2, 3×3) ran
/// faster than the direct kernel (docs/performance.md): below them the transforms cost more than
/// the multiply-adds saved (13² × 32 → 64: 1.16× the direct kernel's time; 7² × 512 → 512 and
/// 14² × 64 → 64: equal).
const MIN_CHANNELS: usize = 64;
const MIN_SIDE: usize = 8;

/// Whether [`conv2d`] computes this convolution: dense (one group) 3×3, stride and dilation 1,
/// output channels in whole registers, at least [`MIN_CHANNELS`] in and out and an output of at
/// least [`MIN_SIDE`] × [`MIN_SIDE`], on a CPU with AVX-512.
pub(super) fn supports(g: &WindowGeometry) -> bool {
    g.groups == 1
        && (g.kernel_h, g.kernel_w) == (3, 3)
        && (g.stride_h, g.stride_w) == (1, 1)
        && (g.dilation_h, g.dilation_w) == (1, 1)
        && g.out_c.is_multiple_of(LANES)
        && g.in_c.min(g.out_c) >= MIN_CHANNELS
        && g.out_h.min(g.out_w) >= MIN_SIDE
        && g.batch > 0
        && is_x86_feature_detected!("avx512f")
}

/// Overwrites `y` with conv(x, w) for NHWC `x` and HWIO `w`, then `epilogue` on each output row,
/// and returns true; or returns false, leaving `y` to the caller, where an input or kernel value
/// is not finite (or a sum of 16 inputs or 9 kernel values overflows): there the transforms would turn ∞ − ∞ into
/// NaN where the direct sum has ±∞. The caller checked [`supports`].
pub(super) fn conv2d(
    x: &[f32],
    w: &[f32],
    g: &WindowGeometry,
    y: &mut [MaybeUninit<f32>],
    epilogue: Option<Epilogue<'_>>,
) -> bool {
    let Some(kernel) = transform_kernel(w, g) else {
        return false;
    };
    let tiles = Tiles::new(g);
    // Output rows by tile row: two output rows each, one for the last of an odd height.
    let mut tile_rows: Vec<&mut [MaybeUninit<f32>]> = y
        .chunks_mut(g.out_h * g.out_w * g.out_c)
        .flat_map(|image| image.chunks_mut(2 * g.out_w * g.out_c))
        .collect();
    let zeros = vec![0.0; g.in_c];
    let non_finite = AtomicBool::new(false);
    tile_rows
        .par_chunks_mut(tiles.rows_per_task)
        .enumerate()
        .for_each(|(task, rows)| {
            if non_finite.load(Ordering::Relaxed) {
                return;
            }
            let first_row = task * tiles.rows_per_task;
            let count = rows.len() * tiles.across;
            let mut v = Vec::with_capacity(POSITIONS * count * g.in_c);
            let mut m = Vec::with_capacity(POSITIONS * count * g.out_c);
            // SAFETY: `supports` checked AVX-512; `v` and `m` have room for every position of
            // `count` tiles; `zeros` holds in_c zeros; the task's tile rows are `rows`.
            let finite = unsafe {
                let finite = transform_inputs(x, g, &tiles, first_row, rows.len(), &zeros, &mut v);
                if finite {
                    multiply(&v, kernel.values(), g, count, &mut m);
                    transform_outputs(&m, g, &tiles, rows);
                }
                finite
            };
            if !finite {
                non_finite.store(true, Ordering::Relaxed);
                return;
            }
            if let Some(e) = epilogue {
                for row in rows.iter_mut() {
                    // SAFETY: transform_outputs wrote every element of the task's rows.
                    unsafe { e.apply(row) };
                }
            }
        });
    !non_finite.into_inner()
}

/// How output tiles are laid out and split into tasks.
struct Tiles {
    /// Tiles across an output row (the last may stick out past an odd width).
    across: usize,
    /// Tile rows per image.
    down: usize,
    /// Tile rows per task (across the batch: a task may end in the next image).
    rows_per_task: usize,
}

impl Tiles {
    fn new(g: &WindowGeometry) -> Self {
        let across = g.out_w.div_ceil(2);
        let down = g.out_h.div_ceil(2);
        let tile_bytes = POSITIONS * (g.in_c + g.out_c) * 4;
        // Each task reads the whole transformed kernel (16 · in_c · out_c values): enough tiles
        // that this stays below the traffic of their own transformed inputs and products.
        let reuse = g.in_c * g.out_c / (g.in_c + g.out_c);
        let tiles = (TASK_SCRATCH_BYTES / tile_bytes).max(reuse);
        let fit = (tiles / across).max(1);
        Tiles {
            across,
            down,
            rows_per_task: balanced_task_rows(g.batch * down, fit),
        }
    }
}

/// The kernel transform U = G g Gᵀ of every input and output channel, in blocks of [`BLOCK`]
/// output channels (the last may be narrower): block b holds, for each position e, in_c rows of
/// its `width` channels, so that `block(e)` of [`multiply`] is one run. None where a kernel value
/// is not finite (or 9 of them sum past f32's range).
fn transform_kernel(w: &[f32], g: &WindowGeometry) -> Option<AlignedKernel> {
    let (c, o) = (g.in_c, g.out_c);
    assert_eq!(w.len(), 9 * c * o);
    let mut finite = false;
    let kernel = aligned_kernel(POSITIONS * c * o, |packed| {
        // Every block is written (reduce does not stop early), finite or not.
        finite = packed
            .par_chunks_mut(POSITIONS * c * BLOCK)
            .enumerate()
            .map(|(b, block)| {
                // SAFETY: `supports` checked AVX-512; the block holds 16 · c rows of `width`
                // (a multiple of 16, as out_c is) channels from b · BLOCK on, all inside out_c.
                unsafe { transform_block(w, c, o, b * BLOCK, block) }
            })
            .reduce(|| true, |a, b| a && b);
    });
    finite.then_some(kernel)
}

/// Writes into `block` U = G g Gᵀ of output channels `c0..` (16 at a time) for every input
/// channel: position e, input channel ci at row e · c + ci. G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1].
/// False where a kernel value it read is not finite.
///
/// # Safety
/// The CPU must have AVX-512F; `w` must be 3 × 3 × c × o, and `block` 16 · c rows of a multiple
/// of 16 channels from c0, inside o.
#[target_feature(enable = "avx512f")]
unsafe fn transform_block(
    w: &[f32],
    c: usize,
    o: usize,
    c0: usize,
    block: &mut [MaybeUninit<f32>],
) -> bool {
    let width = block.len() / (POSITIONS * c);
    let out = block.as_mut_ptr() as *mut f32;
    // 0 while every value is finite: the sum of each step's taps, times 0.
    let mut check = _mm512_setzero_ps();
    for ci in 0..c {
        for l in (0..width).step_by(LANES) {
            // SAFETY: the caller's contract keeps every load inside `w` and store inside `block`.
            unsafe {
                let g: [__m512; 9] = std::array::from_fn(|k| {
                    _mm512_loadu_ps(w.as_ptr().add((k * c + ci) * o + c0 + l))
                });
                check = _mm512_fmadd_ps(sum(g), _mm512_setzero_ps(), check);
                // Down each column kw: G g[·][kw].
                let columns: [[__m512; 4]; 3] =
                    std::array::from_fn(|kw| times_g([g[kw], g[3 + kw], g[6 + kw]]));
                // Along each row i: (G g) Gᵀ.
                for i in 0..4 {
                    let row = times_g(columns.map(|column| column[i]));
                    for (j, value) in row.into_iter().enumerate() {
                        _mm512_storeu_ps(out.add(((i * 4 + j) * c + ci) * width + l), value);
                    }
                }
            }
        }
    }
    all_zero(check)
}

/// G · [a, b, c] for G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1], lane by lane.
#[target_feature(enable = "avx512f")]
fn times_g([a, b, c]: [__m512; 3]) -> [__m512; 4] {
    let half = _mm512_set1_ps(0.5);
    let ac = _mm512_add_ps(a, c);
    [
        a,
        _mm512_mul_ps(_mm512_add_ps(ac, b), half),
        _mm512_mul_ps(_mm512_sub_ps(ac, b), half),
        c,
    ]
}

/// Writes into `v` the input transform of the task's tiles (tile rows `first_row..` across the
/// batch, `rows` of them): position e of tile t at (e · tiles + t) · in_c, in_c channels; false
/// where an input value is not finite (or 16 of them sum past f32's range).
///
/// # Safety
/// The CPU must have AVX-512F; `v` must have room for 16 · tiles · in_c values and `zeros` hold
/// in_c zeros.
#[target_feature(enable = "avx512f")]
unsafe fn transform_inputs(
    x: &[f32],
    g: &WindowGeometry,
    tiles: &Tiles,
    first_row: usize,
    rows: usize,
    zeros: &[f32],
    v: &mut Vec<f32>,
) -> bool {
    let c = g.in_c;
    // 0 while every input is finite: the sum of each step's inputs, times 0.
    let mut check = _mm512_setzero_ps();
    let count = rows * tiles.across;
    let out = v.spare_capacity_mut().as_mut_ptr() as *mut f32;
    for r in 0..rows {
        let (n, ty) = ((first_row + r) / tiles.down, (first_row + r) % tiles.down);
        for tx in 0..tiles.across {
            // The tile's 4×4 input pixels, or zeros where they lie in the padding.
            let mut d = [zeros.as_ptr(); POSITIONS];
            for (k, d) in d.iter_mut().enumerate() {
                let ih = (2 * ty + k / 4) as isize - g.pad_top as isize;
                let iw = (2 * tx + k % 4) as isize - g.pad_left as isize;
                if (0..g.in_h as isize).contains(&ih) && (0..g.in_w as isize).contains(&iw) {
                    let pixel = (n * g.in_h + ih as usize) * g.in_w + iw as usize;
                    *d = x[pixel * c..][..c].as_ptr();
                }
            }
            let t = r * tiles.across + tx;
            // SAFETY: each of `d` points at c readable values; position e of tile t lies in `v`.
            unsafe { transform_input(&d, out.add(t * c), count * c, c, &mut check) };
        }
    }
    // SAFETY: every position of every tile was written above.
    unsafe { v.set_len(POSITIONS * count * c) };
    all_zero(check)
}

/// V = Bᵀ d B for `c` channels: d[k] points at input pixel (k / 4, k % 4) of the tile; position e
/// goes to `v` + e · `stride`. Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]. Adds the sum of
/// each step's inputs times 0 to `check` (NaN from a non-finite one).
///
/// # Safety
/// The CPU must have AVX-512F; every d[k] must hold `c` readable values and v + e · stride room
/// for `c`.
#[target_feature(enable = "avx512f")]
unsafe fn transform_input(
    d: &[*const f32; POSITIONS],
    v: *mut f32,
    stride: usize,
    c: usize,
    check: &mut __m512,
) {
    for c0 in (0..c).step_by(LANES) {
        let mask = lanes(c - c0);
        // SAFETY: the caller's contract; the mask keeps the last loads and stores inside `c`.
        unsafe {
            let mut a = [_mm512_setzero_ps(); POSITIONS];
            for (a, d) in a.iter_mut().zip(d) {
                *a = _mm512_maskz_loadu_ps(mask, d.add(c0));
            }
            *check = _mm512_fmadd_ps(sum(a), _mm512_setzero_ps(), *check);
            // Bᵀ d, down each column.
            let mut t = [_mm512_setzero_ps(); POSITIONS];
            for j in 0..4 {
                let [d0, d1, d2, d3] = [a[j], a[4 + j], a[8 + j], a[12 + j]];
                t[j] = _mm512_sub_ps(d0, d2);
                t[4 + j] = _mm512_add_ps(d1, d2);
                t[8 + j] = _mm512_sub_ps(d2, d1);
                t[12 + j] = _mm512_sub_ps(d1, d3);
            }
            // (Bᵀ d) B, along each row.
            for i in 0..4 {
                let [t0, t1, t2, t3] = [t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3]];
                let row = [
                    _mm512_sub_ps(t0, t2),
                    _mm512_add_ps(t1, t2),
                    _mm512_sub_ps(t2, t1),
                    _mm512_sub_ps(t1, t3),
                ];
                for (j, value) in row.into_iter().enumerate() {
                    _mm512_mask_storeu_ps(v.add((4 * i + j) * stride + c0), mask, value);
                }
            }
        }
    }
}

/// M_e = V_e · U_e for each position e: `count` tiles × out_c into `m`, laid out as `v` is.
///
/// # Safety
/// The CPU must have AVX-512F; `v` must be [`transform_inputs`]' for `count` tiles, `kernel`
/// [`transform_kernel`]'s, and `m` have room for 16 · count · out_c values.
#[target_feature(enable = "avx512f")]
unsafe fn multiply(v: &[f32], kernel: &[f32], g: &WindowGeometry, count: usize, m: &mut Vec<f32>) {
    let (c, o) = (g.in_c, g.out_c);
    let window = Window {
        rows: 1,
        row_len: c,
        row_stride: 0,
    };
    let starts = padded_starts((0..count).map(|t| t * c));
    let out = m.spare_capacity_mut().as_mut_ptr() as *mut f32;
    for e in 0..POSITIONS {
        // Block of channels c0.. for position e: after the blocks before it, e · c rows in.
        let block = |c0: usize, width: usize| kernel[POSITIONS * c * c0 + e * c * width..].as_ptr();
        // SAFETY: the caller's contract: V_e is count rows of c, each block c rows of `width`,
        // M_e count rows of o.
        unsafe {
            products(
                v[e * count * c..].as_ptr(),
                &starts,
                count,
                &window,
                block,
                out.add(e * count * o),
                o,
                o,
            )
        };
    }
    // SAFETY: every position's product was written above.
    unsafe { m.set_len(POSITIONS * count * o) };
}

/// Writes each tile's outputs Aᵀ M A into the task's output rows (those inside the image), for
/// one slice of output rows per tile row. Aᵀ = [1 1 1 0; 0 1 −1 −1].
///
/// # Safety
/// The CPU must have AVX-512F; `m` must be [`multiply`]'s for these tiles.
#[target_feature(enable = "avx512f")]
unsafe fn transform_outputs(
    m: &[f32],
    g: &WindowGeometry,
    tiles: &Tiles,
    rows: &mut [&mut [MaybeUninit<f32>]],
) {
    let o = g.out_c;
    let count = rows.len() * tiles.across;
    let stride = count * o;
    let row_len = g.out_w * o;
    for (r, out) in rows.iter_mut().enumerate() {
        let out_rows = out.len() / row_len;
        let out = out.as_mut_ptr() as *mut f32;
        for tx in 0..tiles.across {
            let cols = (g.out_w - 2 * tx).min(2);
            let src = m[(r * tiles.across + tx) * o..].as_ptr();
            for c0 in (0..o).step_by(LANES) {
                // SAFETY: the caller's contract: the 16 positions of this tile lie in `m`; only
                // the tile's outputs inside the image are stored, inside `out`.
                unsafe {
                    let mut a = [_mm512_setzero_ps(); POSITIONS];
                    for (e, a) in a.iter_mut().enumerate() {
                        *a = _mm512_loadu_ps(src.add(e * stride + c0));
                    }
                    // Aᵀ M, down each column.
                    let mut s = [[_mm512_setzero_ps(); 4]; 2];
                    for j in 0..4 {
                        let [m0, m1, m2, m3] = [a[j], a[4 + j], a[8 + j], a[12 + j]];
                        s[0][j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
                        s[1][j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
                    }
                    // (Aᵀ M) A, along each row.
                    for (i, [s0, s1, s2, s3]) in s.into_iter().enumerate().take(out_rows) {
                        let y = [
                            _mm512_add_ps(_mm512_add_ps(s0, s1), s2),
                            _mm512_sub_ps(_mm512_sub_ps(s1, s2), s3),
                        ];
                        for (j, value) in y.into_iter().enumerate().take(cols) {
                            let pixel = i * g.out_w + 2 * tx + j;
                            _mm512_storeu_ps(out.add(pixel * o + c0), value);
                        }
                    }
                }
            }
        }
    }
}

/// The sum of N vectors, pairwise.
#[target_feature(enable = "avx512f")]
fn sum<const N: usize>(mut a: [__m512; N]) -> __m512 {
    let mut n = N;
    while n > 1 {
        let half = n / 2;
        for k in 0..half {
            a[k] = _mm512_add_ps(a[k], a[n - 1 - k]);
        }
        n -= half;
    }
    a[0]
}

/// Whether every lane of `check` is 0 (none NaN: no non-finite value reached it).
#[target_feature(enable = "avx512f")]
fn all_zero(check: __m512) -> bool {
    _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(check, _mm512_setzero_ps()) == 0xffff
}

/// A mask of the first `n` lanes (all 16 when n ≥ 16).
fn lanes(n: usize) -> __mmask16 {
    if n >= LANES {
        0xffff
    } else {
        (1 << n) - 1
    }
}
