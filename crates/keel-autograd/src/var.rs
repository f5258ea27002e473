//! `Var`: a tensor flowing through a computation, with the graph node that produced it when a
//! trainable parameter flows into it.

use crate::backward::Rule;
use crate::graph::{self, Gradients, Node};
use crate::{Error, Result};
use keel_tensor::{Shape, Tensor};
use std::sync::Arc;

/// A value in a differentiable computation: a [`Tensor`] plus, when it depends on a trainable
/// parameter, the node that records how it was computed. Ops on `Var`s mirror the tensor ops.
/// Cloning is cheap (shared data, shared node).
#[derive(Clone)]
pub struct Var {
    tensor: Tensor,
    node: Option<Arc<Node>>,
}

impl Var {
    /// A constant: gradients never flow into it (inputs, labels, frozen weights).
    pub fn constant(tensor: Tensor) -> Var {
        Var { tensor, node: None }
    }

    pub(crate) fn tracked(tensor: Tensor, node: Arc<Node>) -> Var {
        Var {
            tensor,
            node: Some(node),
        }
    }

    /// The value.
    pub fn tensor(&self) -> &Tensor {
        &self.tensor
    }

    /// The value's shape.
    pub fn shape(&self) -> &Shape {
        self.tensor.shape()
    }

    /// The value's dimensions.
    pub fn dims(&self) -> &[usize] {
        self.tensor.dims()
    }

    /// Whether a trainable parameter flows into this value (so it has a graph node).
    pub fn is_tracked(&self) -> bool {
        self.node.is_some()
    }

    /// The same value as a constant, cut from the graph.
    pub fn detach(&self) -> Var {
        Var::constant(self.tensor.clone())
    }

    /// Number of graph nodes (ops and parameter leaves) this value was computed through;
    /// 0 for a constant.
    pub fn graph_size(&self) -> usize {
        self.node.as_ref().map_or(0, graph::count)
    }

    /// Gradients of this scalar with respect to every trainable parameter it depends on; each
    /// parameter's accumulated gradient grows by its part. The graph's saved tensors are freed.
    pub fn backward(&self) -> Result<Gradients> {
        if self.tensor.elem_count() != 1 {
            return Err(Error::NotScalar {
                shape: self.shape().clone(),
            });
        }
        let seed = Tensor::ones(self.shape().clone(), self.tensor.device())?;
        self.backward_with(&seed)
    }

    /// Like [`backward`](Var::backward) for a value of any shape, starting from `seed`, the
    /// gradient of the loss with respect to this value.
    pub fn backward_with(&self, seed: &Tensor) -> Result<Gradients> {
        if seed.shape() != self.shape() {
            return Err(Error::Shape {
                what: "backward seed gradient".into(),
                expected: self.shape().clone(),
                got: seed.shape().clone(),
            });
        }
        let node = self.node.as_ref().ok_or(Error::NoTrainable)?;
        graph::backward(node, seed.clone())
    }

    /// The result of an op: records `rule` when gradients are enabled and any input is tracked.
    pub(crate) fn record(
        name: &'static str,
        output: Tensor,
        inputs: &[&Var],
        rule: impl FnOnce() -> Rule,
    ) -> Var {
        if !crate::grad_enabled() || inputs.iter().all(|v| v.node.is_none()) {
            return Var::constant(output);
        }
        let nodes = inputs.iter().map(|v| v.node.clone()).collect();
        Var::tracked(output, Node::op(name, rule(), nodes))
    }
}

impl From<Tensor> for Var {
    fn from(t: Tensor) -> Var {
        Var::constant(t)
    }
}

impl std::fmt::Debug for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Var({}, tracked: {})", self.shape(), self.is_tracked())
    }
}
