//! Batched matrix products through the `gemm` crate (strides express the transposes for free).

use crate::op::MatmulDims;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Parallelism for one product of this many multiply-adds.
pub(super) fn parallelism(flops: usize) -> gemm::Parallelism {
    if flops < super::PARALLEL_THRESHOLD * 8 {
        gemm::Parallelism::None
    } else {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    }
}

/// Where a product goes.
pub(super) enum Dst<'a> {
    /// Overwrites a fresh, possibly uninitialised output.
    Fresh(&'a mut [MaybeUninit<f32>]),
    /// Overwrites an initialised buffer.
    Overwrite(&'a mut [f32]),
    /// Adds the product to an initialised buffer.
    Accumulate(&'a mut [f32]),
}

/// One product `out (m×n, row stride ldo) = op(A) · op(B)` (or `+=` for [`Dst::Accumulate`])
/// where A and B are given with (row, column) strides.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm_strided(
    m: usize,
    n: usize,
    k: usize,
    out: Dst<'_>,
    ldo: usize,
    a: &[f32],
    a_strides: (usize, usize),
    b: &[f32],
    b_strides: (usize, usize),
    par: gemm::Parallelism,
) {
    let (dst, dst_len, accumulate) = match out {
        Dst::Fresh(o) => (o.as_mut_ptr() as *mut f32, o.len(), false),
        Dst::Overwrite(o) => (o.as_mut_ptr(), o.len(), false),
        Dst::Accumulate(o) => (o.as_mut_ptr(), o.len(), true),
    };
    // The last element each operand touches must be inside its slice.
    debug_assert!(dst_len >= (m - 1) * ldo + n);
    debug_assert!(a.len() > (m - 1) * a_strides.0 + (k - 1) * a_strides.1);
    debug_assert!(b.len() > (k - 1) * b_strides.0 + (n - 1) * b_strides.1);
    let threads = match par {
        gemm::Parallelism::Rayon(t) if n >= t * MIN_SPLIT_COLUMNS => t,
        _ => 1,
    };
    if threads > 1 {
        // Column blocks, one per thread, each a single-threaded product.
        let (dst, a, b) = (dst as usize, a.as_ptr() as usize, b.as_ptr() as usize);
        let cols = n.div_ceil(threads);
        (0..threads).into_par_iter().for_each(|t| {
            let j0 = t * cols;
            let width = cols.min(n - j0);
            let dst = (dst as *mut f32).wrapping_add(j0);
            let b = (b as *const f32).wrapping_add(j0 * b_strides.1);
            // SAFETY: as below; the blocks' columns are disjoint, so no two threads write the
            // same element of `dst`.
            unsafe {
                let a = a as *const f32;
                raw_gemm(
                    m,
                    width,
                    k,
                    dst,
                    ldo,
                    accumulate,
                    a,
                    a_strides,
                    b,
                    b_strides,
                    gemm::Parallelism::None,
                )
            };
        });
        return;
    }
    let (a, b) = (a.as_ptr(), b.as_ptr());
    // SAFETY: the asserts above (upheld by the callers' shape validation) keep every access in
    // bounds; `dst` does not alias `a` or `b` (it comes from a distinct &mut); gemm reads `dst`
    // only when accumulating, and then it is initialised.
    unsafe {
        raw_gemm(
            m, n, k, dst, ldo, accumulate, a, a_strides, b, b_strides, par,
        )
    };
}

/// Columns per thread below which a product is left to the `gemm` crate's own threads (which
/// share the packed panels instead of splitting the columns).
const MIN_SPLIT_COLUMNS: usize = 256;

/// One `gemm` call on raw pointers, as [`gemm_strided`] describes.
///
/// # Safety
/// Every element the product reads or writes must be in bounds, and `dst` must not alias `a`
/// or `b`.
#[allow(clippy::too_many_arguments)]
unsafe fn raw_gemm(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    ldo: usize,
    accumulate: bool,
    a: *const f32,
    a_strides: (usize, usize),
    b: *const f32,
    b_strides: (usize, usize),
    par: gemm::Parallelism,
) {
    // SAFETY: the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            ldo as isize,
            accumulate,
            a,
            a_strides.1 as isize,
            a_strides.0 as isize,
            b,
            b_strides.1 as isize,
            b_strides.0 as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// C[batch, m, n] = op(A) · op(B).
pub(crate) fn matmul(a: &[f32], b: &[f32], d: MatmulDims) -> Vec<f32> {
    let a_strides = if d.trans_a { (1, d.m) } else { (d.k, 1) };
    let b_strides = if d.trans_b { (1, d.k) } else { (d.n, 1) };
    let flops = d.m * d.n * d.k;
    let one = |(i, c): (usize, &mut [MaybeUninit<f32>]), par| {
        let a = &a[i * d.a_batch_stride..];
        let b = &b[i * d.b_batch_stride..];
        let c = Dst::Fresh(c);
        gemm_strided(d.m, d.n, d.k, c, d.n, a, a_strides, b, b_strides, par);
    };
    let write = |out: &mut [MaybeUninit<f32>]| {
        if d.batch > 1 && flops < super::PARALLEL_THRESHOLD * 64 {
            // Many small products: one thread each.
            out.par_chunks_mut(d.m * d.n)
                .enumerate()
                .for_each(|x| one(x, gemm::Parallelism::None));
        } else {
            out.chunks_mut(d.m * d.n)
                .enumerate()
                .for_each(|x| one(x, parallelism(flops)));
        }
    };
    // SAFETY: each batch entry's m×n block is overwritten by its product.
    unsafe { super::uninit_output(d.batch * d.m * d.n, write) }
}
