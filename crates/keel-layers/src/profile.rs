//! Where a forward pass spends its time, by kind of layer (`Conv2D 3×3`, `Conv2D 1×1`,
//! `DepthwiseConv2D 3×3`, `BatchNormalization`, `ReLU`, …): each layer without children is
//! timed as it runs. On the CPU an op has finished when it returns, so the times are the
//! layers' own; on wgpu they are the time to record the work.

use crate::config::LayerConfig;
use crate::layer::Fused;
use crate::{Layer, Result};
use keel_autograd::Var;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Instant;

/// Seconds and calls by layer kind, while a [`profile`] runs on this thread.
type Totals = BTreeMap<String, (f64, usize)>;

thread_local! {
    static TOTALS: RefCell<Option<Totals>> = const { RefCell::new(None) };
}

/// One kind of layer's share of a profiled run.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileRow {
    /// The kind (the Keras class, with the kernel size for convolutions).
    pub kind: String,
    /// Seconds spent in layers of this kind.
    pub seconds: f64,
    /// How many layers of this kind ran.
    pub calls: usize,
}

/// Runs `f` and returns its result with the time its layers took, by kind, largest first, and
/// the whole run's seconds (the rest is what no layer of its own does: residual additions,
/// the input check).
pub fn profile<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, Vec<ProfileRow>, f64)> {
    TOTALS.with(|t| *t.borrow_mut() = Some(Totals::new()));
    let start = Instant::now();
    let result = f();
    let total = start.elapsed().as_secs_f64();
    let totals = TOTALS.with(|t| t.borrow_mut().take()).unwrap_or_default();
    let mut rows: Vec<ProfileRow> = totals
        .into_iter()
        .map(|(kind, (seconds, calls))| ProfileRow {
            kind,
            seconds,
            calls,
        })
        .collect();
    rows.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    Ok((result?, rows, total))
}

/// Whether a [`profile`] runs on this thread.
fn profiling() -> bool {
    TOTALS.with(|t| t.borrow().is_some())
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

/// Adds the time since `start` to `label`'s.
fn record(label: String, start: Instant) {
    let seconds = start.elapsed().as_secs_f64();
    TOTALS.with(|t| {
        if let Some(totals) = t.borrow_mut().as_mut() {
            let entry = totals.entry(label).or_default();
            entry.0 += seconds;
            entry.1 += 1;
        }
    });
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
