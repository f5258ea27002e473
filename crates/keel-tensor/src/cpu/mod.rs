//! The native CPU backend: rayon for parallelism, the `gemm` crate (AVX-512/AVX2/NEON, picked at
//! run time) for matrix products and for convolutions after im2col, and direct kernels for
//! depthwise convolutions and, on AVX-512, dense ones (Winograd's F(2×2, 3×3) for 3×3 with stride
//! 1).

mod batch_norm;
mod conv;
mod conv_backward;
mod depthwise;
#[cfg(target_arch = "x86_64")]
mod direct_conv;
mod elementwise;
mod matmul;
mod pool;
mod reduce;
#[cfg(target_arch = "x86_64")]
mod register_tile;
#[cfg(target_arch = "x86_64")]
mod winograd;

pub(crate) use batch_norm::{channel_combine, channel_grad_sums, channel_moments, Through};
pub(crate) use conv::{conv2d, Epilogue};
pub(crate) use conv_backward::{conv2d_backward_input, conv2d_backward_kernel, flipped_kernel};
pub(crate) use elementwise::{binary, channel_affine, copy_strided, unary};
pub(crate) use matmul::matmul;
pub(crate) use pool::{pool2d, pool2d_backward};
pub(crate) use reduce::{argmax, reduce, softmax};

use rayon::prelude::*;
use std::mem::MaybeUninit;

/// An output buffer of `n` elements that the kernel will overwrite completely
/// (NaN-filled when `debug::set_poison_outputs` is on, so a missed element shows).
pub(crate) fn output(n: usize) -> Vec<f32> {
    let value = if crate::debug::poison_outputs() {
        f32::NAN
    } else {
        0.0
    };
    filled(n, value)
}

/// An output of `n` zeros, for kernels that accumulate into it.
pub(crate) fn zeros(n: usize) -> Vec<f32> {
    filled(n, 0.0)
}

/// `n` copies of `value`, written in parallel into a (possibly reused) buffer.
pub(crate) fn filled(n: usize, value: f32) -> Vec<f32> {
    let fill = |_: usize, c: &mut [MaybeUninit<f32>]| c.fill(MaybeUninit::new(value));
    // SAFETY: `fill` writes every element of each chunk.
    unsafe { output_chunks(n, 1 << 14, fill) }
}

/// A new output of `len` elements that `write` fills completely. It is not zeroed first (for a
/// memory-bound kernel that pass costs about as much as the kernel), except with
/// `debug::set_poison_outputs`, which fills it with NaN so tests see an element a kernel missed.
///
/// # Safety
/// `write` must write every element of the buffer it is given.
pub(crate) unsafe fn uninit_output(
    len: usize,
    write: impl FnOnce(&mut [MaybeUninit<f32>]),
) -> Vec<f32> {
    let mut y = crate::cpu_cache::take(len);
    let buffer = &mut y.spare_capacity_mut()[..len];
    if crate::debug::poison_outputs() {
        buffer.par_iter_mut().for_each(|v| {
            v.write(f32::NAN);
        });
    }
    write(buffer);
    // SAFETY: `write` wrote all `len` elements (the caller's contract).
    unsafe { y.set_len(len) };
    y
}

/// [`uninit_output`] written in parallel, `chunk` elements at a time (the last chunk may be
/// shorter), by `fill(chunk_index, chunk)`.
///
/// # Safety
/// `fill` must write every element of each chunk it is given.
pub(crate) unsafe fn output_chunks(
    len: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let write = |y: &mut [MaybeUninit<f32>]| {
        y.par_chunks_mut(chunk.max(1))
            .enumerate()
            .for_each(|(i, c)| fill(i, c))
    };
    // SAFETY: the chunks cover the whole buffer and `fill` writes each (the caller's contract).
    unsafe { uninit_output(len, write) }
}

/// a · b + c, fused into one FMA instruction (one rounding) in a kernel built for a CPU that has
/// it (`FMA`), as a multiply and an add elsewhere (where `mul_add` would call a slow software
/// fma).
#[inline(always)]
pub(crate) fn multiply_add<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Work below this many multiply-adds runs on one thread: forking costs more than it saves.
pub(crate) const PARALLEL_THRESHOLD: usize = 1 << 15;
