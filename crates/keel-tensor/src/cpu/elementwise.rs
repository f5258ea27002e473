//! Elementwise ops and strided copies on the CPU. Strided views are walked one innermost row at a
//! time, so the per-element cost is one multiply-add of a stride, not an index decomposition.

use crate::op::{Activation, BinaryOp, UnaryOp};
use crate::shape::{Shape, StridedView};
use rayon::prelude::*;

const CHUNK: usize = 1 << 14;

/// y = op(x).
pub(crate) fn unary(x: &[f32], op: UnaryOp) -> Vec<f32> {
    // One loop per variant (the variant is a constant inside each), so each one vectorises.
    macro_rules! each_variant {
        ($($pat:pat),*) => {
            match op {
                $($pat => map(x, move |v| op.apply(v)),)*
            }
        };
    }
    each_variant!(
        UnaryOp::Relu,
        UnaryOp::Relu6,
        UnaryOp::Sigmoid,
        UnaryOp::Tanh,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Affine { .. },
        UnaryOp::MaxScalar(_),
        UnaryOp::MinScalar(_),
        UnaryOp::PowScalar(_),
        UnaryOp::Above(_),
        UnaryOp::Sign
    )
}

/// y = f(x), in parallel chunks.
#[inline(always)]
fn map(x: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    let mut y = super::output(x.len());
    y.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(o, i)| o.iter_mut().zip(i).for_each(|(o, &v)| *o = f(v)));
    y
}

/// The innermost extent and stride of a view (1 and 1 for a scalar view).
fn last(v: &StridedView) -> (usize, usize) {
    (
        v.shape.last().copied().unwrap_or(1),
        v.strides.last().copied().unwrap_or(1),
    )
}

/// out = a ⊙ b over two views of the same shape; `out` is contiguous.
pub(crate) fn binary(
    a: &[f32],
    av: &StridedView,
    b: &[f32],
    bv: &StridedView,
    op: BinaryOp,
) -> Vec<f32> {
    let dense =
        |v: &StridedView| v.offset == 0 && v.strides == Shape::new(v.shape.clone()).strides();
    if dense(av) && dense(bv) {
        return zip_map(&a[..av.elem_count()], &b[..bv.elem_count()], op);
    }
    let mut out = super::output(av.elem_count());
    let (n, sa) = last(av);
    let (_, sb) = last(bv);
    out.par_chunks_mut(n).enumerate().for_each(|(row, o)| {
        let (oa, ob) = (av.offset_of(row * n), bv.offset_of(row * n));
        for (j, o) in o.iter_mut().enumerate() {
            *o = op.apply(a[oa + j * sa], b[ob + j * sb]);
        }
    });
    out
}

/// out = a ⊙ b for two contiguous operands of equal length, one vectorised loop per op.
fn zip_map(a: &[f32], b: &[f32], op: BinaryOp) -> Vec<f32> {
    fn run(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
        let mut out = super::output(a.len());
        out.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
            .for_each(|(o, (a, b))| {
                for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) {
                    *o = f(x, y);
                }
            });
        out
    }
    match op {
        BinaryOp::Add => run(a, b, |x, y| x + y),
        BinaryOp::Sub => run(a, b, |x, y| x - y),
        BinaryOp::Mul => run(a, b, |x, y| x * y),
        BinaryOp::Div => run(a, b, |x, y| x / y),
        BinaryOp::Max | BinaryOp::Min | BinaryOp::Greater | BinaryOp::Equal => {
            run(a, b, move |x, y| op.apply(x, y))
        }
    }
}

/// y = act(x · scale[c] + shift[c]) over the last axis of `channels` values.
pub(crate) fn channel_affine(x: &[f32], scale: &[f32], shift: &[f32], act: Activation) -> Vec<f32> {
    let c = scale.len();
    let mut y = super::output(x.len());
    y.par_chunks_mut(c * 64)
        .zip(x.par_chunks(c * 64))
        .for_each(|(o, i)| {
            for (o, i) in o.chunks_mut(c).zip(i.chunks(c)) {
                for ((o, &v), (&s, &t)) in o.iter_mut().zip(i).zip(scale.iter().zip(shift)) {
                    let v = v * s + t;
                    *o = match act {
                        Activation::None => v,
                        Activation::Relu => v.max(0.0),
                        Activation::Relu6 => v.clamp(0.0, 6.0),
                    };
                }
            }
        });
    y
}

/// Copies view `sv` of `src` into view `dv` of `dst` (views of equal shape). Any element type.
pub(crate) fn copy_strided<T: Copy + Send + Sync>(
    src: &[T],
    sv: &StridedView,
    dst: &mut [T],
    dv: &StridedView,
) {
    let (n, ss) = last(sv);
    let (_, ds) = last(dv);
    let rows = sv.elem_count() / n;
    let contiguous_dst =
        dv.offset == 0 && dv.strides == crate::Shape::new(dv.shape.clone()).strides();
    if contiguous_dst {
        dst[..rows * n]
            .par_chunks_mut(n)
            .enumerate()
            .for_each(|(row, o)| {
                let os = sv.offset_of(row * n);
                o.iter_mut()
                    .enumerate()
                    .for_each(|(j, o)| *o = src[os + j * ss]);
            });
    } else {
        for row in 0..rows {
            let (os, od) = (sv.offset_of(row * n), dv.offset_of(row * n));
            for j in 0..n {
                dst[od + j * ds] = src[os + j * ss];
            }
        }
    }
}
