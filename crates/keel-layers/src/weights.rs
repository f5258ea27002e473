//! Saving weights as safetensors, and loading them from safetensors or PyTorch `.pth` files:
//! keel's own (Keras layout and names, `block1_conv1/kernel`), and PyTorch checkpoints
//! (torchvision/timm names and layouts, `features.0.0.weight`), converted on load. f32, f64,
//! f16 and bf16 tensors load; saving is atomic.

use crate::layer::{Layer, Role, Weight};
use crate::{Error, Result};
use keel_tensor::{Device, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// One tensor of a weights file: element type, shape and little-endian bytes, row-major.
pub(crate) struct FileTensor<'a> {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Cow<'a, [u8]>,
}

/// The tensors of a weights file by name, whatever its format.
pub(crate) type FileTensors<'a> = BTreeMap<String, FileTensor<'a>>;

/// The tensors of a safetensors file (borrowing its bytes).
pub(crate) fn safetensors_tensors<'a>(file: &SafeTensors<'a>) -> FileTensors<'a> {
    file.iter()
        .map(|(name, view)| {
            let tensor = FileTensor {
                dtype: view.dtype(),
                shape: view.shape().to_vec(),
                data: Cow::Borrowed(view.data()),
            };
            (name.to_string(), tensor)
        })
        .collect()
}

/// Which naming and layout a weights file uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Layout {
    /// Decide from the keys: `/` means keel/Keras, `.` means PyTorch.
    #[default]
    Auto,
    /// keel's and Keras' layout: `layer/kernel`, HWIO kernels, Dense [in, out].
    Keras,
    /// PyTorch's: `layer.weight`, OIHW kernels, Linear [out, in], Flatten in NCHW order.
    Torch,
}

/// How to load.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadOptions {
    /// The file's layout.
    pub layout: Layout,
    /// Fail on any model weight missing from the file or any file tensor the model lacks
    /// (PyTorch's `num_batches_tracked` counters are always ignored).
    pub strict: bool,
    /// Translates the file's tensor names to the model's (e.g.
    /// [`mobilenet_v2_timm_key`](crate::backbones::mobilenet_v2_timm_key) for timm checkpoints);
    /// `None` leaves a tensor unmatched.
    pub rename: Option<fn(&str) -> Option<String>>,
}

/// What a load did.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Weights set from the file.
    pub loaded: usize,
    /// Tensors of the file that the model has no weight for.
    pub ignored: Vec<String>,
    /// Model weights the file has no tensor for (kept at their current values).
    pub missing: Vec<String>,
}

