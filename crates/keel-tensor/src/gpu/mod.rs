//! The wgpu backend: one context per adapter, a buffer pool, cached pipelines, and one launch
//! function per kernel family of `shaders/`.

pub(crate) mod backward;
mod buffer;
mod context;
mod kernels;
pub(crate) mod ops;

pub(crate) use buffer::GpuBuffer;
pub(crate) use context::GpuContext;
pub(crate) use kernels::Operand;
