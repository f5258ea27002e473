//! The restricted unpickler of `.pth` files: the pickle opcodes `torch.save` writes, the
//! globals a state dict needs and nothing else, with nesting and memo copies bounded.

use safetensors::Dtype;
use std::collections::HashMap;

/// A tensor as `_rebuild_tensor_v2` describes it: a strided view of a storage.
#[derive(Clone, Debug)]
pub(super) struct TensorRef {
    pub storage: String,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
}

/// What the unpickler builds. `Global` is only ever one of the names [`allowed_global`] accepts.
#[derive(Clone, Debug)]
pub(super) enum Value {
    None,
    Bool(bool),
    Int(i128),
    Float,
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(&'static str),
    /// A persistent id resolved to a storage: its key.
    Storage(String),
    Tensor(TensorRef),
}

/// The globals a state dict needs; the name as the unpickler keeps it, or `None`.
fn allowed_global(module: &str, name: &str) -> Option<&'static str> {
    Some(match (module, name) {
        ("collections", "OrderedDict") => "OrderedDict",
        ("torch._utils", "_rebuild_tensor_v2") => "_rebuild_tensor_v2",
        ("torch._utils", "_rebuild_parameter") => "_rebuild_parameter",
        ("torch._utils", "_rebuild_parameter_with_state") => "_rebuild_parameter",
        ("torch", storage) => storage_name(storage)?,
        _ => return None,
    })
}

/// The storage classes and their element types.
const STORAGES: [(&str, Dtype); 10] = [
    ("FloatStorage", Dtype::F32),
    ("DoubleStorage", Dtype::F64),
    ("HalfStorage", Dtype::F16),
    ("BFloat16Storage", Dtype::BF16),
    ("LongStorage", Dtype::I64),
    ("IntStorage", Dtype::I32),
    ("ShortStorage", Dtype::I16),
    ("CharStorage", Dtype::I8),
    ("ByteStorage", Dtype::U8),
    ("BoolStorage", Dtype::BOOL),
];

fn storage_name(name: &str) -> Option<&'static str> {
    STORAGES.iter().find(|(n, _)| *n == name).map(|(n, _)| *n)
}

fn storage_dtype(name: &str) -> Option<Dtype> {
    STORAGES.iter().find(|(n, _)| *n == name).map(|(_, d)| *d)
}

/// Bytes per element of a storage type.
pub(super) fn element_size(dtype: Dtype) -> usize {
    match dtype {
        Dtype::F64 | Dtype::I64 => 8,
        Dtype::F32 | Dtype::I32 => 4,
        Dtype::F16 | Dtype::BF16 | Dtype::I16 => 2,
        _ => 1,
    }
}

pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float => "float",
        Value::Str(_) => "string",
        Value::Tuple(_) => "tuple",
        Value::List(_) => "list",
        Value::Dict(_) => "dict",
        Value::Global(_) => "class",
        Value::Storage(_) => "storage",
        Value::Tensor(_) => "tensor",
    }
}

/// Containers nest at most this deep (a state dict needs 4: dict, tensor, tuple, int).
const MAX_DEPTH: u32 = 64;

/// A value on the unpickler's stack or in its memo, with how deep its containers nest.
#[derive(Clone)]
struct Item {
    value: Value,
    depth: u32,
}

/// A pickle machine for the opcodes `torch.save` writes (protocol 2, and 4's framing and
/// memo opcodes), with globals restricted to [`allowed_global`]. Nesting is limited to
/// [`MAX_DEPTH`] and the values copied through the memo to a budget proportional to the
/// pickle's size, so that no file can exhaust the stack or the memory.
pub(super) struct Unpickler<'a> {
    bytes: &'a [u8],
    /// The cursor: where the next pickle starts once one is loaded.
    pub at: usize,
    stack: Vec<Item>,
    /// Stack depths at each MARK.
    marks: Vec<usize>,
    memo: HashMap<u32, Item>,
    /// Values the memo may still copy.
    budget: usize,
    /// Storages the persistent ids named: key → element type.
    pub storages: HashMap<String, Dtype>,
}

type Step<T> = std::result::Result<T, String>;

/// The number of values in `v`, counted up to `limit`.
fn size(v: &Value, limit: usize) -> usize {
    let children: &[Value] = match v {
        Value::Tuple(items) | Value::List(items) => items,
        Value::Dict(pairs) => {
            let mut n = 1;
            for (k, v) in pairs {
                if n > limit {
                    break;
                }
                n += size(k, limit - n) + size(v, limit.saturating_sub(n));
            }
            return n;
        }
        _ => return 1,
    };
    let mut n = 1;
    for c in children {
        if n > limit {
            break;
        }
        n += size(c, limit - n);
    }
    n
}

