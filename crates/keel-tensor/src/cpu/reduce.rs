//! Reductions along one axis, argmax and softmax on the CPU.

use crate::op::{nan_max, nan_min, ranks_above, ReduceOp};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Reduces `x` viewed as [outer, len, inner] along the middle axis.
pub(crate) fn reduce(x: &[f32], outer: usize, len: usize, inner: usize, op: ReduceOp) -> Vec<f32> {
    // One instantiation per op, so the inner loop has no match and vectorises.
    let mut y = match op {
        ReduceOp::Sum | ReduceOp::Mean => reduce_with(x, (outer, len, inner), |a, v| a + v),
        ReduceOp::Max => reduce_with(x, (outer, len, inner), nan_max),
        ReduceOp::Min => reduce_with(x, (outer, len, inner), nan_min),
    };
    if op == ReduceOp::Mean {
        y.iter_mut().for_each(|v| *v /= len as f32);
    }
    y
}

/// Folds `x` viewed as [outer, len, inner] along the middle axis with `f`, from the first row.
#[inline(always)]
fn reduce_with(
    x: &[f32],
    (outer, len, inner): (usize, usize, usize),
    f: impl Fn(f32, f32) -> f32 + Sync,
) -> Vec<f32> {
    let mut y = super::output(outer * inner);
    y.par_chunks_mut(inner).enumerate().for_each(|(o, out)| {
        let block = &x[o * len * inner..][..len * inner];
        out.copy_from_slice(&block[..inner]);
        for row in block.chunks_exact(inner).skip(1) {
            for (acc, &v) in out.iter_mut().zip(row) {
                *acc = f(*acc, v);
            }
        }
    });
    y
}

/// Index of the first maximum (a NaN being the maximum) of `x` viewed as [outer, len, inner] along the middle axis.
pub(crate) fn argmax(x: &[f32], outer: usize, len: usize, inner: usize) -> Vec<i32> {
    let mut y = vec![0i32; outer * inner];
    y.par_chunks_mut(inner).enumerate().for_each(|(o, out)| {
        let block = &x[o * len * inner..][..len * inner];
        for (i, idx) in out.iter_mut().enumerate() {
            let mut best = block[i];
            let mut best_l = 0;
            for l in 1..len {
                let v = block[l * inner + i];
                if ranks_above(v, best) {
                    best = v;
                    best_l = l;
                }
            }
            *idx = best_l as i32;
        }
    });
    y
}

/// Softmax (or log-softmax) of each row of a [rows, cols] matrix, max-subtracted for stability.
pub(crate) fn softmax(x: &[f32], cols: usize, log: bool) -> Vec<f32> {
    let fill = |r: usize, out: &mut [MaybeUninit<f32>]| {
        let row = &x[r * cols..][..cols];
        let max = row.iter().copied().fold(f32::NEG_INFINITY, nan_max);
        let sum: f32 = row.iter().map(|&v| (v - max).exp()).sum();
        let log_sum = sum.ln();
        for (o, &v) in out.iter_mut().zip(row) {
            o.write(if log {
                v - max - log_sum
            } else {
                (v - max).exp() / sum
            });
        }
    };
    // SAFETY: each output row meets an input row of the same length: the zip writes all of it.
    unsafe { super::output_chunks(x.len(), cols, fill) }
}
