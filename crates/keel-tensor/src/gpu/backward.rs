//! Launch functions of the gradient kernels: convolution (implicit GEMMs in `conv2d.wgsl`,
//! direct kernels in `depthwise.wgsl`) and pooling (`pool.wgsl`). Kernel gradients sum over
//! every output pixel; that sum is split across workgroups and the partial sums are added by
//! the reduce kernel afterwards, so small kernels still fill the device.

use super::kernels::{Binding, Shader};
use super::ops::{bytes_of_elems, conv_params, pool_params, reduce, u32_of};
use super::GpuBuffer;
use crate::geometry::WindowGeometry;
use crate::op::{PoolOp, ReduceOp};
use crate::Result;

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
    let in_pixels = g.batch * g.in_h * g.in_w;
    let dx = ctx.alloc(OP, bytes_of_elems(in_pixels * g.in_c))?;
    let mut p = conv_params(g, g.batch, 0, 0)?;
    p.rows = u32_of(OP, in_pixels)?;
    let bindings = [
        Binding::whole(4, dy),
        Binding::whole(2, w),
        Binding::whole(3, &dx),
    ];
    if is_depthwise(g) {
        let grid = ctx.grid_for(OP, (in_pixels * g.in_c) as u64)?;
        ctx.launch(
            OP,
            Shader::Depthwise,
            "depthwise_backward_input",
            &p,
            &bindings,
            grid,
        )?;
    } else {
        let grid = [
            g.in_per_group().div_ceil(64) as u32,
            in_pixels.div_ceil(64) as u32,
            u32_of(OP, g.groups)?,
        ];
        ctx.launch(OP, Shader::Conv2d, "backward_input", &p, &bindings, grid)?;
    }
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
    let rows = g.out_pixels();
    let depth = g.kernel_h * g.kernel_w * g.in_per_group();
    let kernel_elems = g.kernel_h * g.kernel_w * g.in_per_group() * g.out_c;
    let mut p = conv_params(g, g.batch, 0, 0)?;
    // Aim for about 512 tiles (GEMM) or 64K invocations (depthwise) in flight.
    let (target, entry, shader) = if is_depthwise(g) {
        (
            (1 << 16) / kernel_elems.max(1),
            "depthwise_backward_kernel",
            Shader::Depthwise,
        )
    } else {
        let tiles = depth.div_ceil(64) * g.out_per_group().div_ceil(64) * g.groups;
        (512 / tiles.max(1), "backward_kernel", Shader::Conv2d)
    };
    let per_split = split_rows(rows, target);
    let splits = rows.div_ceil(per_split);
    p.split_rows = u32_of(OP, per_split)?;
    let partial = ctx.alloc(OP, bytes_of_elems(splits * kernel_elems))?;
    let bindings = [
        Binding::whole(1, x),
        Binding::whole(4, dy),
        Binding::whole(3, &partial),
    ];
    let grid = if is_depthwise(g) {
        ctx.grid_for(OP, (splits * kernel_elems) as u64)?
    } else {
        [
            g.out_per_group().div_ceil(64) as u32,
            depth.div_ceil(64) as u32,
            u32_of(OP, splits * g.groups)?,
        ]
    };
    ctx.launch(OP, shader, entry, &p, &bindings, grid)?;
    if splits == 1 {
        return Ok(partial);
    }
    reduce(&partial, 1, splits, kernel_elems, ReduceOp::Sum)
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
    let elems = g.batch * g.in_h * g.in_w * g.in_c;
    let dx = ctx.alloc(name, bytes_of_elems(elems))?;
    let p = pool_params(name, g, g.batch, 0, 0)?;
    let bindings = [
        Binding::whole(1, x),
        Binding::whole(2, &dx),
        Binding::whole(3, dy),
    ];
    let grid = ctx.grid_for(name, elems as u64)?;
    ctx.launch(name, Shader::Pool, entry, &p, &bindings, grid)?;
    Ok(dx)
}