impl<'a> Unpickler<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Unpickler {
            bytes,
            at: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            budget: 16 * bytes.len() + (1 << 16),
            storages: HashMap::new(),
        }
    }

    fn take(&mut self, n: usize) -> Step<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| format!("the pickle ends early (byte {})", self.bytes.len()))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Step<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Step<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn line(&mut self) -> Step<String> {
        let rest = &self.bytes[self.at..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("the pickle ends inside a name")?;
        self.at += end + 1;
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    }

    fn text(&mut self, n: usize) -> Step<Value> {
        let raw = self.take(n)?;
        Ok(Value::Str(String::from_utf8_lossy(raw).into_owned()))
    }

    /// Pushes a value that holds no container.
    fn push(&mut self, value: Value) {
        self.stack.push(Item { value, depth: 0 });
    }

    /// Pushes a container of `items`.
    fn push_container(&mut self, items: &[Item], make: impl FnOnce() -> Value) -> Step<()> {
        let depth = 1 + items.iter().map(|i| i.depth).max().unwrap_or(0);
        if depth > MAX_DEPTH {
            return Err(format!(
                "containers nested {depth} deep; a state dict needs a few"
            ));
        }
        self.stack.push(Item {
            value: make(),
            depth,
        });
        Ok(())
    }

    fn pop(&mut self) -> Step<Item> {
        self.stack
            .pop()
            .ok_or_else(|| "the pickle pops an empty stack".into())
    }

    /// Adds `items` to the container on top of the stack with `add`.
    fn extend_top(
        &mut self,
        items: Vec<Item>,
        what: &str,
        add: impl FnOnce(&mut Value, Vec<Value>) -> bool,
    ) -> Step<()> {
        let deepest = items.iter().map(|i| i.depth).max().unwrap_or(0);
        let top = self
            .stack
            .last_mut()
            .ok_or_else(|| format!("{what} on an empty stack"))?;
        top.depth = top.depth.max(deepest + 1);
        if top.depth > MAX_DEPTH {
            return Err(format!(
                "containers nested {} deep; a state dict needs a few",
                top.depth
            ));
        }
        if !add(&mut top.value, items.into_iter().map(|i| i.value).collect()) {
            return Err(format!("{what} on a {}", kind(&top.value)));
        }
        Ok(())
    }

    /// The values pushed since the last MARK.
    fn pop_mark(&mut self) -> Step<Vec<Item>> {
        let depth = self.marks.pop().ok_or("the pickle has no MARK to pop")?;
        if depth > self.stack.len() {
            return Err("the pickle's MARK is deeper than its stack".into());
        }
        Ok(self.stack.split_off(depth))
    }

    /// A copy of `item` (on the stack or in the memo), charged to the budget before it is made.
    fn copy(budget: &mut usize, item: &Item) -> Step<Item> {
        let n = size(&item.value, *budget + 1);
        *budget = budget
            .checked_sub(n)
            .ok_or("the pickle copies more values through its memo than it could hold")?;
        Ok(item.clone())
    }

    fn memoize(&mut self, key: u32) -> Step<()> {
        let top = self.stack.last().ok_or("MEMOIZE on an empty stack")?;
        let copy = Self::copy(&mut self.budget, top)?;
        self.memo.insert(key, copy);
        Ok(())
    }

    fn global(&mut self, module: &str, name: &str) -> Step<Value> {
        allowed_global(module, name)
            .map(Value::Global)
            .ok_or_else(|| {
                format!(
                    "it refers to `{module}.{name}`, which a state dict does not need; keel reads \
                 state dicts (dicts of tensors) and never runs code from a file"
                )
            })
    }

    /// Runs the pickle that starts at the cursor up to its STOP and returns its value.
    pub fn load(&mut self) -> Step<Value> {
        self.stack.clear();
        self.marks.clear();
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO
                }
                0x95 => {
                    self.take(8)?; // FRAME
                }
                b'.' => return Ok(self.pop()?.value), // STOP
                b'(' => self.marks.push(self.stack.len()), // MARK
                b'}' => self.push(Value::Dict(Vec::new())),
                b']' => self.push(Value::List(Vec::new())),
                b')' => self.push(Value::Tuple(Vec::new())),
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'J' => {
                    let v = i32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"));
                    self.push(Value::Int(v.into()));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v.into()));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes"));
                    self.push(Value::Int(v.into()));
                }
                0x8a => {
                    // LONG1: a little-endian two's-complement integer of n bytes.
                    let n = self.u8()? as usize;
                    let raw = self.take(n)?;
                    if n > 16 {
                        return Err(format!("an integer of {n} bytes"));
                    }
                    let sign = if raw.last().is_some_and(|b| b & 0x80 != 0) {
                        0xff
                    } else {
                        0
                    };
                    let mut full = [sign; 16];
                    full[..n].copy_from_slice(raw);
                    self.push(Value::Int(i128::from_le_bytes(full)));
                }
                b'G' => {
                    self.take(8)?; // BINFLOAT: no float matters to a state dict
                    self.push(Value::Float);
                }
                b'X' | b'T' => {
                    // BINUNICODE, BINSTRING
                    let n = self.u32()? as usize;
                    let v = self.text(n)?;
                    self.push(v);
                }
                0x8c | b'U' => {
                    // SHORT_BINUNICODE, SHORT_BINSTRING
                    let n = self.u8()? as usize;
                    let v = self.text(n)?;
                    self.push(v);
                }
                b'q' => {
                    let k = self.u8()? as u32;
                    self.memoize(k)?;
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memoize(k)?;
                }
                0x94 => self.memoize(self.memo.len() as u32)?, // MEMOIZE
                b'h' | b'j' => {
                    let k = if op == b'h' {
                        self.u8()? as u32
                    } else {
                        self.u32()?
                    };
                    let item = self
                        .memo
                        .get(&k)
                        .ok_or_else(|| format!("the pickle reads memo entry {k}, never stored"))?;
                    let copy = Self::copy(&mut self.budget, item)?;
                    self.stack.push(copy);
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = self.global(&module, &name)?;
                    self.push(g);
                }
                0x93 => {
                    // STACK_GLOBAL
                    let (name, module) = (self.pop()?.value, self.pop()?.value);
                    let (Value::Str(name), Value::Str(module)) = (name, module) else {
                        return Err("STACK_GLOBAL without two names".into());
                    };
                    let g = self.global(&module, &name)?;
                    self.push(g);
                }
                b't' | b'l' => {
                    let items = self.pop_mark()?;
                    let values = || items.iter().map(|i| i.value.clone()).collect();
                    let make = |v| {
                        if op == b't' {
                            Value::Tuple(v)
                        } else {
                            Value::List(v)
                        }
                    };
                    self.push_container(&items, || make(values()))?;
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err("a tuple of more values than the stack holds".into());
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push_container(&items, || {
                        Value::Tuple(items.iter().map(|i| i.value.clone()).collect())
                    })?;
                }
                b'a' | b'e' => {
                    let items = if op == b'a' {
                        vec![self.pop()?]
                    } else {
                        self.pop_mark()?
                    };
                    self.extend_top(items, "APPEND", |top, values| match top {
                        Value::List(l) => {
                            l.extend(values);
                            true
                        }
                        _ => false,
                    })?;
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let values: Vec<Value> = items.iter().map(|i| i.value.clone()).collect();
                    let dict = pairs(values)?;
                    self.push_container(&items, || Value::Dict(dict))?;
                }
                b's' | b'u' => {
                    let items = if op == b's' {
                        let v = self.pop()?;
                        let k = self.pop()?;
                        vec![k, v]
                    } else {
                        self.pop_mark()?
                    };
                    if !items.len().is_multiple_of(2) {
                        return Err("a dict of an odd number of keys and values".into());
                    }
                    self.extend_top(items, "SETITEM", |top, values| match top {
                        Value::Dict(d) => pairs(values).map(|p| d.extend(p)).is_ok(),
                        _ => false,
                    })?;
                }
                b'Q' => {
                    // BINPERSID: a storage.
                    let pid = self.pop()?.value;
                    let storage = self.persistent(pid)?;
                    self.push(storage);
                }
                b'R' => {
                    let args = self.pop()?.value;
                    let callable = self.pop()?.value;
                    let v = reduce(callable, args)?;
                    self.push(v);
                }
                b'b' => {
                    // BUILD: the state of an OrderedDict (`_metadata`) or a parameter is not needed.
                    self.pop()?;
                }
                other => {
                    return Err(format!(
                        "pickle opcode 0x{other:02x} at byte {} is not one a state dict uses",
                        self.at - 1
                    ))
                }
            }
        }
    }

    /// A persistent id `('storage', StorageClass, key, location, numel[, view])`.
    fn persistent(&mut self, pid: Value) -> Step<Value> {
        let Value::Tuple(parts) = pid else {
            return Err("a persistent id that is not a tuple".into());
        };
        match parts.as_slice() {
            [Value::Str(tag), Value::Global(class), key, _location, _numel, rest @ ..]
                if tag == "storage" =>
            {
                if rest.iter().any(|v| !matches!(v, Value::None)) {
                    return Err(
                        "storage views (files from PyTorch before 0.4) are not supported".into(),
                    );
                }
                let dtype = storage_dtype(class)
                    .ok_or_else(|| format!("`{class}` is not a storage class"))?;
                let key = match key {
                    Value::Str(s) => s.clone(),
                    Value::Int(i) => i.to_string(),
                    _ => return Err("a storage key that is neither a string nor a number".into()),
                };
                self.storages.insert(key.clone(), dtype);
                Ok(Value::Storage(key))
            }
            _ => Err("a persistent id that is not a storage".into()),
        }
    }
}

