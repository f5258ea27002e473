//! Errors of building models, running layers, and reading or writing weights.

use std::path::PathBuf;

/// What went wrong; every variant names the layer, file or tensor involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor op or a gradient computation failed.
    #[error(transparent)]
    Autograd(#[from] keel_autograd::Error),
    /// A layer cannot be built on the shape it receives, or is configured wrongly.
    #[error("layer `{layer}`: {msg}")]
    Layer {
        /// The layer's name.
        layer: String,
        /// What is wrong.
        msg: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A weights file is not valid safetensors, or does not fit the model.
    #[error("weights file {}: {msg}", path.display())]
    Weights {
        /// The file.
        path: PathBuf,
        /// What is wrong (names and shapes).
        msg: String,
    },
}

impl From<keel_tensor::Error> for Error {
    fn from(e: keel_tensor::Error) -> Self {
        Error::Autograd(e.into())
    }
}

impl Error {
    pub(crate) fn layer(layer: &str, msg: impl Into<String>) -> Self {
        Error::Layer {
            layer: layer.to_string(),
            msg: msg.into(),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
