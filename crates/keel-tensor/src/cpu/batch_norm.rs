//! Training-mode batch normalisation on the CPU: the per-channel statistics of the forward pass
//! in one pass over the input, and the backward pass in two (per-channel sums, then the input
//! gradient), instead of one pass per elementwise op of the formula. An activation after the
//! batch norm has its derivative applied to the incoming gradient inside both backward passes.

use crate::op::{Activation, BinaryOp};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Pixels (rows of `c` channels) summed in f32 before their sums go into the f64 totals.
const BLOCK_ROWS: usize = 64;

/// The activation after a per-channel affine map whose derivative multiplies the incoming
/// gradient: g · act′(x · scale[c] + shift[c]).
#[derive(Clone, Copy)]
pub(crate) struct Through<'a> {
    pub scale: &'a [f32],
    pub shift: &'a [f32],
    pub activation: Activation,
}

/// Evaluates `body` with `grad` bound to the per-element gradient map of `activation`,
/// (g, x, scale, shift) → g · act′(x · scale + shift), one instantiation per activation so
/// that the inner loops have no match.
macro_rules! with_gradient_map {
    ($activation:expr, $grad:ident => $body:expr) => {
        match $activation {
            Activation::None => with_gradient_map!(@one Activation::None, $grad => $body),
            Activation::Relu => with_gradient_map!(@one Activation::Relu, $grad => $body),
            Activation::Relu6 => with_gradient_map!(@one Activation::Relu6, $grad => $body),
            Activation::Silu => with_gradient_map!(@one Activation::Silu, $grad => $body),
            Activation::HardSwish => with_gradient_map!(@one Activation::HardSwish, $grad => $body),
        }
    };
    (@one $act:expr, $grad:ident => $body:expr) => {{
        let $grad = |g: f32, x: f32, s: f32, t: f32| {
            $act.gradient().map_or(g, |op: BinaryOp| op.apply(g, x * s + t))
        };
        $body
    }};
}

/// Per channel, Σ (a′ − ca) and Σ (a′ − ca)·(b − cb) over the rows of `a` and `b` ([rows, c]
/// each, `ca`, `cb`, `scale`, `shift` one value per channel), where a′ = grad(a, b, scale,
/// shift): in f32 within blocks of [`BLOCK_ROWS`] rows, in f64 across blocks and threads.
fn centered_sums(
    a: &[f32],
    ca: &[f32],
    b: &[f32],
    cb: &[f32],
    (scale, shift): (&[f32], &[f32]),
    grad: impl Fn(f32, f32, f32, f32) -> f32 + Sync,
) -> (Vec<f64>, Vec<f64>) {
    let c = ca.len();
    if c == 0 {
        return (Vec::new(), Vec::new());
    }
    let block = c * BLOCK_ROWS;
    let init = || (vec![0f64; 2 * c], vec![0f32; 2 * c]);
    let totals = a
        .par_chunks(block)
        .zip(b.par_chunks(block))
        .fold(init, |(mut totals, mut partial), (a, b)| {
            partial.fill(0.0);
            let (p1, p2) = partial.split_at_mut(c);
            let (ca, cb, scale, shift) = (&ca[..c], &cb[..c], &scale[..c], &shift[..c]);
            let (p1, p2) = (&mut p1[..c], &mut p2[..c]);
            for (a, b) in a.chunks_exact(c).zip(b.chunks_exact(c)) {
                let (a, b) = (&a[..c], &b[..c]);
                // Indexed over slices of one known length, the loop vectorises (a zip of eight
                // iterators did not).
                for ch in 0..c {
                    let u = grad(a[ch], b[ch], scale[ch], shift[ch]) - ca[ch];
                    p1[ch] += u;
                    p2[ch] += u * (b[ch] - cb[ch]);
                }
            }
            totals
                .iter_mut()
                .zip(&partial)
                .for_each(|(t, &p)| *t += p as f64);
            (totals, partial)
        })
        .map(|(totals, _)| totals)
        .reduce(
            || vec![0f64; 2 * c],
            |mut t, u| {
                t.iter_mut().zip(&u).for_each(|(t, u)| *t += u);
                t
            },
        );
    let (s1, s2) = totals.split_at(c);
    (s1.to_vec(), s2.to_vec())
}