/// Key-value pairs from a flat list.
fn pairs(items: Vec<Value>) -> Step<Vec<(Value, Value)>> {
    if !items.len().is_multiple_of(2) {
        return Err("a dict of an odd number of keys and values".into());
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

/// A non-negative integer argument.
fn index(v: &Value, what: &str) -> Step<usize> {
    match v {
        Value::Int(i) => {
            usize::try_from(*i).map_err(|_| format!("{what} {i} is negative or too large"))
        }
        other => Err(format!("{what} is a {}, not an int", kind(other))),
    }
}

fn indices(v: &Value, what: &str) -> Step<Vec<usize>> {
    match v {
        Value::Tuple(items) | Value::List(items) => items.iter().map(|i| index(i, what)).collect(),
        other => Err(format!("{what} is a {}, not a tuple", kind(other))),
    }
}

/// Calls one of the allowed globals.
fn reduce(callable: Value, args: Value) -> Step<Value> {
    let Value::Global(name) = callable else {
        return Err(format!("a call of a {}", kind(&callable)));
    };
    let Value::Tuple(args) = args else {
        return Err(format!("`{name}` called with a {}", kind(&args)));
    };
    match (name, args.as_slice()) {
        ("OrderedDict", []) => Ok(Value::Dict(Vec::new())),
        ("_rebuild_tensor_v2", [Value::Storage(key), offset, shape, strides, ..]) => {
            let shape = indices(shape, "a tensor's size")?;
            let strides = indices(strides, "a tensor's stride")?;
            if shape.len() != strides.len() {
                return Err(format!(
                    "a tensor of size {shape:?} has strides {strides:?}"
                ));
            }
            Ok(Value::Tensor(TensorRef {
                storage: key.clone(),
                offset: index(offset, "a tensor's storage offset")?,
                shape,
                strides,
            }))
        }
        ("_rebuild_parameter", [tensor @ Value::Tensor(_), ..]) => Ok(tensor.clone()),
        _ => Err(format!(
            "`{name}` called with {} arguments it does not take",
            args.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A protocol-2 pickle of `body` followed by STOP.
    fn pickle(body: &[u8]) -> Vec<u8> {
        [&[0x80, 0x02][..], body, b"."].concat()
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let mut body = vec![b']'; 200_000];
        body.extend(std::iter::repeat_n(b'a', 199_999));
        let err = Unpickler::new(&pickle(&body)).load().unwrap_err();
        assert!(err.contains("nested"), "{err}");
    }

    #[test]
    fn memo_copies_are_bounded() {
        // A list doubled through the memo 40 times would hold 2^40 values.
        let mut body = b"]K\x01aq\x00".to_vec();
        for _ in 0..40 {
            body.extend_from_slice(b"(h\x00h\x00lq\x00");
        }
        let err = Unpickler::new(&pickle(&body)).load().unwrap_err();
        assert!(err.contains("memo") || err.contains("nested"), "{err}");
    }

    #[test]
    fn only_state_dict_globals_are_accepted() {
        let err = Unpickler::new(&pickle(b"cbuiltins\neval\n"))
            .load()
            .unwrap_err();
        assert!(err.contains("`builtins.eval`"), "{err}");
        let ok = Unpickler::new(&pickle(b"ccollections\nOrderedDict\n)R"))
            .load()
            .unwrap();
        assert!(matches!(ok, Value::Dict(d) if d.is_empty()));
    }
}
