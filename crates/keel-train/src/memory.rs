//! What training will allocate on top of the model, estimated before any of it is: gradients,
//! optimizer state, the optimizer's scratch, activations at the batch size and cached features.

use crate::features::FeatureOptions;
use crate::optimizer::Optimizer;
use keel_layers::{Layer, Sequential};
use keel_tensor::memory::MemoryEstimate;

const F32: u64 = 4;

/// The memory `fit` needs beyond the model's weights when it trains `model` from layer `first`
/// on (the layers before it run once, or not at all, when their features are cached), with
/// batches of `batch_size`, keeping `features` bytes of cached features in memory.
pub fn training_memory(
    model: &Sequential,
    optimizer: &dyn Optimizer,
    batch_size: usize,
    first: usize,
    features: u64,
) -> MemoryEstimate {
    let trainable: Vec<u64> = model
        .trainable_params()
        .iter()
        .map(|p| p.value().elem_count() as u64)
        .collect();
    let activations: u64 = model.layers()[first.min(model.layers().len())..]
        .iter()
        .map(|l| activation_values(l.as_ref()))
        .sum();
    // Each layer's output is kept for the backward pass, which makes a gradient of it.
    update_memory(&trainable, optimizer)
        .add(
            format!("activations at batch {batch_size}"),
            activations * batch_size as u64 * 2 * F32,
        )
        .add("cached features", features)
}

/// The memory updating trainable tensors of these element counts takes: their gradients, the
/// optimizer's state, and the temporaries an update makes (a few of each tensor's size, one
/// tensor at a time). With the counts of a head not yet built, it sizes a model before it exists.
pub fn update_memory(trainable: &[u64], optimizer: &dyn Optimizer) -> MemoryEstimate {
    let total: u64 = trainable.iter().sum();
    let largest = trainable.iter().copied().max().unwrap_or(0);
    MemoryEstimate::new()
        .add("gradients", total * F32)
        .add(
            "optimizer state",
            total * optimizer.state_slots() as u64 * F32,
        )
        .add("optimizer scratch", largest * 4 * F32)
}

/// Bytes of `samples` features of `model`'s first `layers` layers that `options` keeps in
/// memory: all of them up to what its budget has left (0 when no layer is cached).
pub fn feature_memory(
    model: &Sequential,
    layers: usize,
    samples: usize,
    options: &FeatureOptions,
) -> u64 {
    let Some(last) = layers.checked_sub(1).and_then(|i| model.layers().get(i)) else {
        return 0;
    };
    let per_sample: usize = last.output_shape().iter().product();
    ((samples * per_sample * options.precision.bytes()) as u64).min(options.budget.remaining())
}

/// Values one sample makes in `layer`: its output, or its layers' outputs for a block.
fn activation_values(layer: &dyn Layer) -> u64 {
    let children = layer.children();
    if children.is_empty() {
        layer.output_shape().iter().product::<usize>() as u64
    } else {
        children.into_iter().map(activation_values).sum()
    }
}
