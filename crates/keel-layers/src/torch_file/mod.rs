//! PyTorch `.pth` / `.pt` state dicts read without Python: the zip format of `torch.save`
//! (PyTorch ≥ 1.6) and the legacy format before it, through a restricted unpickler that
//! understands dicts of tensors (`OrderedDict`, storages, `_rebuild_tensor_v2`,
//! `_rebuild_parameter`) and refuses every other global with an error naming it. Nothing in
//! the file is ever run.

mod pickle;

use crate::weights::{weights_error, FileTensor, FileTensors};
use crate::Result;
use pickle::{element_size, kind, TensorRef, Unpickler, Value};
use safetensors::Dtype;
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// The first pickle of a legacy file: this number as a Python int.
const LEGACY_MAGIC: u128 = 0x1950a86a20f9469cfc6c;

/// Whether `bytes` look like a PyTorch file: a zip archive or a protocol-2 pickle.
pub(crate) fn is_torch_file(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(&[0x80, 0x02])
}

/// The tensors of the state dict in `bytes`, read from `path`.
pub(crate) fn read(path: &Path, bytes: &[u8]) -> Result<FileTensors<'static>> {
    let error = |msg: String| weights_error(path, format!("PyTorch file: {msg}"));
    let (root, storages) = if bytes.starts_with(b"PK") {
        read_zip(bytes).map_err(error)?
    } else {
        read_legacy(bytes).map_err(error)?
    };
    state_dict(root, &storages).map_err(error)
}

/// A storage's element type and bytes.
struct Storage {
    dtype: Dtype,
    bytes: Vec<u8>,
}

type Parsed = (Value, HashMap<String, Storage>);

/// The zip format: `PREFIX/data.pkl` holds the object, `PREFIX/data/KEY` each storage.
fn read_zip(bytes: &[u8]) -> std::result::Result<Parsed, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("not a readable zip archive: {e}"))?;
    let pickle_name = archive
        .file_names()
        .find(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
        .map(str::to_string)
        .ok_or("the zip archive has no data.pkl: not a file written by torch.save")?;
    let prefix = &pickle_name[..pickle_name.len() - "data.pkl".len()];
    let mut entry = |name: &str| -> std::result::Result<Option<Vec<u8>>, String> {
        let mut file = match archive.by_name(name) {
            Ok(f) => f,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(format!("entry {name}: {e}")),
        };
        // Stored entries are never larger than the archive.
        let mut data = Vec::with_capacity(file.size().min(bytes.len() as u64) as usize);
        file.read_to_end(&mut data)
            .map_err(|e| format!("entry {name}: {e}"))?;
        Ok(Some(data))
    };
    if let Some(order) = entry(&format!("{prefix}byteorder"))? {
        if order != b"little" {
            return Err(format!(
                "its tensors are {}-endian; keel reads little-endian files",
                String::from_utf8_lossy(&order)
            ));
        }
    }
    let pickle = entry(&pickle_name)?.expect("listed above");
    let mut unpickler = Unpickler::new(&pickle);
    let root = unpickler.load()?;
    let mut storages = HashMap::new();
    for (key, dtype) in unpickler.storages {
        let data = entry(&format!("{prefix}data/{key}"))?
            .ok_or_else(|| format!("storage {key} has no entry data/{key} in the archive"))?;
        storages.insert(key, Storage { dtype, bytes: data });
    }
    Ok((root, storages))
}

/// The legacy format: pickles of the magic number, the protocol version and the system's
/// sizes, then the object, then the list of storage keys, then each storage as a little-endian
/// u64 element count followed by its elements.
fn read_legacy(bytes: &[u8]) -> std::result::Result<Parsed, String> {
    let mut unpickler = Unpickler::new(bytes);
    match unpickler.load()? {
        Value::Int(n) if n as u128 == LEGACY_MAGIC => {}
        _ => return Err("a pickle, but not a PyTorch file (no PyTorch magic number)".into()),
    }
    unpickler.load()?; // protocol version
    if let Value::Dict(info) = unpickler.load()? {
        let little = info.iter().find_map(|(k, v)| match (k, v) {
            (Value::Str(k), Value::Bool(b)) if k == "little_endian" => Some(*b),
            _ => None,
        });
        if little == Some(false) {
            return Err("its tensors are big-endian; keel reads little-endian files".into());
        }
    }
    let root = unpickler.load()?;
    let Value::List(keys) = unpickler.load()? else {
        return Err("the list of storage keys after the object is missing".into());
    };
    let mut at = unpickler.at;
    let mut storages = HashMap::new();
    for key in keys {
        let Value::Str(key) = key else {
            return Err("a storage key is not a string".into());
        };
        let dtype = *unpickler
            .storages
            .get(&key)
            .ok_or_else(|| format!("storage {key} is listed but no tensor uses it"))?;
        let count = bytes
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .ok_or_else(|| format!("the file ends before storage {key}"))?;
        let len = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(element_size(dtype)))
            .filter(|&len| len <= bytes.len() - at - 8)
            .ok_or_else(|| {
                format!("storage {key} claims {count} elements, more than the file holds")
            })?;
        at += 8;
        storages.insert(
            key,
            Storage {
                dtype,
                bytes: bytes[at..at + len].to_vec(),
            },
        );
        at += len;
    }
    Ok((root, storages))
}

