//! One launch function per kernel: fills the kernel's parameter block, binds the buffers and
//! records the dispatch. Shapes were validated by the op layer (`crate::ops`) before we get here.
//! Tensors larger than one storage binding are processed in chunks where the kernel allows it
//! (elementwise ops along the flat index, convolution and pooling along the batch).

use super::kernels::{Binding, Operand, Shader};
use super::GpuBuffer;
use crate::geometry::WindowGeometry;
use crate::op::{Activation, BinaryOp, MatmulDims, PoolOp, ReduceOp, UnaryOp};
use crate::shape::StridedView;
use crate::{DType, Error, Result};
use bytemuck::{Pod, Zeroable};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct ElementwiseParams {
    len: u32,
    op: u32,
    rank: u32,
    channels: u32,
    scalar_a: f32,
    scalar_b: f32,
    out_offset: u32,
    a_offset: u32,
    shape: [u32; 8],
    a_strides: [u32; 8],
    b_strides: [u32; 8],
    b_offset: u32,
    index_base: u32,
    _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct LayoutParams {
    len: u32,
    rank: u32,
    src_offset: u32,
    dst_offset: u32,
    shape: [u32; 8],
    src_strides: [u32; 8],
    dst_strides: [u32; 8],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    trans_a: u32,
    trans_b: u32,
    a_batch_stride: u32,
    b_batch_stride: u32,
    c_batch_stride: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
pub(super) struct ConvParams {
    batch: u32,
    in_h: u32,
    in_w: u32,
    in_c: u32,
    out_h: u32,
    out_w: u32,
    out_c: u32,
    kernel_h: u32,
    kernel_w: u32,
    stride_h: u32,
    stride_w: u32,
    dilation_h: u32,
    dilation_w: u32,
    pad_top: u32,
    pad_left: u32,
    groups: u32,
    in_per_group: u32,
    out_per_group: u32,
    pub rows: u32,
    depth: u32,
    x_offset: u32,
    out_offset: u32,
    pub split_rows: u32,
    pub dy_offset: u32,
    /// Forward passes: 0 without an epilogue, else 1 + the activation's code.
    epilogue: u32,
    _pad: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
pub(super) struct PoolParams {
    batch: u32,
    in_h: u32,
    in_w: u32,
    channels: u32,
    out_h: u32,
    out_w: u32,
    pool_h: u32,
    pool_w: u32,
    stride_h: u32,
    stride_w: u32,
    pad_top: u32,
    pad_left: u32,
    x_offset: u32,
    out_offset: u32,
    pub dy_offset: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct ReduceParams {
    outer: u32,
    len: u32,
    inner: u32,
    op: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct SoftmaxParams {
    rows: u32,
    cols: u32,
    log: u32,
    _pad: u32,
}

/// Converts a size or index to the u32 the shaders use, or says which op it overflowed.
pub(super) fn u32_of(op: &'static str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| {
        Error::invalid(
            op,
            format!("{v} does not fit the 32-bit indices of the GPU kernels"),
        )
    })
}

pub(super) fn bytes_of_elems(n: usize) -> u64 {
    n as u64 * 4
}

/// A window `[start, start + len)` (in elements) of a buffer, bound from an aligned byte offset;
/// returns the binding and the element offset of `start` inside it.
fn window<'a>(slot: u32, buf: &'a GpuBuffer, start: usize, len: usize) -> (Binding<'a>, u32) {
    let align = buf.context().limits.min_storage_buffer_offset_alignment as u64;
    let byte_start = bytes_of_elems(start);
    let aligned = byte_start - byte_start % align;
    let size = (byte_start - aligned) + bytes_of_elems(len);
    (
        Binding {
            slot,
            buffer: buf,
            offset: aligned,
            size,
        },
        ((byte_start - aligned) / 4) as u32,
    )
}

/// Elements one binding may hold, leaving room for the alignment slack of [`window`].
fn elems_per_binding(buf: &GpuBuffer) -> usize {
    let ctx = buf.context();
    ((ctx.max_binding_bytes() - ctx.limits.min_storage_buffer_offset_alignment as u64) / 4) as usize
}

/// Splits `[0, total)` into chunks of whole `unit`s, each at most `max_elems` elements.
fn chunks(
    op: &'static str,
    total: usize,
    unit: usize,
    max_elems: usize,
) -> Result<Vec<(usize, usize)>> {
    let units_per_chunk = max_elems / unit;
    if units_per_chunk == 0 {
        return Err(Error::invalid(op, format!("one slice of {unit} elements is larger than a storage binding of {max_elems} elements")));
    }
    let step = units_per_chunk * unit;
    Ok((0..total)
        .step_by(step)
        .map(|s| (s, step.min(total - s)))
        .collect())
}

fn dims8(v: &[usize], op: &'static str) -> Result<[u32; 8]> {
    let mut out = [0u32; 8];
    for (o, &x) in out.iter_mut().zip(v) {
        *o = u32_of(op, x)?;
    }
    Ok(out)
}

/// Runs the elementwise kernel `entry` over `len` elements, in chunks that each fit one storage
/// binding: `input` (binding 1) and `out` (binding 3) are bound a window at a time, `whole` as
/// they are. `params(start, n, input_offset, out_offset)` fills the chunk's parameter block.
fn over_flat_chunks(
    op: &'static str,
    entry: &'static str,
    input: Option<&GpuBuffer>,
    out: &GpuBuffer,
    len: usize,
    whole: &[Binding<'_>],
    params: impl Fn(usize, usize, u32, u32) -> Result<ElementwiseParams>,
) -> Result<()> {
    let ctx = out.context();
    for (start, n) in chunks(op, len, 1, elems_per_binding(out))? {
        let (dst, dst_off) = window(3, out, start, n);
        let mut bindings = vec![dst];
        let src_off = match input {
            Some(x) => {
                let (src, off) = window(1, x, start, n);
                bindings.push(src);
                off
            }
            None => 0,
        };
        bindings.extend_from_slice(whole);
        let p = params(start, n, src_off, dst_off)?;
        ctx.launch(
            op,
            Shader::Elementwise,
            entry,
            &p,
            &bindings,
            ctx.grid_for(op, n as u64)?,
        )?;
    }
    Ok(())
}

/// Fills the first `out.bytes()/4` elements of `out` with `value`.
pub(crate) fn fill(out: &GpuBuffer, value: f32) -> Result<()> {
    let len = (out.bytes() / 4) as usize;
    over_flat_chunks(
        "fill",
        "fill",
        None,
        out,
        len,
        &[],
        |_, n, _, out_offset| {
            Ok(ElementwiseParams {
                len: u32_of("fill", n)?,
                scalar_a: value,
                out_offset,
                ..Default::default()
            })
        },
    )
}

/// Fills `out` with the dropout mask of `seed` ([`crate::op::mask_value`]).
pub(crate) fn dropout_mask(out: &GpuBuffer, seed: u64, rate: f32, keep: f32) -> Result<()> {
    let len = (out.bytes() / 4) as usize;
    over_flat_chunks(
        "dropout_mask",
        "dropout_mask",
        None,
        out,
        len,
        &[],
        |start, n, _, out_offset| {
            Ok(ElementwiseParams {
                len: u32_of("dropout_mask", n)?,
                op: seed as u32,
                rank: (seed >> 32) as u32,
                scalar_a: rate,
                scalar_b: keep,
                out_offset,
                index_base: u32_of("dropout_mask", start)?,
                ..Default::default()
            })
        },
    )
}

/// y = op(x), elementwise.
pub(crate) fn unary(x: &GpuBuffer, len: usize, op: UnaryOp) -> Result<GpuBuffer> {
    let (code, scalar_a, scalar_b) = op.code();
    unary_code(x, len, code, scalar_a, scalar_b)
}

/// The `unary` entry's codes for dtype conversions (after `UnaryOp::code`'s).
const I32_TO_F32: u32 = 30;
const F32_TO_I32: u32 = 31;

/// The elements of `x` converted to `to` (i32 ↔ f32; f32 → i32 truncates, saturates, and
/// makes NaN 0, as Rust's `as`) on the device.
pub(crate) fn convert(x: &GpuBuffer, len: usize, to: DType) -> Result<GpuBuffer> {
    let code = match to {
        DType::I32 => F32_TO_I32,
        _ => I32_TO_F32,
    };
    unary_code(x, len, code, 0.0, 0.0)
}

fn unary_code(
    x: &GpuBuffer,
    len: usize,
    code: u32,
    scalar_a: f32,
    scalar_b: f32,
) -> Result<GpuBuffer> {
    let out = x.context().alloc("unary", bytes_of_elems(len))?;
    over_flat_chunks(
        "unary",
        "unary",
        Some(x),
        &out,
        len,
        &[],
        |_, n, a_offset, out_offset| {
            Ok(ElementwiseParams {
                len: u32_of("unary", n)?,
                op: code,
                scalar_a,
                scalar_b,
                a_offset,
                out_offset,
                ..Default::default()
            })
        },
    )?;
    Ok(out)
}

/// out = a ⊙ b over strided (broadcast) views of both inputs; `out` has the views' shape.
pub(crate) fn binary(
    a: &GpuBuffer,
    av: &StridedView,
    b: &GpuBuffer,
    bv: &StridedView,
    op: BinaryOp,
) -> Result<GpuBuffer> {
    let name = op.name();
    let ctx = a.context();
    let len = av.elem_count();
    let out = ctx.alloc(name, bytes_of_elems(len))?;
    let p = ElementwiseParams {
        len: u32_of(name, len)?,
        op: op.code(),
        rank: av.shape.len() as u32,
        shape: dims8(&av.shape, name)?,
        a_strides: dims8(&av.strides, name)?,
        b_strides: dims8(&bv.strides, name)?,
        a_offset: u32_of(name, av.offset)?,
        b_offset: u32_of(name, bv.offset)?,
        ..Default::default()
    };
    let bindings = [
        Binding::whole(1, a),
        Binding::whole(2, b),
        Binding::whole(3, &out),
    ];
    ctx.launch(
        name,
        Shader::Elementwise,
        "binary",
        &p,
        &bindings,
        ctx.grid_for(name, len as u64)?,
    )?;
    Ok(out)
}

/// An activation's code in `shaders/activation.wgsl`.
fn activation_code(act: Activation) -> u32 {
    match act {
        Activation::None => 0,
        Activation::Relu => 1,
        Activation::Relu6 => 2,
        Activation::Silu => 3,
        Activation::HardSwish => 4,
    }
}

/// y = act(x · scale[c] + shift[c]) over the last axis of `channels` values.
pub(crate) fn channel_affine(
    x: &GpuBuffer,
    len: usize,
    scale: &GpuBuffer,
    shift: &GpuBuffer,
    channels: usize,
    act: Activation,
) -> Result<GpuBuffer> {
    const OP: &str = "channel_affine";
    let out = x.context().alloc(OP, bytes_of_elems(len))?;
    let whole = [Binding::whole(2, scale), Binding::whole(4, shift)];
    over_flat_chunks(
        OP,
        "channel_affine",
        Some(x),
        &out,
        len,
        &whole,
        |start, n, a_offset, out_offset| {
            Ok(ElementwiseParams {
                len: u32_of(OP, n)?,
                op: activation_code(act),
                channels: u32_of(OP, channels)?,
                a_offset,
                out_offset,
                index_base: (start % channels) as u32,
                ..Default::default()
            })
        },
    )?;
    Ok(out)
}

/// Copies the strided view `sv` of `src` into the strided view `dv` of `dst` (same shape).
pub(crate) fn copy_strided(
    op: &'static str,
    src: &GpuBuffer,
    sv: &StridedView,
    dst: &GpuBuffer,
    dv: &StridedView,
) -> Result<()> {
    let ctx = src.context();
    let len = sv.elem_count();
    let p = LayoutParams {
        len: u32_of(op, len)?,
        rank: sv.shape.len() as u32,
        src_offset: u32_of(op, sv.offset)?,
        dst_offset: u32_of(op, dv.offset)?,
        shape: dims8(&sv.shape, op)?,
        src_strides: dims8(&sv.strides, op)?,
        dst_strides: dims8(&dv.strides, op)?,
    };
    let bindings = [Binding::whole(1, src), Binding::whole(2, dst)];
    ctx.launch(
        op,
        Shader::Layout,
        "copy_strided",
        &p,
        &bindings,
        ctx.grid_for(op, len as u64)?,
    )
}

/// C[batch, m, n] = op(A) · op(B).
pub(crate) fn matmul(
    a: &GpuBuffer,
    b: &GpuBuffer,
    operand: Operand,
    d: MatmulDims,
) -> Result<GpuBuffer> {
    const OP: &str = "matmul";
    let ctx = a.context();
    let out = ctx.alloc(OP, bytes_of_elems(d.batch * d.m * d.n))?;
    let p = MatmulParams {
        m: u32_of(OP, d.m)?,
        n: u32_of(OP, d.n)?,
        k: u32_of(OP, d.k)?,
        trans_a: d.trans_a as u32,
        trans_b: d.trans_b as u32,
        a_batch_stride: u32_of(OP, d.a_batch_stride)?,
        b_batch_stride: u32_of(OP, d.b_batch_stride)?,
        c_batch_stride: u32_of(OP, d.m * d.n)?,
    };
    let bindings = [
        Binding::whole(1, a),
        Binding::whole(2, b),
        Binding::whole(3, &out),
    ];
    let batch = u32_of(OP, d.batch)?;
    let (shader, groups) = if ctx.subgroup_gemm() {
        (
            Shader::MatmulSubgroup(operand),
            ctx.subgroup_grid(OP, d.m, d.n, batch)?,
        )
    } else {
        let groups = [d.n.div_ceil(64) as u32, d.m.div_ceil(64) as u32, batch];
        (Shader::Matmul(operand), groups)
    };
    ctx.launch(OP, shader, "matmul", &p, &bindings, groups)?;
    Ok(out)
}

pub(super) fn conv_params(
    g: &WindowGeometry,
    batch: usize,
    x_offset: u32,
    out_offset: u32,
) -> Result<ConvParams> {
    const OP: &str = "conv2d";
    let u = |v: usize| u32_of(OP, v);
    Ok(ConvParams {
        batch: u(batch)?,
        in_h: u(g.in_h)?,
        in_w: u(g.in_w)?,
        in_c: u(g.in_c)?,
        out_h: u(g.out_h)?,
        out_w: u(g.out_w)?,
        out_c: u(g.out_c)?,
        kernel_h: u(g.kernel_h)?,
        kernel_w: u(g.kernel_w)?,
        stride_h: u(g.stride_h)?,
        stride_w: u(g.stride_w)?,
        dilation_h: u(g.dilation_h)?,
        dilation_w: u(g.dilation_w)?,
        pad_top: u(g.pad_top)?,
        pad_left: u(g.pad_left)?,
        groups: u(g.groups)?,
        in_per_group: u(g.in_per_group())?,
        out_per_group: u(g.out_per_group())?,
        rows: u(batch * g.out_h * g.out_w)?,
        depth: u(g.kernel_h * g.kernel_w * g.in_per_group())?,
        x_offset,
        out_offset,
        split_rows: 0,
        dy_offset: 0,
        epilogue: 0,
        _pad: [0; 3],
    })
}

/// A batched operand bound one chunk of images at a time: its buffer, its elements per image,
/// and its binding slot.
pub(super) struct PerImage<'a> {
    pub buffer: &'a GpuBuffer,
    pub per_image: usize,
    pub slot: u32,
}

impl<'a> PerImage<'a> {
    /// An operand shaped like the input images of `g` (x, or the input gradient).
    pub fn input(buffer: &'a GpuBuffer, g: &WindowGeometry, slot: u32) -> Self {
        let per_image = g.in_h * g.in_w * g.in_c;
        PerImage {
            buffer,
            per_image,
            slot,
        }
    }

    /// An operand shaped like the output images of `g` (y, or the output gradient).
    pub fn output(buffer: &'a GpuBuffer, g: &WindowGeometry, slot: u32) -> Self {
        let per_image = g.out_h * g.out_w * g.out_c;
        PerImage {
            buffer,
            per_image,
            slot,
        }
    }
}

/// Runs `launch_chunk(images, windows)` over chunks of a batch small enough that every operand's
/// slice fits one storage binding; `windows[i]` is operand i's binding and the element offset of
/// the chunk's first image inside it.
pub(super) fn over_image_chunks(
    op: &'static str,
    batch: usize,
    operands: &[PerImage<'_>],
    mut launch_chunk: impl FnMut(usize, &[(Binding<'_>, u32)]) -> Result<()>,
) -> Result<()> {
    let Some(first_operand) = operands.first() else {
        return Ok(());
    };
    let max = elems_per_binding(first_operand.buffer);
    let largest = operands
        .iter()
        .map(|o| o.per_image)
        .max()
        .unwrap_or(1)
        .max(1);
    let per_chunk = max / largest;
    if per_chunk == 0 {
        return Err(Error::TooLarge {
            op,
            what: format!("one image ({largest} elements of one operand)"),
            bytes: bytes_of_elems(largest),
            limit: first_operand.buffer.context().max_binding_bytes(),
            limit_name: "max_storage_buffer_binding_size",
        });
    }
    for first in (0..batch).step_by(per_chunk) {
        let n = per_chunk.min(batch - first);
        let windows: Vec<(Binding<'_>, u32)> = operands
            .iter()
            .map(|o| window(o.slot, o.buffer, first * o.per_image, n * o.per_image))
            .collect();
        launch_chunk(n, &windows)?;
    }
    Ok(())
}

/// Runs `launch_chunk(images, x_binding, x_off, y_binding, y_off)` over batch chunks small enough
/// that input (slot 1) and output (slot 3) slices each fit one storage binding.
fn over_batch_chunks(
    op: &'static str,
    x: &GpuBuffer,
    out: &GpuBuffer,
    g: &WindowGeometry,
    mut launch_chunk: impl FnMut(usize, Binding<'_>, u32, Binding<'_>, u32) -> Result<()>,
) -> Result<()> {
    let operands = [PerImage::input(x, g, 1), PerImage::output(out, g, 3)];
    over_image_chunks(op, g.batch, &operands, |n, w| {
        launch_chunk(n, w[0].0, w[0].1, w[1].0, w[1].1)
    })
}

/// Convolution by implicit GEMM (any groups), or the direct depthwise kernel when every group
/// has one input channel.
pub(crate) fn conv2d(
    x: &GpuBuffer,
    w: &GpuBuffer,
    operand: Operand,
    g: &WindowGeometry,
    epilogue: Option<GpuEpilogue<'_>>,
) -> Result<GpuBuffer> {
    const OP: &str = "conv2d";
    let ctx = x.context();
    let out = ctx.alloc(OP, bytes_of_elems(g.out_shape().elem_count()))?;
    let depthwise = g.in_per_group() == 1 && g.groups > 1;
    // Without an epilogue the kernel is bound in its place; the shaders do not read it then.
    let (scale, shift, code) = match epilogue {
        Some(e) => (e.scale, e.shift, 1 + activation_code(e.act)),
        None => (w, w, 0),
    };
    over_batch_chunks(OP, x, &out, g, |n, xb, xo, yb, yo| {
        let p = ConvParams {
            epilogue: code,
            ..conv_params(g, n, xo, yo)?
        };
        let bindings = [
            xb,
            Binding::whole(2, w),
            yb,
            Binding::whole(5, scale),
            Binding::whole(6, shift),
        ];
        if depthwise {
            let three_by_three = (g.kernel_h, g.kernel_w, g.stride_h, g.stride_w) == (3, 3, 1, 1)
                && (g.dilation_h, g.dilation_w) == (1, 1);
            // Eight pixels of one row per invocation, of two rows in the 3×3 kernel.
            let (entry, rows) = if three_by_three {
                ("depthwise_3x3", g.out_h.div_ceil(2))
            } else {
                ("depthwise", g.out_h)
            };
            let runs = n * rows * g.out_w.div_ceil(8) * g.out_c;
            let grid = ctx.grid_for(OP, runs as u64)?;
            ctx.launch(OP, Shader::Depthwise(operand), entry, &p, &bindings, grid)
        } else {
            let rows = p.rows as usize;
            let (shader, grid) = if ctx.subgroup_gemm() {
                let grid = ctx.subgroup_grid(OP, rows, g.out_per_group(), p.groups)?;
                (Shader::Conv2dSubgroup(operand), grid)
            } else {
                let grid = [
                    g.out_per_group().div_ceil(64) as u32,
                    rows.div_ceil(64) as u32,
                    p.groups,
                ];
                (Shader::Conv2d(operand), grid)
            };
            ctx.launch(OP, shader, "conv2d", &p, &bindings, grid)
        }
    })?;
    Ok(out)
}

/// What a convolution's output pass applies: y = act(y · scale[c] + shift[c]).
#[derive(Clone, Copy)]
pub(crate) struct GpuEpilogue<'a> {
    pub scale: &'a GpuBuffer,
    pub shift: &'a GpuBuffer,
    pub act: Activation,
}

/// The pooling kernels' parameters for `batch` images of `g` at the given element offsets.
pub(super) fn pool_params(
    op: &'static str,
    g: &WindowGeometry,
    batch: usize,
    x_offset: u32,
    out_offset: u32,
) -> Result<PoolParams> {
    let u = |v: usize| u32_of(op, v);
    Ok(PoolParams {
        batch: u(batch)?,
        in_h: u(g.in_h)?,
        in_w: u(g.in_w)?,
        channels: u(g.in_c)?,
        out_h: u(g.out_h)?,
        out_w: u(g.out_w)?,
        pool_h: u(g.kernel_h)?,
        pool_w: u(g.kernel_w)?,
        stride_h: u(g.stride_h)?,
        stride_w: u(g.stride_w)?,
        pad_top: u(g.pad_top)?,
        pad_left: u(g.pad_left)?,
        x_offset,
        out_offset,
        dy_offset: 0,
        _pad: 0,
    })
}

/// Max or average pooling.
pub(crate) fn pool2d(x: &GpuBuffer, g: &WindowGeometry, op: PoolOp) -> Result<GpuBuffer> {
    let (name, entry) = match op {
        PoolOp::Max => ("max_pool2d", "max_pool"),
        PoolOp::Avg => ("avg_pool2d", "avg_pool"),
    };
    let ctx = x.context();
    let out = ctx.alloc(name, bytes_of_elems(g.out_shape().elem_count()))?;
    over_batch_chunks(name, x, &out, g, |n, xb, xo, yb, yo| {
        let p = pool_params(name, g, n, xo, yo)?;
        let yb = Binding { slot: 2, ..yb };
        let grid = ctx.grid_for(name, (n * g.out_h * g.out_w * g.in_c) as u64)?;
        ctx.launch(name, Shader::Pool, entry, &p, &[xb, yb], grid)
    })?;
    Ok(out)
}

/// Reduces `x` viewed as [outer, len, inner] along the middle axis.
pub(crate) fn reduce(
    x: &GpuBuffer,
    outer: usize,
    len: usize,
    inner: usize,
    op: ReduceOp,
) -> Result<GpuBuffer> {
    const OP: &str = "reduce";
    let ctx = x.context();
    let outputs = outer * inner;
    let out = ctx.alloc(OP, bytes_of_elems(outputs))?;
    let p = ReduceParams {
        outer: u32_of(OP, outer)?,
        len: u32_of(OP, len)?,
        inner: u32_of(OP, inner)?,
        op: op.code(),
    };
    let bindings = [Binding::whole(1, x), Binding::whole(2, &out)];
    // Long axes with few outputs get a workgroup each; otherwise one invocation per output.
    if len >= 512 && outputs < 4096 {
        ctx.launch(
            OP,
            Shader::Reduce,
            "reduce_wide",
            &p,
            &bindings,
            ctx.grid(OP, outputs as u64)?,
        )?;
    } else {
        ctx.launch(
            OP,
            Shader::Reduce,
            "reduce_rows",
            &p,
            &bindings,
            ctx.grid_for(OP, outputs as u64)?,
        )?;
    }
    Ok(out)
}

/// Index of the maximum of `x` viewed as [outer, len, inner] along the middle axis (i32 output).
pub(crate) fn argmax(x: &GpuBuffer, outer: usize, len: usize, inner: usize) -> Result<GpuBuffer> {
    const OP: &str = "argmax";
    let ctx = x.context();
    let out = ctx.alloc(OP, bytes_of_elems(outer * inner))?;
    let p = ReduceParams {
        outer: u32_of(OP, outer)?,
        len: u32_of(OP, len)?,
        inner: u32_of(OP, inner)?,
        ..Default::default()
    };
    let bindings = [Binding::whole(1, x), Binding::whole(3, &out)];
    ctx.launch(
        OP,
        Shader::Reduce,
        "argmax_rows",
        &p,
        &bindings,
        ctx.grid_for(OP, (outer * inner) as u64)?,
    )?;
    Ok(out)
}

/// Softmax (or log-softmax) of each row of a [rows, cols] matrix.
pub(crate) fn softmax(x: &GpuBuffer, rows: usize, cols: usize, log: bool) -> Result<GpuBuffer> {
    let op = if log { "log_softmax" } else { "softmax" };
    let ctx = x.context();
    let out = ctx.alloc(op, bytes_of_elems(rows * cols))?;
    let p = SoftmaxParams {
        rows: u32_of(op, rows)?,
        cols: u32_of(op, cols)?,
        log: log as u32,
        _pad: 0,
    };
    let bindings = [Binding::whole(1, x), Binding::whole(2, &out)];
    ctx.launch(
        op,
        Shader::Softmax,
        "softmax",
        &p,
        &bindings,
        ctx.grid(op, rows as u64)?,
    )?;
    Ok(out)
}
