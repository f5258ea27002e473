//! Training-mode batch normalisation on the CPU: the per-channel statistics of the forward pass
//! in one pass over the input, and the backward pass in two (per-channel sums, then the input
//! gradient), instead of one pass per elementwise op of the formula.

use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Pixels (rows of `c` channels) summed in f32 before their sums go into the f64 totals.
const BLOCK_ROWS: usize = 64;

/// Per channel, Σ (a − ca) and Σ (a − ca)·(b − cb) over the rows of `a` and `b` ([rows, c]
/// each, `ca` and `cb` one value per channel): in f32 within blocks of [`BLOCK_ROWS`] rows, in
/// f64 across blocks and threads.
fn centered_sums(a: &[f32], ca: &[f32], b: &[f32], cb: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let c = ca.len();
    let block = c * BLOCK_ROWS;
    let init = || (vec![0f64; 2 * c], vec![0f32; 2 * c]);
    let totals = a
        .par_chunks(block)
        .zip(b.par_chunks(block))
        .fold(init, |(mut totals, mut partial), (a, b)| {
            partial.fill(0.0);
            let (p1, p2) = partial.split_at_mut(c);
            for (a, b) in a.chunks_exact(c).zip(b.chunks_exact(c)) {
                let sums = p1.iter_mut().zip(p2.iter_mut());
                let centres = ca.iter().zip(cb);
                for (((s1, s2), (&ka, &kb)), (&x, &y)) in sums.zip(centres).zip(a.iter().zip(b)) {
                    let u = x - ka;
                    *s1 += u;
                    *s2 += u * (y - kb);
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
    let (s1, s2) = centered_sums(x, shift, x, shift);
    let mut mean = Vec::with_capacity(c);
    let mut var = Vec::with_capacity(c);
    for ((&k, s1), s2) in shift.iter().zip(s1).zip(s2) {
        let d = s1 / rows;
        mean.push((k as f64 + d) as f32);
        var.push((s2 / rows - d * d).max(0.0) as f32);
    }
    (mean, var)
}

/// Per-channel Σ g and Σ g·(x − mean) over the rows of `g` and `x` ([rows, c] each).
pub(crate) fn channel_grad_sums(g: &[f32], x: &[f32], mean: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let zero = vec![0f32; mean.len()];
    let (s1, s2) = centered_sums(g, &zero, x, mean);
    let narrow = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
    (narrow(s1), narrow(s2))
}

/// a[c]·g + b[c]·x + k[c] per element of `g` and `x` ([rows, c] each), 64 rows per parallel
/// chunk.
pub(crate) fn channel_combine(g: &[f32], x: &[f32], a: &[f32], b: &[f32], k: &[f32]) -> Vec<f32> {
    let c = a.len();
    let fill = |i: usize, o: &mut [MaybeUninit<f32>]| {
        let rows = o
            .chunks_mut(c)
            .zip(g[i * c * 64..].chunks(c).zip(x[i * c * 64..].chunks(c)));
        for (o, (g, x)) in rows {
            let coefficients = a.iter().zip(b).zip(k);
            for ((o, (&g, &x)), ((&a, &b), &k)) in
                o.iter_mut().zip(g.iter().zip(x)).zip(coefficients)
            {
                o.write(a * g + b * x + k);
            }
        }
    };
    // SAFETY: output chunk i starts at element i·c·64 of g and x, which are as long as the
    // output, so each c-wide piece of it meets pieces of g and x at least as long: the zips
    // write every element.
    unsafe { super::output_chunks(g.len(), c * 64, fill) }
}
