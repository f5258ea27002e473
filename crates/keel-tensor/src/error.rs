//! The one error type of keel-tensor: every failure names the op and the shapes involved.

use crate::{DType, Shape};

/// Result alias used throughout keel.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in a tensor op, device selection or GPU execution.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Two operands whose shapes do not fit together.
    #[error("{op}: shapes {lhs} and {rhs} do not fit: {detail}")]
    ShapeMismatch {
        /// The op that was called.
        op: &'static str,
        /// Shape of the first operand.
        lhs: Shape,
        /// Shape of the second operand.
        rhs: Shape,
        /// What was expected.
        detail: String,
    },
    /// An argument that is out of range for the op (axis, stride, padding, zero-sized dimension…).
    #[error("{op}: {msg}")]
    InvalidArgument {
        /// The op that was called.
        op: &'static str,
        /// What is wrong, with the values involved.
        msg: String,
    },
    /// Operands that live on different devices.
    #[error(
        "{op}: operands are on different devices ({lhs} and {rhs}); move one with `to_device`"
    )]
    DeviceMismatch {
        /// The op that was called.
        op: &'static str,
        /// Device of the first operand.
        lhs: String,
        /// Device of the other operand.
        rhs: String,
    },
    /// An operand of the wrong element type.
    #[error("{op}: expected a {expected} tensor, got {got}")]
    DTypeMismatch {
        /// The op that was called.
        op: &'static str,
        /// The dtype the op needs.
        expected: DType,
        /// The dtype it was given.
        got: DType,
    },
    /// A wgpu device was asked for and none could be opened.
    #[error("no wgpu adapter: {0}")]
    NoAdapter(String),
    /// `KEEL_DEVICE` (or a `--device` flag) named no known device.
    #[error("unknown device {0:?}: expected one of auto, wgpu, cpu")]
    UnknownDevice(String),
    /// A buffer larger than the device allows, with the sizes involved.
    #[error(
        "{op}: {what} needs {bytes} bytes, more than this device's {limit_name} of {limit} bytes"
    )]
    TooLarge {
        /// The op that was called.
        op: &'static str,
        /// Which tensor or buffer.
        what: String,
        /// Bytes needed.
        bytes: u64,
        /// The device limit.
        limit: u64,
        /// The name of the limit (as wgpu names it).
        limit_name: &'static str,
    },
    /// Work whose memory estimate is over what the process can still allocate.
    #[error("{work} needs about {estimate}, more than the {available} of memory available (set KEEL_MEMORY_LIMIT, in MiB, to change the limit)")]
    OutOfMemory {
        /// What was about to run.
        work: String,
        /// The estimate, with its parts.
        estimate: String,
        /// The memory available.
        available: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An error reported by wgpu (validation, out of memory, device lost), caught instead of aborting.
    #[error("wgpu: {0}")]
    Gpu(String),
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub(crate) fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            msg: msg.into(),
        }
    }

    /// Shorthand for [`Error::ShapeMismatch`].
    pub(crate) fn shapes(
        op: &'static str,
        lhs: &Shape,
        rhs: &Shape,
        detail: impl Into<String>,
    ) -> Self {
        Error::ShapeMismatch {
            op,
            lhs: lhs.clone(),
            rhs: rhs.clone(),
            detail: detail.into(),
        }
    }
}
