//! Max and average pooling on the CPU, parallel over output rows (TensorFlow border semantics:
//! padded positions never count; a NaN in a window is its maximum).

use crate::geometry::WindowGeometry;
use crate::op::{nan_max, ranks_above, PoolOp};
use rayon::prelude::*;

/// Pools NHWC `x` with the window of `g`.
pub(crate) fn pool2d(x: &[f32], g: &WindowGeometry, op: PoolOp) -> Vec<f32> {
    let c = g.in_c;
    let row_len = g.out_w * c;
    let mut y = super::output(g.batch * g.out_h * row_len);
    y.par_chunks_mut(row_len)
        .enumerate()
        .for_each(|(r, out_row)| {
            let n = r / g.out_h;
            let oh = r % g.out_h;
            let h0 = (oh * g.stride_h) as isize - g.pad_top as isize;
            let h_range = h0.max(0) as usize
                ..((h0 + g.kernel_h as isize).min(g.in_h as isize)).max(0) as usize;
            for ow in 0..g.out_w {
                let w0 = (ow * g.stride_w) as isize - g.pad_left as isize;
                let w_range = w0.max(0) as usize
                    ..((w0 + g.kernel_w as isize).min(g.in_w as isize)).max(0) as usize;
                let out = &mut out_row[ow * c..][..c];
                out.fill(if op == PoolOp::Max {
                    f32::NEG_INFINITY
                } else {
                    0.0
                });
                for ih in h_range.clone() {
                    for iw in w_range.clone() {
                        let pixel = &x[((n * g.in_h + ih) * g.in_w + iw) * c..][..c];
                        match op {
                            PoolOp::Max => out
                                .iter_mut()
                                .zip(pixel)
                                .for_each(|(o, &v)| *o = nan_max(*o, v)),
                            PoolOp::Avg => out.iter_mut().zip(pixel).for_each(|(o, &v)| *o += v),
                        }
                    }
                }
                if op == PoolOp::Avg {
                    let count = (h_range.len() * w_range.len()).max(1) as f32;
                    out.iter_mut().for_each(|o| *o /= count);
                }
            }
        });
    y
}

/// dL/dx of pooling: max sends each output's gradient to the first maximum of its window
/// (row-major scan order), average spreads it evenly over the window's real pixels.
/// Parallel over images; within one image the windows may overlap, so it runs in order.
pub(crate) fn pool2d_backward(x: &[f32], dy: &[f32], g: &WindowGeometry, op: PoolOp) -> Vec<f32> {
    let c = g.in_c;
    let in_img = g.in_h * g.in_w * c;
    let out_img = g.out_h * g.out_w * c;
    let mut dx = super::zeros(g.batch * in_img);
    dx.par_chunks_mut(in_img)
        .enumerate()
        .for_each(|(n, dx_img)| {
            let x_img = &x[n * in_img..][..in_img];
            let dy_img = &dy[n * out_img..][..out_img];
            // Max: per channel, the value and offset of the window's first maximum so far.
            let mut best = vec![0f32; c];
            let mut best_at = vec![0usize; c];
            for oh in 0..g.out_h {
                let h0 = (oh * g.stride_h) as isize - g.pad_top as isize;
                let hs = h0.max(0) as usize
                    ..((h0 + g.kernel_h as isize).min(g.in_h as isize)).max(0) as usize;
                for ow in 0..g.out_w {
                    let w0 = (ow * g.stride_w) as isize - g.pad_left as isize;
                    let ws = w0.max(0) as usize
                        ..((w0 + g.kernel_w as isize).min(g.in_w as isize)).max(0) as usize;
                    let grad = &dy_img[(oh * g.out_w + ow) * c..][..c];
                    match op {
                        PoolOp::Max => {
                            // All channels at once, window pixels in row-major order: the first
                            // pixel sets the best, a later one replaces it only when strictly
                            // greater (or the first NaN).
                            let mut pixels = hs
                                .clone()
                                .flat_map(|ih| ws.clone().map(move |iw| (ih * g.in_w + iw) * c));
                            let Some(first) = pixels.next() else {
                                continue;
                            };
                            best.copy_from_slice(&x_img[first..][..c]);
                            best_at.fill(first);
                            for at in pixels {
                                let pixel = &x_img[at..][..c];
                                for ((b, b_at), &v) in best.iter_mut().zip(&mut best_at).zip(pixel)
                                {
                                    if ranks_above(v, *b) {
                                        *b = v;
                                        *b_at = at;
                                    }
                                }
                            }
                            for (ch, (&at, &gv)) in best_at.iter().zip(grad).enumerate() {
                                dx_img[at + ch] += gv;
                            }
                        }
                        PoolOp::Avg => {
                            let count = (hs.len() * ws.len()).max(1) as f32;
                            for ih in hs.clone() {
                                for iw in ws.clone() {
                                    let dst = &mut dx_img[(ih * g.in_w + iw) * c..][..c];
                                    dst.iter_mut()
                                        .zip(grad)
                                        .for_each(|(d, &gv)| *d += gv / count);
                                }
                            }
                        }
                    }
                }
            }
        });
    dx
}