pub(crate) fn weights_error(path: &Path, msg: impl Into<String>) -> Error {
    Error::Weights {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// Writes every weight of `model` (moving statistics included) in keel's layout, as f32.
/// The file replaces an existing one atomically ([`write_atomic`](crate::write_atomic)).
pub fn save_weights(model: &dyn Layer, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let named = model
        .weights()
        .iter()
        .map(|w| (w.keras_key(), w.param.value()))
        .collect();
    let bytes = serialize(path, named, None)?;
    Ok(keel_tensor::write_atomic(path, &bytes)?)
}

/// The safetensors bytes of `tensors` (as f32) with `metadata`.
pub(crate) fn serialize(
    path: &Path,
    tensors: Vec<(String, Tensor)>,
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>> {
    let mut raw: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for (name, value) in tensors {
        let bytes = value
            .to_vec()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        if raw
            .insert(name.clone(), (value.dims().to_vec(), bytes))
            .is_some()
        {
            return Err(weights_error(
                path,
                format!("two tensors are named `{name}`"),
            ));
        }
    }
    let views = raw
        .iter()
        .map(|(k, (shape, data))| {
            TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|v| (k.clone(), v))
                .map_err(|e| weights_error(path, format!("tensor `{k}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, metadata).map_err(|e| weights_error(path, e.to_string()))
}

/// Loads the weights of `model` from a safetensors file, a PyTorch `.pth` / `.pt` file (a
/// state dict saved by `torch.save`, zip or legacy format) or a Keras `.h5` / `.weights.h5`
/// file, told apart by their first bytes. A `.pth` file is read by a restricted unpickler that
/// never runs anything from the file; a Keras file's weights are matched by layer name.
pub fn load_weights(
    model: &dyn Layer,
    path: impl AsRef<Path>,
    options: LoadOptions,
) -> Result<LoadReport> {
    let path = path.as_ref();
    match open(path)? {
        Opened::Hdf5(file) => {
            let named = crate::keras_file::keras_names(path, model, file, options.rename)?;
            let keras = LoadOptions {
                layout: Layout::Keras,
                rename: None,
                ..options
            };
            load_from(model, &named, path, keras)
        }
        Opened::Bytes(bytes) => load_from(model, &file_tensors(path, &bytes)?, path, options),
    }
}

/// Every floating-point tensor (f32, f64, f16, bf16) of a safetensors, PyTorch or HDF5 file,
/// as f32 on `device`, by name (an HDF5 dataset by its path). Integer tensors (PyTorch's
/// `num_batches_tracked`) are left out.
pub fn read_tensors(path: impl AsRef<Path>, device: &Device) -> Result<BTreeMap<String, Tensor>> {
    let path = path.as_ref();
    let convert = |tensors: &FileTensors<'_>| {
        tensors
            .iter()
            .filter(|(_, t)| matches!(t.dtype, Dtype::F32 | Dtype::F64 | Dtype::F16 | Dtype::BF16))
            .map(|(name, t)| Ok((name.clone(), read_tensor(path, name, t, device)?)))
            .collect()
    };
    match open(path)? {
        Opened::Hdf5(file) => convert(&file),
        Opened::Bytes(bytes) => convert(&file_tensors(path, &bytes)?),
    }
}

/// A weights file as read: an HDF5 file's datasets (its reader works from the path), or the
/// bytes of a safetensors or PyTorch file.
enum Opened {
    Hdf5(FileTensors<'static>),
    Bytes(Vec<u8>),
}

/// Reads the weights file at `path`, told apart by its first bytes.
fn open(path: &Path) -> Result<Opened> {
    use std::io::Read;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut head = Vec::with_capacity(8);
    std::fs::File::open(path)
        .and_then(|f| f.take(8).read_to_end(&mut head))
        .map_err(io)?;
    if crate::keras_file::is_hdf5(&head) {
        return Ok(Opened::Hdf5(crate::keras_file::read(path)?));
    }
    Ok(Opened::Bytes(std::fs::read(path).map_err(io)?))
}

/// The tensors of a safetensors or PyTorch file, told apart by their first bytes.
fn file_tensors<'a>(path: &Path, bytes: &'a [u8]) -> Result<FileTensors<'a>> {
    if crate::torch_file::is_torch_file(bytes) {
        crate::torch_file::read(path, bytes)
    } else {
        Ok(safetensors_tensors(&parse(path, bytes)?))
    }
}

/// `bytes` as a safetensors file, or an error naming `path` (and the tensor at fault, where one
/// is).
pub(crate) fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes).map_err(|e| {
        let why = header_fault(bytes).unwrap_or_else(|| e.to_string());
        weights_error(path, format!("not a valid safetensors file: {why}"))
    })
}

/// The first tensor whose header entry does not fit the file: data past the end, or a shape
/// that does not match its bytes. `None` when the header cannot be read or every entry fits.
fn header_fault(bytes: &[u8]) -> Option<String> {
    let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let end = usize::try_from(len).ok()?.checked_add(8)?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(bytes.get(8..end)?).ok()?;
    let data = (bytes.len() - end) as u64;
    for (name, entry) in header.iter().filter(|(n, _)| *n != "__metadata__") {
        let dtype = entry.get("dtype").and_then(|d| d.as_str()).unwrap_or("?");
        let shape: Vec<u64> = entry
            .get("shape")?
            .as_array()?
            .iter()
            .map(|d| d.as_u64())
            .collect::<Option<_>>()?;
        let offsets = entry.get("data_offsets")?.as_array()?;
        let (begin, stop) = (offsets.first()?.as_u64()?, offsets.get(1)?.as_u64()?);
        if stop > data || begin > stop {
            return Some(format!(
                "tensor `{name}` lies at bytes {begin}..{stop} of a data section of {data} \
                 bytes (the file is truncated, or its offsets are wrong)"
            ));
        }
        let element = match dtype {
            "F64" | "I64" | "U64" => 8,
            "F32" | "I32" | "U32" => 4,
            "F16" | "BF16" | "I16" | "U16" => 2,
            _ => 1,
        };
        let needed = shape
            .iter()
            .try_fold(element, |n: u64, &d| n.checked_mul(d));
        if needed != Some(stop - begin) {
            return Some(format!(
                "tensor `{name}` is {dtype} {shape:?}, which takes {} bytes, but its offsets \
                 hold {}",
                needed.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string()),
                stop - begin
            ));
        }
    }
    None
}

/// Loads the weights of `model` from the parsed safetensors `file` read from `path`.
pub(crate) fn load_from(
    model: &dyn Layer,
    file: &FileTensors<'_>,
    path: &Path,
    options: LoadOptions,
) -> Result<LoadReport> {
    let names: Vec<String> = file.keys().cloned().collect();
    let layout = match options.layout {
        Layout::Auto if names.iter().any(|n| n.contains('/')) => Layout::Keras,
        Layout::Auto => Layout::Torch,
        l => l,
    };
    let weights = model.weights();
    let key = |w: &Weight| {
        if layout == Layout::Torch {
            w.torch_key()
        } else {
            w.keras_key()
        }
    };
    let wanted: HashSet<String> = weights.iter().map(key).collect();
    let model_name = |n: &String| match options.rename {
        Some(rename) => rename(n),
        None => Some(n.clone()),
    };
    // File tensor name by model weight name.
    let file_name_of: HashMap<String, String> = names
        .iter()
        .filter_map(|n| model_name(n).map(|m| (m, n.clone())))
        .collect();
    let mut report = LoadReport {
        ignored: names
            .iter()
            .filter(|n| !model_name(n).is_some_and(|m| wanted.contains(&m)))
            .cloned()
            .collect(),
        ..LoadReport::default()
    };
    report.ignored.sort();
    report.missing = weights
        .iter()
        .map(key)
        .filter(|k| !file_name_of.contains_key(k))
        .collect();
    let unexpected: Vec<&String> = report
        .ignored
        .iter()
        .filter(|n| !n.ends_with("num_batches_tracked"))
        .collect();
    if options.strict && (!report.missing.is_empty() || !unexpected.is_empty()) {
        return Err(weights_error(
            path,
            format!(
                "does not match the model `{}` (strict): missing {}; unexpected {}",
                model.name(),
                summarize(&report.missing),
                summarize(&unexpected)
            ),
        ));
    }
    // Read and check everything before changing any weight.
    let mut values = Vec::new();
    for w in &weights {
        let Some(k) = file_name_of.get(&key(w)) else {
            continue;
        };
        let Some(view) = file.get(k) else { continue };
        let current = w.param.value();
        let t = read_tensor(path, k, view, current.device())?;
        let t = if layout == Layout::Torch {
            from_torch(path, k, w, t)?
        } else {
            t
        };
        if t.shape() != current.shape() {
            return Err(weights_error(
                path,
                shape_mismatch(k, &view.shape, w, current.dims(), layout),
            ));
        }
        values.push((w.param.clone(), t));
    }
    for (p, t) in values {
        p.set_value(t)?;
        report.loaded += 1;
    }
    Ok(report)
}

/// Why file tensor `key` of shape `got` does not fit weight `w` (of keel shape `keel`): both
/// layouts spelled out, and a transposed PyTorch Linear weight recognised as such.
fn shape_mismatch(key: &str, got: &[usize], w: &Weight, keel: &[usize], layout: Layout) -> String {
    let name = w.param.name();
    if layout != Layout::Torch {
        return format!("tensor `{key}` has shape {got:?}; the model's `{name}` is {keel:?}");
    }
    let torch = torch_shape(w.role, keel);
    let mut text = format!(
        "tensor `{key}` has shape {got:?}; the model's `{name}` is {torch:?} in PyTorch's layout \
         ({keel:?} in keel's)"
    );
    if w.role == Role::DenseKernel && got.iter().rev().eq(torch.iter()) {
        text += &format!(
            ": the tensor is transposed (PyTorch stores a Linear weight as [out, in], here \
             {torch:?})"
        );
    }
    text
}

/// The shape PyTorch gives a weight of `role` whose keel shape is `keel`.
fn torch_shape(role: Role, keel: &[usize]) -> Vec<usize> {
    match (role, keel) {
        (Role::ConvKernel, &[h, w, i, o]) => vec![o, i, h, w],
        (Role::DepthwiseKernel, &[h, w, c, m]) => vec![c * m, 1, h, w],
        (Role::DenseKernel, &[i, o]) => vec![o, i],
        (Role::LayerScale, &[c]) => vec![c, 1, 1],
        _ => keel.to_vec(),
    }
}

/// A list of names cut to its first five, with a count: `a, b, c, d, e and 12 more`, or `none`.
pub(crate) fn summarize<S: AsRef<str>>(names: &[S]) -> String {
    const SHOWN: usize = 5;
    if names.is_empty() {
        return "none".into();
    }
    let mut text = names
        .iter()
        .take(SHOWN)
        .map(|n| format!("`{}`", n.as_ref()))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text += &format!(" and {} more", names.len() - SHOWN);
    }
    text
}

/// A file tensor as f32 on `device`; NaN or ±∞ in it is an error naming the tensor.
pub(crate) fn read_tensor(
    path: &Path,
    key: &str,
    view: &FileTensor<'_>,
    device: &Device,
) -> Result<Tensor> {
    let data = &view.data[..];
    let values: Vec<f32> = match view.dtype {
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => {
            return Err(weights_error(
                path,
                format!("tensor `{key}` is {other:?}; keel reads F32, F64, F16 and BF16"),
            ))
        }
    };
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        let bad = values.iter().filter(|v| !v.is_finite()).count();
        return Err(weights_error(
            path,
            format!(
                "tensor `{key}` holds {} at element {i} ({bad} of its {} values are not finite)",
                values[i],
                values.len()
            ),
        ));
    }
    Tensor::from_vec(values, view.shape.clone(), device)
        .map_err(|e| weights_error(path, format!("tensor `{key}`: {e}")))
}

