//! The native CPU backend: rayon for parallelism, the `gemm` crate (AVX-512/AVX2/NEON, picked at
//! run time) for matrix products and for convolutions after im2col.

mod conv;
mod conv_backward;
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

/// Work below this many multiply-adds runs on one thread: forking costs more than it saves.
pub(crate) const PARALLEL_THRESHOLD: usize = 1 << 15;
