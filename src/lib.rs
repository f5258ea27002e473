//! keel: a deep-learning framework for images on any GPU (wgpu) and on the CPU.
//!
//! This crate re-exports the workspace's crates; see [`tensor`] for tensors, devices and ops,
//! [`autograd`] for parameters and gradients, [`layers`] for layers, backbones, heads and weights, [`data`] for images and data sets,
//! [`train`] for optimizers, losses, metrics and `fit`.

pub use keel_autograd as autograd;
pub use keel_autograd::{no_grad, Param, Var};
pub use keel_data as data;
pub use keel_layers as layers;
pub use keel_tensor as tensor;
pub use keel_tensor::{
    Conv2dOptions, DType, Device, Error, GemmKernels, Padding, Pool2dOptions, Result, Shape, Tensor,
};
pub use keel_train as train;
