//! Elementwise ops and strided copies on the CPU. Strided views are walked one innermost row at a
//! time, so the per-element cost is one multiply-add of a stride, not an index decomposition.

use crate::op::{Activation, BinaryOp, UnaryOp};
use crate::shape::{Shape, StridedView};
use rayon::prelude::*;
use std::mem::MaybeUninit;

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
    let fill = |i: usize, o: &mut [MaybeUninit<f32>]| {
        for (o, &v) in o.iter_mut().zip(&x[i * CHUNK..]) {
            o.write(f(v));
        }
    };
    // SAFETY: output chunk i and x[i·CHUNK..] are equally long (x.len() elements in all), so
    // the zip writes every element.
    unsafe { super::output_chunks(x.len(), CHUNK, fill) }
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
    let (n, sa) = last(av);
    let (_, sb) = last(bv);
    let fill = |row: usize, o: &mut [MaybeUninit<f32>]| {
        let (oa, ob) = (av.offset_of(row * n), bv.offset_of(row * n));
        for (j, o) in o.iter_mut().enumerate() {
            o.write(op.apply(a[oa + j * sa], b[ob + j * sb]));
        }
    };
    // SAFETY: `fill` writes every element of each row.
    unsafe { super::output_chunks(av.elem_count(), n, fill) }
}

/// out = a ⊙ b for two contiguous operands of equal length, one vectorised loop per op.
fn zip_map(a: &[f32], b: &[f32], op: BinaryOp) -> Vec<f32> {
    fn run(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
        let fill = |i: usize, o: &mut [MaybeUninit<f32>]| {
            for ((o, &x), &y) in o.iter_mut().zip(&a[i * CHUNK..]).zip(&b[i * CHUNK..]) {
                o.write(f(x, y));
            }
        };
        // SAFETY: a and b are as long as the output, so chunk i of each is as long as output
        // chunk i and the zip writes every element.
        unsafe { super::output_chunks(a.len(), CHUNK, fill) }
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
    let fill = |i: usize, o: &mut [MaybeUninit<f32>]| {
        for (o, i) in o.chunks_mut(c).zip(x[i * c * 64..].chunks(c)) {
            for ((o, &v), (&s, &t)) in o.iter_mut().zip(i).zip(scale.iter().zip(shift)) {
                let v = v * s + t;
                o.write(match act {
                    Activation::None => v,
                    Activation::Relu => v.max(0.0),
                    Activation::Relu6 => v.clamp(0.0, 6.0),
                });
            }
        }
    };
    // SAFETY: output chunk i and x[i·c·64..] start at the same element and x is as long as the
    // output, so each c-wide piece of the chunk meets a piece of x at least as long, and c
    // scale/shift values: the zips write every element.
    unsafe { super::output_chunks(x.len(), c * 64, fill) }
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
