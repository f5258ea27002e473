//! Elementwise ops and strided copies on the CPU. Strided views are walked one innermost row at a
//! time, so the per-element cost is one multiply-add of a stride, not an index decomposition.

use crate::op::{Activation, BinaryOp, UnaryOp};
use crate::shape::{Shape, StridedView};
use rayon::prelude::*;
use std::mem::MaybeUninit;

const CHUNK: usize = 1 << 14;

/// y = op(x).
pub(crate) fn unary(x: &[f32], op: UnaryOp) -> Vec<f32> {
    use UnaryOp as U;
    // Each closure names its variant rather than capturing `op`, so each instantiation of `map`
    // has a constant variant: no per-element match, and the loop vectorises.
    match op {
        U::Relu => map(x, |v| U::Relu.apply(v)),
        U::Relu6 => map(x, |v| U::Relu6.apply(v)),
        U::Sigmoid => map_wide(x, |v| U::Sigmoid.apply(v)),
        U::Tanh => map(x, |v| U::Tanh.apply(v)),
        U::Exp => map(x, |v| U::Exp.apply(v)),
        U::Log => map(x, |v| U::Log.apply(v)),
        U::Sqrt => map(x, |v| U::Sqrt.apply(v)),
        U::Neg => map(x, |v| U::Neg.apply(v)),
        U::Abs => map(x, |v| U::Abs.apply(v)),
        U::Affine { mul, add } => map(x, move |v| U::Affine { mul, add }.apply(v)),
        U::MaxScalar(s) => map(x, move |v| U::MaxScalar(s).apply(v)),
        U::MinScalar(s) => map(x, move |v| U::MinScalar(s).apply(v)),
        U::PowScalar(s) => map(x, move |v| U::PowScalar(s).apply(v)),
        U::Above(s) => map(x, move |v| U::Above(s).apply(v)),
        U::Sign => map(x, |v| U::Sign.apply(v)),
        U::Silu => map_wide(x, |v| U::Silu.apply(v)),
        U::HardSigmoid => map(x, |v| U::HardSigmoid.apply(v)),
        U::HardSwish => map(x, |v| U::HardSwish.apply(v)),
        U::Gelu => map(x, |v| U::Gelu.apply(v)),
        U::GeluDerivative => map(x, |v| U::GeluDerivative.apply(v)),
    }
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

/// [`map`] in the widest SIMD build this CPU runs (AVX-512 or AVX2, chosen at run time), for
/// ops with enough arithmetic per element to gain from it (sigmoid and SiLU: an exponential and
/// a division).
fn map_wide(x: &[f32], f: impl Fn(f32) -> f32 + Sync + Copy) -> Vec<f32> {
    #[inline(always)]
    fn each(x: &[f32], o: &mut [MaybeUninit<f32>], f: impl Fn(f32) -> f32) {
        for (o, &v) in o.iter_mut().zip(x) {
            o.write(f(v));
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512(x: &[f32], o: &mut [MaybeUninit<f32>], f: impl Fn(f32) -> f32) {
            each(x, o, f)
        }
        #[target_feature(enable = "avx2,fma")]
        fn avx2(x: &[f32], o: &mut [MaybeUninit<f32>], f: impl Fn(f32) -> f32) {
            each(x, o, f)
        }
        let fill = |i: usize, o: &mut [MaybeUninit<f32>]| {
            let x = &x[i * CHUNK..];
            if is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU supports AVX-512F (checked just above).
                unsafe { avx512(x, o, f) }
            } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                unsafe { avx2(x, o, f) }
            } else {
                each(x, o, f)
            }
        };
        // SAFETY: output chunk i and x[i·CHUNK..] are equally long (x.len() elements in all),
        // so each writes every element.
        unsafe { super::output_chunks(x.len(), CHUNK, fill) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    map(x, f)
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
    use BinaryOp as B;
    // As in `unary`: one closure type per variant, so no per-element match.
    match op {
        B::Add => binary_with(a, av, b, bv, |x, y| B::Add.apply(x, y)),
        B::Sub => binary_with(a, av, b, bv, |x, y| B::Sub.apply(x, y)),
        B::Mul => binary_with(a, av, b, bv, |x, y| B::Mul.apply(x, y)),
        B::Div => binary_with(a, av, b, bv, |x, y| B::Div.apply(x, y)),
        B::Max => binary_with(a, av, b, bv, |x, y| B::Max.apply(x, y)),
        B::Min => binary_with(a, av, b, bv, |x, y| B::Min.apply(x, y)),
        B::Greater => binary_with(a, av, b, bv, |x, y| B::Greater.apply(x, y)),
        B::Equal => binary_with(a, av, b, bv, |x, y| B::Equal.apply(x, y)),
        B::ReluGrad => binary_with(a, av, b, bv, |x, y| B::ReluGrad.apply(x, y)),
        B::Relu6Grad => binary_with(a, av, b, bv, |x, y| B::Relu6Grad.apply(x, y)),
        B::SiluGrad => binary_with(a, av, b, bv, |x, y| B::SiluGrad.apply(x, y)),
        B::HardSwishGrad => binary_with(a, av, b, bv, |x, y| B::HardSwishGrad.apply(x, y)),
    }
}

/// out = f(a, b) over two views of the same shape, one innermost row at a time; rows that are
/// contiguous or broadcast in both operands run as plain slice loops.
#[inline(always)]
fn binary_with(
    a: &[f32],
    av: &StridedView,
    b: &[f32],
    bv: &StridedView,
    f: impl Fn(f32, f32) -> f32 + Sync,
) -> Vec<f32> {
    let dense =
        |v: &StridedView| v.offset == 0 && v.strides == Shape::new(v.shape.clone()).strides();
    if dense(av) && dense(bv) {
        let (a, b) = (&a[..av.elem_count()], &b[..bv.elem_count()]);
        let fill = |i: usize, o: &mut [MaybeUninit<f32>]| {
            for ((o, &x), &y) in o.iter_mut().zip(&a[i * CHUNK..]).zip(&b[i * CHUNK..]) {
                o.write(f(x, y));
            }
        };
        // SAFETY: a and b are as long as the output, so chunk i of each is as long as output
        // chunk i and the zip writes every element.
        return unsafe { super::output_chunks(a.len(), CHUNK, fill) };
    }
    let (n, sa) = last(av);
    let (_, sb) = last(bv);
    let fill = |row: usize, o: &mut [MaybeUninit<f32>]| {
        let (oa, ob) = (av.offset_of(row * n), bv.offset_of(row * n));
        match (sa, sb) {
            (1, 1) => {
                let (a, b) = (&a[oa..oa + n], &b[ob..ob + n]);
                for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) {
                    o.write(f(x, y));
                }
            }
            (1, 0) => {
                let y = b[ob];
                for (o, &x) in o.iter_mut().zip(&a[oa..oa + n]) {
                    o.write(f(x, y));
                }
            }
            (0, 1) => {
                let x = a[oa];
                for (o, &y) in o.iter_mut().zip(&b[ob..ob + n]) {
                    o.write(f(x, y));
                }
            }
            _ => {
                for (j, o) in o.iter_mut().enumerate() {
                    o.write(f(a[oa + j * sa], b[ob + j * sb]));
                }
            }
        }
    };
    // SAFETY: every branch writes all n elements of each row (the slices are n long).
    unsafe { super::output_chunks(av.elem_count(), n, fill) }
}

/// y = act(x · scale[c] + shift[c]) over the last axis of `channels` values.
pub(crate) fn channel_affine(x: &[f32], scale: &[f32], shift: &[f32], act: Activation) -> Vec<f32> {
    // One instantiation per activation, so the inner loop has no match and vectorises.
    match act {
        Activation::None => affine_with(x, scale, shift, |v| v),
        Activation::Relu => affine_with(x, scale, shift, |v| UnaryOp::Relu.apply(v)),
        Activation::Relu6 => affine_with(x, scale, shift, |v| UnaryOp::Relu6.apply(v)),
        Activation::Silu => affine_with(x, scale, shift, |v| UnaryOp::Silu.apply(v)),
        Activation::HardSwish => affine_with(x, scale, shift, |v| UnaryOp::HardSwish.apply(v)),
    }
}

/// y = act(x · scale[c] + shift[c]), 64 pixels per parallel chunk.
#[inline(always)]
fn affine_with(
    x: &[f32],
    scale: &[f32],
    shift: &[f32],
    act: impl Fn(f32) -> f32 + Sync,
) -> Vec<f32> {
    let c = scale.len();
    let fill = |i: usize, o: &mut [MaybeUninit<f32>]| {
        for (o, i) in o.chunks_mut(c).zip(x[i * c * 64..].chunks(c)) {
            for ((o, &v), (&s, &t)) in o.iter_mut().zip(i).zip(scale.iter().zip(shift)) {
                o.write(act(v * s + t));
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
