//! keel-autograd: reverse-mode gradients for keel tensors.
//!
//! Trainable [`Param`]s are the only things tracked. An op records a node only when a trainable
//! parameter flows into one of its inputs, so a frozen backbone run inside a training step keeps
//! no activations for backward, and [`no_grad`] turns recording off entirely. `backward()` on a
//! scalar [`Var`] returns the gradient of every parameter reached and adds it to the parameter's
//! accumulated gradient (until [`Param::zero_grad`]). The backward rules sit together in one
//! module, one per op.
//!
//! ```
//! use keel_autograd::{Param, Var};
//! use keel_tensor::{Device, Tensor};
//! let dev = Device::cpu();
//! let w = Param::new("w", Tensor::from_vec(vec![2.0, -1.0], [2, 1], &dev)?);
//! let x = Var::constant(Tensor::from_vec(vec![3.0, 4.0], [1, 2], &dev)?);
//! let loss = x.matmul(&w.var())?.sum_all()?; // 3·2 + 4·(−1)
//! let grads = loss.backward()?;
//! assert_eq!(grads.get(&w).unwrap().to_vec()?, vec![3.0, 4.0]);
//! # Ok::<(), keel_autograd::Error>(())
//! ```

#![warn(missing_docs)]

mod backward;
mod error;
mod graph;
mod nn;
mod no_grad;
mod ops;
mod param;
pub mod profile;
mod var;

pub use error::{Error, Result};
pub use graph::Gradients;
pub use nn::{one_hot, BatchStats};
pub use no_grad::{grad_enabled, no_grad};
pub use param::Param;
pub use var::Var;
