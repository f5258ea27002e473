//! Launch functions of the gradient kernels: convolution (implicit GEMMs in `conv2d.wgsl`,
//! direct kernels in `depthwise.wgsl`) and pooling (`pool.wgsl`). Like the forward kernels they
//! run over chunks of the batch whose slices fit one storage binding. Kernel gradients sum over
//! every output pixel; that sum is split across workgroups (and chunks), and the partial sums
//! are added by the reduce kernel afterwards, so small kernels still fill the device.

use super::kernels::{Binding, Operand, Shader};
use super::ops::{
    binary, bytes_of_elems, conv_params, over_image_chunks, pool_params, reduce, u32_of, PerImage,
};
use super::GpuBuffer;
use crate::geometry::WindowGeometry;
use crate::op::{BinaryOp, PoolOp, ReduceOp};
use crate::shape::StridedView;
use crate::Result;
use crate::{Error, Shape};

/// Output pixels summed by one split of a kernel gradient: enough to amortise a tile's set-up,
/// few enough that about `target` splits run side by side.
fn split_rows(rows: usize, target: usize) -> usize {
    rows.div_ceil(target.max(1)).max(256).div_ceil(16) * 16
}

fn is_depthwise(g: &WindowGeometry) -> bool {
    g.in_per_group() == 1 && g.groups > 1
}

/// dL/dx of conv2d from `dy` and the kernel `w`.
pub(crate) fn conv2d_backward_input(
    dy: &GpuBuffer,
    w: &GpuBuffer,
    g: &WindowGeometry,
) -> Result<GpuBuffer> {
    const OP: &str = "conv2d_backward_input";
    let ctx = dy.context();
    let in_img = g.in_h * g.in_w * g.in_c;
    let dx = ctx.alloc(OP, bytes_of_elems(g.batch * in_img))?;
    let operands = [PerImage::output(dy, g, 4), PerImage::input(&dx, g, 3)];
    over_image_chunks(OP, g.batch, &operands, |n, windows| {
        let [(dy_b, dy_o), (dx_b, dx_o)] = [windows[0], windows[1]];
        let mut p = conv_params(g, n, 0, dx_o)?;
        p.dy_offset = dy_o;
        let in_pixels = n * g.in_h * g.in_w;
        p.rows = u32_of(OP, in_pixels)?;
        let bindings = [dy_b, Binding::whole(2, w), dx_b];
        if is_depthwise(g) {
            let grid = ctx.grid_for(OP, (in_pixels * g.in_c) as u64)?;
            ctx.launch(
                OP,
                Shader::Depthwise(Operand::F32),
                "depthwise_backward_input",
                &p,
                &bindings,
                grid,
            )
        } else {
            let grid = [
                g.in_per_group().div_ceil(64) as u32,
                in_pixels.div_ceil(64) as u32,
                u32_of(OP, g.groups)?,
            ];
            ctx.launch(
                OP,
                Shader::Conv2d(Operand::F32),
                "backward_input",
                &p,
                &bindings,
                grid,
            )
        }
    })?;
    Ok(dx)
}

/// dL/dw (HWIO) of conv2d from the input `x` and `dy`.
pub(crate) fn conv2d_backward_kernel(
    x: &GpuBuffer,
    dy: &GpuBuffer,
    g: &WindowGeometry,
) -> Result<GpuBuffer> {
    const OP: &str = "conv2d_backward_kernel";
    let ctx = x.context();
    let depth = g.kernel_h * g.kernel_w * g.in_per_group();
    let kernel_elems = depth * g.out_c;
    // Aim for about 512 tiles (GEMM) or 64K invocations (depthwise) in flight.
    let target = if is_depthwise(g) {
        (1 << 16) / kernel_elems.max(1)
    } else {
        512 / (depth.div_ceil(64) * g.out_per_group().div_ceil(64) * g.groups).max(1)
    };
    let operands = [PerImage::input(x, g, 1), PerImage::output(dy, g, 4)];
    // Each chunk of images writes its splits' partial sums after the previous chunk's.
    let mut partials: Vec<(GpuBuffer, usize)> = Vec::new();
    over_image_chunks(OP, g.batch, &operands, |n, windows| {
        let [(x_b, x_o), (dy_b, dy_o)] = [windows[0], windows[1]];
        let rows = n * g.out_h * g.out_w;
        let per_split = split_rows(rows, target);
        let splits = rows.div_ceil(per_split);
        let partial = ctx.alloc(OP, bytes_of_elems(splits * kernel_elems))?;
        let mut p = conv_params(g, n, x_o, 0)?;
        p.dy_offset = dy_o;
        p.split_rows = u32_of(OP, per_split)?;
        let bindings = [x_b, dy_b, Binding::whole(3, &partial)];
        if is_depthwise(g) {
            let grid = ctx.grid_for(OP, (splits * kernel_elems) as u64)?;
            ctx.launch(
                OP,
                Shader::Depthwise(Operand::F32),
                "depthwise_backward_kernel",
                &p,
                &bindings,
                grid,
            )?;
        } else {
            let grid = [
                g.out_per_group().div_ceil(64) as u32,
                depth.div_ceil(64) as u32,
                u32_of(OP, splits * g.groups)?,
            ];
            ctx.launch(
                OP,
                Shader::Conv2d(Operand::F32),
                "backward_kernel",
                &p,
                &bindings,
                grid,
            )?;
        }
        partials.push((partial, splits));
        Ok(())
    })?;
    let flat = StridedView::contiguous(&Shape::new([kernel_elems]));
    let mut total: Option<GpuBuffer> = None;
    for (partial, splits) in partials {
        let sum = if splits == 1 {
            partial
        } else {
            reduce(&partial, 1, splits, kernel_elems, ReduceOp::Sum)?
        };
        total = Some(match total {
            None => sum,
            Some(t) => binary(&t, &flat, &sum, &flat, BinaryOp::Add)?,
        });
    }
    total.ok_or_else(|| Error::invalid(OP, "an empty batch"))
}

/// dL/dx of max or average pooling from the input `x` and `dy`.
pub(crate) fn pool2d_backward(
    x: &GpuBuffer,
    dy: &GpuBuffer,
    g: &WindowGeometry,
    op: PoolOp,
) -> Result<GpuBuffer> {
    let (name, entry) = match op {
        PoolOp::Max => ("max_pool2d_backward", "max_pool_backward"),
        PoolOp::Avg => ("avg_pool2d_backward", "avg_pool_backward"),
    };
    let ctx = x.context();
    let in_img = g.in_h * g.in_w * g.in_c;
    let dx = ctx.alloc(name, bytes_of_elems(g.batch * in_img))?;
    let operands = [
        PerImage::input(x, g, 1),
        PerImage::input(&dx, g, 2),
        PerImage::output(dy, g, 3),
    ];
    over_image_chunks(name, g.batch, &operands, |n, windows| {
        let mut p = pool_params(name, g, n, windows[0].1, windows[1].1)?;
        p.dy_offset = windows[2].1;
        let bindings = [windows[0].0, windows[1].0, windows[2].0];
        let grid = ctx.grid_for(name, (n * in_img) as u64)?;
        ctx.launch(name, Shader::Pool, entry, &p, &bindings, grid)
    })?;
    Ok(dx)
}