/// Converts a PyTorch tensor to keel's layout for weight `w`.
fn from_torch(path: &Path, key: &str, w: &Weight, t: Tensor) -> Result<Tensor> {
    // A 1×1 convolution on a pooled map is a Linear layer (timm's `conv_head`).
    let t = match (w.role, t.dims()) {
        (Role::DenseKernel, &[out, inp, 1, 1]) => t.reshape([out, inp])?,
        _ => t,
    };
    let rank_error = |want: usize| {
        weights_error(
            path,
            format!(
                "tensor `{key}` has rank {}, a PyTorch {:?} has rank {want}",
                t.rank(),
                w.role
            ),
        )
    };
    Ok(match w.role {
        // OIHW → HWIO.
        Role::ConvKernel => {
            if t.rank() != 4 {
                return Err(rank_error(4));
            }
            t.permute(&[2, 3, 1, 0])?
        }
        // [C·m, 1, kh, kw] → [kh, kw, 1, C·m] → [kh, kw, C, m] (keel's channel-major order).
        Role::DepthwiseKernel => {
            if t.rank() != 4 {
                return Err(rank_error(4));
            }
            let target = w.param.value().dims().to_vec();
            let hwio = t.permute(&[2, 3, 1, 0])?;
            if hwio.elem_count() != target.iter().product::<usize>() {
                return Ok(hwio); // the shape check reports it
            }
            hwio.reshape(target)?
        }
        // [out, in] → [in, out]; after a Flatten, PyTorch's inputs are in (c, h, w) order.
        Role::DenseKernel => {
            if t.rank() != 2 {
                return Err(rank_error(2));
            }
            let out = t.dims()[0];
            match w.flattened_from {
                Some([h, wd, c]) if t.dims()[1] == h * wd * c => t
                    .reshape([out, c, h, wd])?
                    .permute(&[2, 3, 1, 0])?
                    .reshape([h * wd * c, out])?,
                _ => t.transpose(0, 1)?,
            }
        }
        // [C, 1, 1] → [C].
        Role::LayerScale if t.rank() == 3 && t.dims()[1..] == [1, 1] => t.reshape([t.dims()[0]])?,
        _ => t,
    })
}
