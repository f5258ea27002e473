//! The native CPU backend: rayon for parallelism, the `gemm` crate (AVX-512/AVX2/NEON, picked at
//! run time) for matrix products and for convolutions after im2col.

mod conv;
mod conv_backward;
mod depthwise;
mod elementwise;
mod matmul;
mod pool;
mod reduce;

pub(crate) use conv::conv2d;
pub(crate) use conv_backward::{conv2d_backward_input, conv2d_backward_kernel};
pub(crate) use elementwise::{binary, channel_affine, copy_strided, unary};
pub(crate) use matmul::matmul;
pub(crate) use pool::{pool2d, pool2d_backward};
pub(crate) use reduce::{argmax, reduce, softmax};

use rayon::prelude::*;
use std::mem::MaybeUninit;

/// An output buffer of `n` elements that the kernel will overwrite completely
/// (NaN-filled when `debug::set_poison_outputs` is on, so a missed element shows).
pub(crate) fn output(n: usize) -> Vec<f32> {
    vec![
        if crate::debug::poison_outputs() {
            f32::NAN
        } else {
            0.0
        };
        n
    ]
}

/// An output of `rows × row_len` elements built in parallel, row by row, by
/// `fill(row_index, row)`. Rows are not zeroed first (a pass that costs as much as a memory-bound
/// kernel), except with `debug::set_poison_outputs`, which fills them with NaN so tests see an
/// element a kernel missed.
///
/// # Safety
/// `fill` must write every element of each row it is given.
pub(crate) unsafe fn output_rows(
    rows: usize,
    row_len: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let len = rows * row_len;
    let poison = crate::debug::poison_outputs();
    let mut y = Vec::with_capacity(len);
    y.spare_capacity_mut()[..len]
        .par_chunks_mut(row_len.max(1))
        .enumerate()
        .for_each(|(r, row)| {
            if poison {
                row.iter_mut().for_each(|v| {
                    v.write(f32::NAN);
                });
            }
            fill(r, row);
        });
    // SAFETY: the chunks cover 0..len, and `fill` wrote every element of each (the caller's
    // contract).
    unsafe { y.set_len(len) };
    y
}

/// Work below this many multiply-adds runs on one thread: forking costs more than it saves.
pub(crate) const PARALLEL_THRESHOLD: usize = 1 << 15;