/// The state dict in `root`: a dict of tensors, possibly under `state_dict` or `model`, with
/// nested dicts' names joined by `.`. Values that are not tensors (an epoch count, say) are
/// left out.
fn state_dict(
    root: Value,
    storages: &HashMap<String, Storage>,
) -> std::result::Result<FileTensors<'static>, String> {
    let Value::Dict(mut entries) = root else {
        return Err(format!(
            "the file holds a {}, not a state dict (a dict of tensors); save model.state_dict()",
            kind(&root)
        ));
    };
    let has_tensor = entries.iter().any(|(_, v)| matches!(v, Value::Tensor(_)));
    if !has_tensor {
        let wrapped = entries.iter().position(|(k, v)| {
            matches!((k, v), (Value::Str(k), Value::Dict(_)) if ["state_dict", "model", "model_state_dict"].contains(&k.as_str()))
        });
        if let Some(i) = wrapped {
            let Value::Dict(inner) = entries.swap_remove(i).1 else {
                unreachable!("matched a dict")
            };
            entries = inner;
        }
    }
    let mut out = FileTensors::new();
    collect(&entries, "", storages, &mut out)?;
    if out.is_empty() {
        return Err("the file's dict holds no tensor".into());
    }
    Ok(out)
}

fn collect(
    entries: &[(Value, Value)],
    prefix: &str,
    storages: &HashMap<String, Storage>,
    out: &mut FileTensors<'static>,
) -> std::result::Result<(), String> {
    for (key, value) in entries {
        let name = match key {
            Value::Str(s) => format!("{prefix}{s}"),
            Value::Int(i) => format!("{prefix}{i}"),
            _ => continue,
        };
        match value {
            Value::Tensor(t) => {
                let tensor = materialize(&name, t, storages)?;
                out.insert(name, tensor);
            }
            Value::Dict(inner) => collect(inner, &format!("{name}."), storages, out)?,
            _ => {}
        }
    }
    Ok(())
}

/// The row-major bytes of a strided view of a storage.
fn materialize(
    name: &str,
    t: &TensorRef,
    storages: &HashMap<String, Storage>,
) -> std::result::Result<FileTensor<'static>, String> {
    let storage = storages
        .get(&t.storage)
        .ok_or_else(|| format!("tensor `{name}`: storage {} is missing", t.storage))?;
    let size = element_size(storage.dtype);
    let count = t
        .shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("tensor `{name}` has an impossible size {:?}", t.shape))?;
    let elements = storage.bytes.len() / size;
    // The furthest element the view reaches must be inside the storage.
    let last = t
        .shape
        .iter()
        .zip(&t.strides)
        .map(|(&n, &s)| n.saturating_sub(1).checked_mul(s))
        .try_fold(t.offset, |acc, step| acc.checked_add(step?));
    if count > 0 && last.is_none_or(|l| l >= elements) {
        return Err(format!(
            "tensor `{name}` (shape {:?}, strides {:?}, offset {}) reaches past its storage of {elements} elements",
            t.shape, t.strides, t.offset
        ));
    }
    let contiguous = t
        .shape
        .iter()
        .zip(&t.strides)
        .rev()
        .try_fold(1usize, |expected, (&n, &s)| {
            (n == 1 || s == expected).then(|| expected * n)
        })
        .is_some();
    let data = if contiguous {
        let start = t.offset * size;
        storage.bytes[start..start + count * size].to_vec()
    } else {
        let mut data = Vec::with_capacity(count * size);
        let mut index = vec![0usize; t.shape.len()];
        for _ in 0..count {
            let element = t.offset
                + index
                    .iter()
                    .zip(&t.strides)
                    .map(|(i, s)| i * s)
                    .sum::<usize>();
            data.extend_from_slice(&storage.bytes[element * size..(element + 1) * size]);
            for axis in (0..index.len()).rev() {
                index[axis] += 1;
                if index[axis] < t.shape[axis] {
                    break;
                }
                index[axis] = 0;
            }
        }
        data
    };
    Ok(FileTensor {
        dtype: storage.dtype,
        shape: t.shape.clone(),
        data: Cow::Owned(data),
    })
}
