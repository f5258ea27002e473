//! Errors of gradient computation; tensor errors pass through unchanged.

use keel_tensor::Shape;

/// What went wrong in a forward op or in `backward()`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An op of the tensor crate failed (shapes, devices, GPU).
    #[error(transparent)]
    Tensor(#[from] keel_tensor::Error),
    /// `backward()` on a loss that is not a scalar.
    #[error("backward: the loss has shape {shape}, not a scalar; reduce it first (sum or mean) or pass a seed gradient of that shape to backward_with")]
    NotScalar {
        /// Shape of the loss.
        shape: Shape,
    },
    /// `backward()` on a value that no trainable parameter flows into.
    #[error("backward: the loss does not depend on any trainable parameter (its inputs were constants, frozen parameters, or computed under no_grad)")]
    NoTrainable,
    /// A graph whose saved tensors an earlier `backward()` already released.
    #[error("backward: the graph through `{op}` was already used by an earlier backward() and its saved tensors were freed; run the forward pass again")]
    GraphFreed {
        /// The op whose saved tensors are gone.
        op: &'static str,
    },
    /// A seed gradient or a new parameter value of the wrong shape.
    #[error("{what}: expected shape {expected}, got {got}")]
    Shape {
        /// What was being set.
        what: String,
        /// The shape required.
        expected: Shape,
        /// The shape given.
        got: Shape,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
