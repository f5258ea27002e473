//! Element types. keel computes in f32; f16 and bf16 data are converted on the way in, and f16
//! storage is there for frozen weights on adapters that read it.

use std::fmt;

/// The element type of a tensor's storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float: every arithmetic op runs in it.
    F32,
    /// 32-bit signed integer: indices (argmax) and class labels.
    I32,
    /// 16-bit float storage, on wgpu adapters with `SHADER_F16` only: the kernel of a
    /// convolution or the right operand of a matmul, widened to f32 as it is read (f32
    /// accumulation). Made with [`Tensor::to_dtype`](crate::Tensor::to_dtype); no other op takes it.
    F16,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 => 2,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::I32 => "i32",
            DType::F16 => "f16",
        })
    }
}
