//! The op set as methods on [`Tensor`](crate::Tensor), one module per op family. Each op checks
//! its operands (device, dtype, shapes) and returns a `Result` naming the op and the shapes,
//! then runs the same computation on whichever backend holds the data.

mod batch_norm;
mod conv;
mod elementwise;
mod layout;
mod matmul;
mod pool;
mod reduce;
mod softmax;

pub use batch_norm::AffineActivation;
