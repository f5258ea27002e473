//! The GEMM design of a wgpu device (subgroup or workgroup-tiled, see `shaders/`), chosen by
//! measuring both on the adapter where both run, once per process, instead of by a fixed rule.

use crate::device::{Device, DeviceKind};
use crate::gpu::GpuContext;
use crate::{Conv2dOptions, Padding, Result, Tensor};
use std::sync::Arc;
use std::time::Instant;

/// Times a matmul and a forward convolution with each design on `ctx` and keeps the faster.
/// Adapters where only the tiled design runs are left as they are.
pub(crate) fn choose_gemm(ctx: &Arc<GpuContext>) -> Result<()> {
    if !ctx.subgroup_capable() {
        return Ok(());
    }
    let device = Device(DeviceKind::Wgpu(ctx.clone()));
    let a = Tensor::full(0.5, [256, 512], &device)?;
    let b = Tensor::full(0.25, [512, 256], &device)?;
    let x = Tensor::full(0.5, [2, 28, 28, 64], &device)?;
    let w = Tensor::full(0.1, [3, 3, 64, 64], &device)?;
    let same = Conv2dOptions::default().padding(Padding::Same);
    let run = || -> Result<()> {
        a.matmul(&b)?;
        x.conv2d(&w, &same)?;
        Ok(())
    };
    let seconds = |subgroup: bool| -> Result<f64> {
        ctx.set_subgroup_gemm(subgroup);
        run()?; // compiles the pipelines
        device.synchronize()?;
        let start = Instant::now();
        for _ in 0..3 {
            run()?;
        }
        device.synchronize()?;
        Ok(start.elapsed().as_secs_f64())
    };
    let subgroup = seconds(true)?;
    let tiled = seconds(false)?;
    ctx.set_subgroup_gemm(subgroup <= tiled);
    Ok(())
}
