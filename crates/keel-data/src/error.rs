//! Errors of reading data; each names the file or folder.

use std::path::PathBuf;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor op failed (uploading a batch).
    #[error(transparent)]
    Tensor(#[from] keel_tensor::Error),
    /// A file or folder could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An image could not be decoded.
    #[error("image {}: {msg}", path.display())]
    Image {
        /// The file.
        path: PathBuf,
        /// Why.
        msg: String,
    },
    /// A data set is malformed or unusable (an empty class folder, no classes, a bad idx file).
    #[error("{}: {msg}", path.display())]
    Data {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
}

impl Error {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    pub(crate) fn data(path: &std::path::Path, msg: impl Into<String>) -> Self {
        Error::Data {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
