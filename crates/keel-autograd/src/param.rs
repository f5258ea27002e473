//! Trainable parameters: the only values whose gradients are computed.

use crate::graph::Node;
use crate::{Error, Result, Var};
use keel_tensor::Tensor;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A named, shared, trainable tensor (a layer's kernel or bias). Cloning shares it.
///
/// While it is trainable and gradients are enabled, [`var`](Param::var) makes it a leaf of the
/// graph; a frozen parameter (`set_trainable(false)`) is a plain constant, so nothing computed
/// from it alone is recorded. Gradients add up over `backward()` calls until
/// [`zero_grad`](Param::zero_grad).
#[derive(Clone)]
pub struct Param(Arc<ParamInner>);

struct ParamInner {
    id: u64,
    name: String,
    value: RwLock<Tensor>,
    grad: Mutex<Option<Tensor>>,
    trainable: AtomicBool,
}

impl Param {
    /// A trainable parameter holding `value`.
    pub fn new(name: impl Into<String>, value: Tensor) -> Param {
        Param(Arc::new(ParamInner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            name: name.into(),
            value: RwLock::new(value),
            grad: Mutex::new(None),
            trainable: AtomicBool::new(true),
        }))
    }

    /// The name given at creation (e.g. `block1_conv1/kernel`).
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// A process-unique id.
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// The current value (a cheap handle; the data is shared).
    pub fn value(&self) -> Tensor {
        self.0
            .value
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the value (an optimizer step, loading weights); the shape must not change.
    pub fn set_value(&self, value: Tensor) -> Result<()> {
        let mut slot = self.0.value.write().unwrap_or_else(|e| e.into_inner());
        if slot.shape() != value.shape() {
            return Err(Error::Shape {
                what: format!("parameter `{}`", self.0.name),
                expected: slot.shape().clone(),
                got: value.shape().clone(),
            });
        }
        *slot = value;
        Ok(())
    }

    /// Whether gradients are computed for it.
    pub fn trainable(&self) -> bool {
        self.0.trainable.load(Ordering::Relaxed)
    }

    /// Freezes (`false`) or unfreezes (`true`) it.
    pub fn set_trainable(&self, trainable: bool) {
        self.0.trainable.store(trainable, Ordering::Relaxed);
    }

    /// The gradient accumulated since the last [`zero_grad`](Param::zero_grad), if any.
    pub fn grad(&self) -> Option<Tensor> {
        self.0
            .grad
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Forgets the accumulated gradient.
    pub fn zero_grad(&self) {
        *self.0.grad.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Adds `g` to the accumulated gradient.
    pub(crate) fn accumulate(&self, g: &Tensor) -> Result<()> {
        let mut slot = self.0.grad.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Some(match slot.take() {
            Some(old) => old.add(g)?,
            None => g.clone(),
        });
        Ok(())
    }

    /// The value as an input to ops: a tracked leaf when trainable and gradients are enabled,
    /// a constant otherwise.
    pub fn var(&self) -> Var {
        if self.trainable() && crate::grad_enabled() {
            Var::tracked(self.value(), Node::leaf(self.clone()))
        } else {
            Var::constant(self.value())
        }
    }
}

impl std::fmt::Debug for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Param({}, {}, trainable: {})",
            self.0.name,
            self.value().shape(),
            self.trainable()
        )
    }
}
