//! The recorded graph and the reverse pass over it.
//!
//! A node is either a trainable parameter (a leaf) or an op with the inputs that were tracked
//! and the [`Rule`] that maps its output gradient to theirs. Only values that a trainable
//! parameter flows into have nodes, so a frozen backbone records nothing.

use crate::backward::Rule;
use crate::{Error, Param, Result};
use keel_tensor::Tensor;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

static NEXT_NODE: AtomicU64 = AtomicU64::new(0);

pub(crate) struct Node {
    id: u64,
    kind: Kind,
}

enum Kind {
    Leaf(Param),
    Op {
        name: &'static str,
        /// Taken (and so freed) by the first backward pass through this node.
        rule: Mutex<Option<Box<Rule>>>,
        /// One entry per op input; `None` for constants.
        inputs: Vec<Option<Arc<Node>>>,
    },
}

impl Node {
    pub(crate) fn leaf(param: Param) -> Arc<Node> {
        Arc::new(Node {
            id: NEXT_NODE.fetch_add(1, Ordering::Relaxed),
            kind: Kind::Leaf(param),
        })
    }

    pub(crate) fn op(name: &'static str, rule: Rule, inputs: Vec<Option<Arc<Node>>>) -> Arc<Node> {
        Arc::new(Node {
            id: NEXT_NODE.fetch_add(1, Ordering::Relaxed),
            kind: Kind::Op {
                name,
                rule: Mutex::new(Some(Box::new(rule))),
                inputs,
            },
        })
    }

    fn inputs(&self) -> &[Option<Arc<Node>>] {
        match &self.kind {
            Kind::Leaf(_) => &[],
            Kind::Op { inputs, .. } => inputs,
        }
    }
}

/// Nodes reachable from `root`, each after every node that consumes it (reverse topological).
pub(crate) fn reverse_topological(root: &Arc<Node>) -> Vec<Arc<Node>> {
    let mut order = Vec::new();
    let mut seen = std::collections::HashSet::new();
    // Iterative post-order DFS: deep graphs must not overflow the stack.
    let mut stack = vec![(root.clone(), false)];
    while let Some((node, expanded)) = stack.pop() {
        if expanded {
            order.push(node);
            continue;
        }
        if !seen.insert(node.id) {
            continue;
        }
        stack.push((node.clone(), true));
        for input in node.inputs().iter().flatten() {
            if !seen.contains(&input.id) {
                stack.push((input.clone(), false));
            }
        }
    }
    order.reverse();
    order
}

/// Gradients of one backward pass, per parameter.
pub struct Gradients {
    grads: Vec<(Param, Tensor)>,
}

impl Gradients {
    /// The gradient of `param` from this pass, if the loss depends on it.
    pub fn get(&self, param: &Param) -> Option<&Tensor> {
        self.grads
            .iter()
            .find(|(p, _)| p.id() == param.id())
            .map(|(_, g)| g)
    }

    /// Every parameter reached, with its gradient.
    pub fn iter(&self) -> impl Iterator<Item = (&Param, &Tensor)> {
        self.grads.iter().map(|(p, g)| (p, g))
    }

    /// How many parameters were reached.
    pub fn len(&self) -> usize {
        self.grads.len()
    }

    /// Whether no parameter was reached.
    pub fn is_empty(&self) -> bool {
        self.grads.is_empty()
    }
}

/// Propagates `seed` (the gradient of the loss with respect to `root`'s value) back to the
/// parameters, adds each parameter's gradient to its accumulated one, and frees the rules' saved
/// tensors on the way.
pub(crate) fn backward(root: &Arc<Node>, seed: Tensor) -> Result<Gradients> {
    let order = reverse_topological(root);
    let mut pending: HashMap<u64, Tensor> = HashMap::new();
    pending.insert(root.id, seed);
    let mut grads = Vec::new();
    for node in order {
        let Some(g) = pending.remove(&node.id) else {
            continue;
        };
        match &node.kind {
            Kind::Leaf(param) => {
                param.accumulate(&g)?;
                // The same parameter may enter the graph through several leaves.
                match grads
                    .iter_mut()
                    .find(|(p, _): &&mut (Param, Tensor)| p.id() == param.id())
                {
                    Some((_, total)) => *total = total.add(&g)?,
                    None => grads.push((param.clone(), g)),
                }
            }
            Kind::Op { name, rule, inputs } => {
                let rule = rule
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .ok_or(Error::GraphFreed { op: name })?;
                let needs: Vec<bool> = inputs.iter().map(Option::is_some).collect();
                let input_grads = if crate::profile::profiling() {
                    let (label, start) = (rule.label(name), std::time::Instant::now());
                    let grads = rule.apply(&g, &needs);
                    crate::profile::record(label, start);
                    grads?
                } else {
                    rule.apply(&g, &needs)?
                };
                for (input, ig) in inputs.iter().zip(input_grads) {
                    let (Some(input), Some(ig)) = (input, ig) else {
                        continue;
                    };
                    let total = match pending.remove(&input.id) {
                        Some(prev) => prev.add(&ig)?,
                        None => ig,
                    };
                    pending.insert(input.id, total);
                }
            }
        }
    }
    Ok(Gradients { grads })
}

/// Number of nodes reachable from `root` (parameters included).
pub(crate) fn count(root: &Arc<Node>) -> usize {
    reverse_topological(root).len()
}
