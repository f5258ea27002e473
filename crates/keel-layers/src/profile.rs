//! Where a forward pass spends its time, by kind of layer (`Conv2D 3×3`, `Conv2D 1×1`,
//! `DepthwiseConv2D 3×3`, `BatchNormalization`, `ReLU`, …), and a backward pass run with it, by
//! op (keel-autograd's table): each layer without children is timed as it runs. On the CPU an
//! op has finished when it returns, so the times are the layers' own; on wgpu they are the
//! time to record the work.

use crate::config::LayerConfig;
use crate::layer::Fused;
use crate::{Layer, Result};
pub use keel_autograd::profile::ProfileRow;
use keel_autograd::profile::{profiling, record};
use keel_autograd::Var;
use std::time::Instant;

/// Runs `f` and returns its result with the time its layers took, by kind, and its backward
/// rules, by op (`∂ conv 1×1`), largest first, and the whole run's seconds (the rest is what
/// no layer or rule of its own does: residual additions, the input check, an optimizer step).
pub fn profile<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, Vec<ProfileRow>, f64)> {
    let (result, rows, total) = keel_autograd::profile::profile(f);
    Ok((result?, rows, total))
}

/// Applies `layer` to `x`, timed under its kind when a [`profile`] runs and it has no children
/// (whose own layers are timed instead).
pub(crate) fn forward(layer: &dyn Layer, x: &Var, training: bool) -> Result<Var> {
    if !profiling() || !layer.children().is_empty() {
        return layer.forward(x, training);
    }
    let start = Instant::now();
    let y = layer.forward(x, training);
    record(kind(layer), start);
    y
}

/// [`Layer::forward_fused`], timed under the kinds it runs (`ZeroPadding2D + DepthwiseConv2D
/// 3×3 + BatchNormalization + Relu6`) when a [`profile`] runs.
pub(crate) fn forward_fused(
    layer: &dyn Layer,
    x: &Var,
    training: bool,
    fused: &Fused,
) -> Option<Result<Var>> {
    if !profiling() {
        return layer.forward_fused(x, training, fused);
    }
    let start = Instant::now();
    let y = layer.forward_fused(x, training, fused)?;
    let mut label = kind(layer);
    if fused.padding.is_some() {
        label = format!("ZeroPadding2D + {label}");
    }
    if fused.affine.is_some() {
        label += " + BatchNormalization";
    }
    if fused.activation != keel_tensor::Activation::None {
        label += &format!(" + {:?}", fused.activation);
    }
    record(label, start);
    Some(y)
}

/// The layer's kind, with the kernel size for a convolution.
fn kind(layer: &dyn Layer) -> String {
    match layer.config() {
        LayerConfig::Conv2D {
            kernel_size: (h, w),
            ..
        }
        | LayerConfig::DepthwiseConv2D {
            kernel_size: (h, w),
            ..
        } => format!("{} {h}×{w}", layer.kind()),
        _ => layer.kind().to_string(),
    }
}
