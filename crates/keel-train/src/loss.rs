//! Losses (Keras' names), from logits or from probabilities.

use crate::{Error, Result};
use keel_autograd::{one_hot, Var};
use keel_tensor::{DType, Tensor};

/// Probabilities are clipped to [ε, 1 − ε] before the logarithm (Keras' ε).
const EPSILON: f32 = 1e-7;

/// A loss between a model's outputs and the targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// Integer labels (i32 `[N]`) against `[N, classes]` outputs.
    SparseCategoricalCrossentropy {
        /// Whether the outputs are logits (else probabilities, e.g. after a softmax layer).
        from_logits: bool,
    },
    /// One-hot (or soft) f32 targets [N, classes] against [N, classes] outputs.
    CategoricalCrossentropy {
        /// Whether the outputs are logits.
        from_logits: bool,
    },
    /// f32 targets in [0, 1] against outputs of the same shape, one sigmoid each.
    BinaryCrossentropy {
        /// Whether the outputs are logits (else probabilities, e.g. after a sigmoid).
        from_logits: bool,
    },
}

impl Loss {
    /// Whether targets are integer class labels.
    pub fn sparse(&self) -> bool {
        matches!(self, Loss::SparseCategoricalCrossentropy { .. })
    }

    /// The mean loss over the batch, as a scalar `Var`.
    pub fn compute(&self, outputs: &Var, targets: &Tensor) -> Result<Var> {
        let classes = outputs.dims().last().copied().unwrap_or(0);
        let targets_f32 = |t: &Tensor| -> Result<Tensor> {
            if t.dtype() != DType::F32 || t.shape() != outputs.shape() {
                return Err(Error::Mismatch(format!(
                    "{self:?}: targets {:?} {} for outputs {}",
                    t.dtype(),
                    t.shape(),
                    outputs.shape()
                )));
            }
            Ok(t.clone())
        };
        Ok(match *self {
            Loss::SparseCategoricalCrossentropy { from_logits } => {
                if targets.dtype() != DType::I32 || targets.dims() != [outputs.dims()[0]] {
                    return Err(Error::Mismatch(format!(
                        "sparse cross-entropy needs i32 labels [{}], got {:?} {}",
                        outputs.dims()[0],
                        targets.dtype(),
                        targets.shape()
                    )));
                }
                let onehot = one_hot(targets, classes)?;
                cross_entropy(outputs, &onehot, from_logits)?
            }
            Loss::CategoricalCrossentropy { from_logits } => {
                cross_entropy(outputs, &targets_f32(targets)?, from_logits)?
            }
            Loss::BinaryCrossentropy { from_logits } => {
                let t = Var::constant(targets_f32(targets)?);
                let per_element = if from_logits {
                    // max(x, 0) − x·t + log(1 + e^−|x|): no overflow for any x.
                    let softplus = outputs.abs()?.neg()?.exp()?.add_scalar(1.0)?.log()?;
                    outputs.relu()?.sub(&outputs.mul(&t)?)?.add(&softplus)?
                } else {
                    let p = outputs.maximum(&Var::constant(Tensor::full(
                        EPSILON,
                        [1],
                        outputs.tensor().device(),
                    )?))?;
                    let p = p.minimum(&Var::constant(Tensor::full(
                        1.0 - EPSILON,
                        [1],
                        outputs.tensor().device(),
                    )?))?;
                    let q = p.affine(-1.0, 1.0)?;
                    t.mul(&p.log()?)?
                        .add(&t.affine(-1.0, 1.0)?.mul(&q.log()?)?)?
                        .neg()?
                };
                per_element.mean_all()?
            }
        })
    }
}

/// Mean over rows of −Σ targets · log p.
fn cross_entropy(outputs: &Var, targets: &Tensor, from_logits: bool) -> Result<Var> {
    if from_logits {
        return Ok(outputs.softmax_cross_entropy(targets)?);
    }
    let device = outputs.tensor().device();
    let p = outputs
        .maximum(&Var::constant(Tensor::full(EPSILON, [1], device)?))?
        .minimum(&Var::constant(Tensor::full(1.0 - EPSILON, [1], device)?))?;
    let rows = outputs.dims()[0].max(1) as f32;
    Ok(Var::constant(targets.clone())
        .mul(&p.log()?)?
        .sum_all()?
        .mul_scalar(-1.0 / rows)?)
}
