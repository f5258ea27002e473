//! keel-tensor: tensors, devices and the op set of keel.
//!
//! A [`Tensor`] is a handle to an n-dimensional f32 (or i32) array on a [`Device`]: the native
//! CPU backend or a wgpu adapter (Vulkan, Metal, DX12; lavapipe in CI). Every op has the same
//! semantics on both, runs WGSL compute shaders from `shaders/` on wgpu, and returns a
//! [`Result`] whose error names the op and the shapes. Images are NHWC, kernels HWIO.
//!
//! ```
//! use keel_tensor::{Conv2dOptions, Device, Padding, Tensor};
//! let dev = Device::cpu();
//! let x = Tensor::ones([1, 5, 5, 3], &dev)?;
//! let w = Tensor::ones([3, 3, 3, 8], &dev)?;
//! let y = x.conv2d(&w, &Conv2dOptions::default().padding(Padding::Same))?.relu()?;
//! assert_eq!(y.dims(), &[1, 5, 5, 8]);
//! # Ok::<(), keel_tensor::Error>(())
//! ```

#![warn(missing_docs)]

mod autotune;
mod counters;
mod cpu;
pub mod cpu_cache;
pub mod debug;
mod device;
mod dtype;
mod error;
pub mod files;
mod geometry;
mod gpu;
pub mod memory;
pub mod op;
mod ops;
mod shape;
mod tensor;

pub use counters::DeviceCounters;
pub use device::{Device, GemmKernels};
pub use dtype::DType;
pub use error::{Error, Result};
pub use files::{scratch_file, write_atomic};
pub use geometry::{
    conv2d_output_shape, pool2d_output_shape, Conv2dOptions, Padding, Pool2dOptions,
};
pub use op::{Activation, BinaryOp, PoolOp, ReduceOp, UnaryOp};
pub use ops::AffineActivation;
pub use shape::{broadcast_shapes, Shape, MAX_RANK};
pub use tensor::Tensor;
