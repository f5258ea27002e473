//! The idx format of MNIST and Fashion-MNIST (plain or gzip); [`Images::from_idx`](crate::Images::from_idx)
//! reads those data sets as images.

use crate::{Error, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where Debian's `dataset-fashion-mnist` package puts the files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Fashion-MNIST's class names, by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Reads a whole file, gunzipping it when it starts with the gzip magic bytes.
fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::data(path, format!("bad gzip data: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// An idx file of u8 values: its dimensions and data.
pub fn read_idx(path: impl AsRef<Path>) -> Result<(Vec<usize>, Vec<u8>)> {
    let path = path.as_ref();
    let bytes = read_maybe_gzip(path)?;
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(Error::data(path, "not an idx file (bad magic number)"));
    }
    if bytes[2] != 0x08 {
        return Err(Error::data(
            path,
            format!(
                "idx element type 0x{:02x}; only unsigned bytes (0x08) are supported",
                bytes[2]
            ),
        ));
    }
    let rank = bytes[3] as usize;
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(Error::data(path, "truncated idx header"));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| {
            u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize
        })
        .collect();
    let n = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if n.and_then(|n| n.checked_add(header)) != Some(bytes.len()) {
        return Err(Error::data(
            path,
            format!(
                "idx dimensions {dims:?} need {} bytes of data, the file has {}",
                n.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string()),
                bytes.len() - header
            ),
        ));
    }
    Ok((dims, bytes[header..].to_vec()))
}

/// Which half of an MNIST-style data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// `train-*` files.
    Train,
    /// `t10k-*` files.
    Test,
}

/// Raw MNIST-style images and labels.
pub struct Mnist {
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Grey values, image after image.
    pub images: Vec<u8>,
    /// One label per image.
    pub labels: Vec<u8>,
}

/// The images and labels of an MNIST-style folder (`{train,t10k}-{images-idx3,labels-idx1}-ubyte`,
/// optionally `.gz`), at most `limit` of them.
pub fn read_mnist(dir: impl AsRef<Path>, split: Split, limit: Option<usize>) -> Result<Mnist> {
    let dir = dir.as_ref();
    let stem = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let find = |kind: &str| -> Result<PathBuf> {
        let base = dir.join(format!("{stem}-{kind}-ubyte"));
        let gz = dir.join(format!("{stem}-{kind}-ubyte.gz"));
        if base.exists() {
            Ok(base)
        } else if gz.exists() {
            Ok(gz)
        } else {
            Err(Error::data(
                dir,
                format!("neither {} nor {} exists", base.display(), gz.display()),
            ))
        }
    };
    let (idims, images) = read_idx(find("images-idx3")?)?;
    let label_path = find("labels-idx1")?;
    let (ldims, labels) = read_idx(&label_path)?;
    let [n, h, w] = idims[..] else {
        return Err(Error::data(
            dir,
            format!("image file has dimensions {idims:?}, expected [n, h, w]"),
        ));
    };
    if ldims != [n] {
        return Err(Error::data(
            &label_path,
            format!("{ldims:?} labels for {n} images"),
        ));
    }
    let n = limit.map_or(n, |l| l.min(n));
    Ok(Mnist {
        height: h,
        width: w,
        images: images[..n * h * w].to_vec(),
        labels: labels[..n].to_vec(),
    })
}