/// Per-channel mean and biased variance of `x` ([rows, c]; `rows` > 0), in one pass. The sums
/// are taken about the first row's values, so a mean far from zero costs no precision.
pub(crate) fn channel_moments(x: &[f32], c: usize) -> (Vec<f32>, Vec<f32>) {
    let shift = &x[..c];
    let rows = (x.len() / c) as f64;
    let unused = vec![0f32; c];
    let (s1, s2) = centered_sums(x, shift, x, shift, (&unused, &unused), |g, _, _, _| g);
    let mut mean = Vec::with_capacity(c);
    let mut var = Vec::with_capacity(c);
    for ((&k, s1), s2) in shift.iter().zip(s1).zip(s2) {
        let d = s1 / rows;
        mean.push((k as f64 + d) as f32);
        var.push((s2 / rows - d * d).max(0.0) as f32);
    }
    (mean, var)
}

/// Per-channel Σ g′ and Σ g′·(x − mean) over the rows of `g` and `x` ([rows, c] each), with
/// g′ = g · act′(x · scale + shift) when `through` names an activation, else g.
pub(crate) fn channel_grad_sums(
    g: &[f32],
    x: &[f32],
    mean: &[f32],
    through: Option<Through<'_>>,
) -> (Vec<f32>, Vec<f32>) {
    let zero = vec![0f32; mean.len()];
    let coefficients = through.map_or((&zero[..], &zero[..]), |t| (t.scale, t.shift));
    let activation = through.map_or(Activation::None, |t| t.activation);
    let (s1, s2) = with_gradient_map!(activation, grad => centered_sums(g, &zero, x, mean, coefficients, grad));
    let narrow = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
    (narrow(s1), narrow(s2))
}

/// a[c]·g′ + b[c]·x + k[c] per element of `g` and `x` ([rows, c] each), g′ as in
/// [`channel_grad_sums`]; 64 rows per parallel chunk.
pub(crate) fn channel_combine(
    g: &[f32],
    x: &[f32],
    (a, b, k): (&[f32], &[f32], &[f32]),
    through: Option<Through<'_>>,
) -> Vec<f32> {
    let c = a.len();
    let zero = vec![0f32; c];
    let (scale, shift) = through.map_or((&zero[..], &zero[..]), |t| (t.scale, t.shift));
    let activation = through.map_or(Activation::None, |t| t.activation);
    with_gradient_map!(activation, grad => combine_with(g, x, (a, b, k), (scale, shift), grad))
}

/// [`channel_combine`] with the gradient map `grad` (g, x, scale, shift) → g′.
#[inline(always)]
fn combine_with(
    g: &[f32],
    x: &[f32],
    (a, b, k): (&[f32], &[f32], &[f32]),
    (scale, shift): (&[f32], &[f32]),
    grad: impl Fn(f32, f32, f32, f32) -> f32 + Sync,
) -> Vec<f32> {
    let c = a.len();
    let fill = |i: usize, o: &mut [MaybeUninit<f32>]| {
        let inputs = g[i * c * 64..].chunks(c).zip(x[i * c * 64..].chunks(c));
        let (a, b, k, scale, shift) = (&a[..c], &b[..c], &k[..c], &scale[..c], &shift[..c]);
        for (o, (g, x)) in o.chunks_mut(c).zip(inputs) {
            let (o, g, x) = (&mut o[..c], &g[..c], &x[..c]);
            // Indexed, as in `centered_sums`.
            for ch in 0..c {
                o[ch].write(
                    a[ch] * grad(g[ch], x[ch], scale[ch], shift[ch]) + b[ch] * x[ch] + k[ch],
                );
            }
        }
    };
    // SAFETY: output chunk i starts at element i·c·64 of g and x, which are as long as the
    // output, so each c-wide piece of it meets pieces of g and x at least as long: the zips
    // write every element.
    unsafe { super::output_chunks(g.len(), c * 64, fill) }
}
