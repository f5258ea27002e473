//! Errors of training: the layers', the data's, and mismatches between them.

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model, layer or weights file problem.
    #[error(transparent)]
    Layers(#[from] keel_layers::Error),
    /// A data problem.
    #[error(transparent)]
    Data(#[from] keel_data::Error),
    /// The data does not fit the model or the configuration.
    #[error("{0}")]
    Mismatch(String),
}

impl From<keel_autograd::Error> for Error {
    fn from(e: keel_autograd::Error) -> Self {
        Error::Layers(e.into())
    }
}

impl From<keel_tensor::Error> for Error {
    fn from(e: keel_tensor::Error) -> Self {
        Error::Layers(e.into())
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
