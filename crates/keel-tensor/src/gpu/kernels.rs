//! WGSL sources, the per-device pipeline cache, and the one function that records a dispatch.

use super::{GpuBuffer, GpuContext};
use crate::{Error, Result};
use std::sync::Arc;

/// How binding 2 of the GEMM and convolution shaders (a kernel, matmul's B) is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Operand {
    F32,
    /// f16, widened to f32 as it is read (adapters with `SHADER_F16`).
    F16,
}

impl Operand {
    /// The operand of a tensor of `dtype` (f32 unless it is f16).
    pub fn of(dtype: crate::DType) -> Operand {
        match dtype {
            crate::DType::F16 => Operand::F16,
            _ => Operand::F32,
        }
    }

    /// The declaration of binding 2 and its reader `w_at`, put before the rest of the shader.
    fn source(self) -> &'static str {
        match self {
            Operand::F32 => include_str!("../../../../shaders/operand_f32.wgsl"),
            Operand::F16 => include_str!("../../../../shaders/operand_f16.wgsl"),
        }
    }
}

/// One WGSL kernel family of `shaders/`; the GEMM and convolution families with the storage of
/// their second operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Shader {
    Elementwise,
    Layout,
    Matmul(Operand),
    MatmulSubgroup(Operand),
    Conv2d(Operand),
    Conv2dSubgroup(Operand),
    Depthwise(Operand),
    Pool,
    Reduce,
    Softmax,
}

impl Shader {
    fn source(self) -> String {
        let (operand, body) = match self {
            Shader::Elementwise => (
                None,
                concat!(
                    include_str!("../../../../shaders/non_finite.wgsl"),
                    include_str!("../../../../shaders/activation.wgsl"),
                    include_str!("../../../../shaders/elementwise.wgsl")
                ),
            ),
            Shader::Layout => (None, include_str!("../../../../shaders/layout.wgsl")),
            Shader::Matmul(o) => (
                Some(o),
                concat!(
                    include_str!("../../../../shaders/gemm_dest.wgsl"),
                    include_str!("../../../../shaders/gemm_tile.wgsl"),
                    include_str!("../../../../shaders/matmul_common.wgsl"),
                    include_str!("../../../../shaders/matmul.wgsl")
                ),
            ),
            Shader::MatmulSubgroup(o) => (
                Some(o),
                concat!(
                    include_str!("../../../../shaders/gemm_dest.wgsl"),
                    include_str!("../../../../shaders/subgroup_tile.wgsl"),
                    include_str!("../../../../shaders/matmul_common.wgsl"),
                    include_str!("../../../../shaders/matmul_subgroup.wgsl")
                ),
            ),
            Shader::Conv2d(o) => (
                Some(o),
                concat!(
                    include_str!("../../../../shaders/non_finite.wgsl"),
                    include_str!("../../../../shaders/activation.wgsl"),
                    include_str!("../../../../shaders/gemm_dest.wgsl"),
                    include_str!("../../../../shaders/gemm_tile.wgsl"),
                    include_str!("../../../../shaders/conv_common.wgsl"),
                    include_str!("../../../../shaders/conv2d.wgsl")
                ),
            ),
            Shader::Conv2dSubgroup(o) => (
                Some(o),
                concat!(
                    include_str!("../../../../shaders/non_finite.wgsl"),
                    include_str!("../../../../shaders/activation.wgsl"),
                    include_str!("../../../../shaders/gemm_dest.wgsl"),
                    include_str!("../../../../shaders/subgroup_tile.wgsl"),
                    include_str!("../../../../shaders/conv_common.wgsl"),
                    include_str!("../../../../shaders/conv2d_subgroup.wgsl")
                ),
            ),
            Shader::Depthwise(o) => (
                Some(o),
                concat!(
                    include_str!("../../../../shaders/non_finite.wgsl"),
                    include_str!("../../../../shaders/activation.wgsl"),
                    include_str!("../../../../shaders/conv_common.wgsl"),
                    include_str!("../../../../shaders/depthwise.wgsl")
                ),
            ),
            Shader::Pool => (
                None,
                concat!(
                    include_str!("../../../../shaders/non_finite.wgsl"),
                    include_str!("../../../../shaders/pool.wgsl")
                ),
            ),
            Shader::Reduce => (
                None,
                concat!(
                    include_str!("../../../../shaders/non_finite.wgsl"),
                    include_str!("../../../../shaders/reduce.wgsl")
                ),
            ),
            Shader::Softmax => (
                None,
                concat!(
                    include_str!("../../../../shaders/non_finite.wgsl"),
                    include_str!("../../../../shaders/softmax.wgsl")
                ),
            ),
        };
        operand.map_or("", Operand::source).to_string() + body
    }
}

/// A fingerprint of the GEMM kernels' sources (FNV-1a), so that a measured choice between
/// them is not reused once they change.
pub(crate) fn gemm_kernels_fingerprint() -> u64 {
    [
        Shader::Matmul(Operand::F32),
        Shader::MatmulSubgroup(Operand::F32),
        Shader::Conv2d(Operand::F32),
        Shader::Conv2dSubgroup(Operand::F32),
    ]
    .iter()
    .flat_map(|s| s.source().into_bytes())
    .fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Pipelines are cached per (file, entry point).
pub(crate) type PipelineKey = (Shader, &'static str);

/// A compiled entry point and the layout its bind groups are made for.
pub(crate) struct Pipeline {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// A byte range of a buffer bound at one binding slot of a kernel.
#[derive(Clone, Copy)]
pub(crate) struct Binding<'a> {
    pub slot: u32,
    pub buffer: &'a GpuBuffer,
    /// Byte offset into the buffer (a multiple of the device's storage offset alignment).
    pub offset: u64,
    /// Bytes bound.
    pub size: u64,
}

impl<'a> Binding<'a> {
    /// All bytes of the tensor in `buffer`, at `slot`.
    pub fn whole(slot: u32, buffer: &'a GpuBuffer) -> Self {
        Binding {
            slot,
            buffer,
            offset: 0,
            size: buffer.bytes().div_ceil(4) * 4,
        }
    }
}

/// Invocations per workgroup of the 1-D kernels.
pub(crate) const WORKGROUP: u64 = 256;

impl GpuContext {
    fn pipeline(&self, shader: Shader, entry: &'static str) -> Result<Arc<Pipeline>> {
        if let Some(p) = self.pipelines.lock().unwrap().get(&(shader, entry)) {
            return Ok(p.clone());
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(entry),
                source: wgpu::ShaderSource::Wgsl(shader.source().into()),
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            });
        crate::counters::Counters::add(&self.counters.pipeline_compilations, 1);
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu(format!(
                "compiling {shader:?}::{entry} failed: {}",
                super::context::describe_error(&e)
            )));
        }
        let layout = pipeline.get_bind_group_layout(0);
        let pipeline = Arc::new(Pipeline { pipeline, layout });
        self.pipelines
            .lock()
            .unwrap()
            .insert((shader, entry), pipeline.clone());
        Ok(pipeline)
    }

    /// A 2-D grid of workgroups covering `groups` workgroups within the per-dimension limit.
    pub(crate) fn grid(&self, op: &'static str, groups: u64) -> Result<[u32; 3]> {
        let max = self.limits.max_compute_workgroups_per_dimension as u64;
        let x = groups.clamp(1, max);
        let y = groups.div_ceil(x);
        if y > max {
            return Err(Error::invalid(
                op,
                format!("{groups} workgroups exceed this device's dispatch limit of {max}×{max}"),
            ));
        }
        Ok([x as u32, y as u32, 1])
    }

    /// The grid of a subgroup GEMM (`shaders/subgroup_tile.wgsl`): one workgroup per 16×32
    /// tile of a `rows` × `cols` output, spread over x and y, and `z` along z.
    pub(crate) fn subgroup_grid(
        &self,
        op: &'static str,
        rows: usize,
        cols: usize,
        z: u32,
    ) -> Result<[u32; 3]> {
        let tiles = rows.div_ceil(16) as u64 * cols.div_ceil(32) as u64;
        let [x, y, _] = self.grid(op, tiles)?;
        Ok([x, y, z])
    }

    /// Workgroups for `items` elements, one per invocation of a 256-wide 1-D kernel.
    pub(crate) fn grid_for(&self, op: &'static str, items: u64) -> Result<[u32; 3]> {
        self.grid(op, items.div_ceil(WORKGROUP))
    }

    /// Records one dispatch of `shader::entry` with `params` at binding 0 and `bindings` after it.
    pub(crate) fn launch<P: bytemuck::Pod>(
        &self,
        op: &'static str,
        shader: Shader,
        entry: &'static str,
        params: &P,
        bindings: &[Binding<'_>],
        groups: [u32; 3],
    ) -> Result<()> {
        let max = self.max_binding_bytes();
        for b in bindings {
            if b.size > max {
                return Err(Error::TooLarge {
                    op,
                    what: format!("a tensor bound to kernel {entry}"),
                    bytes: b.size,
                    limit: max,
                    limit_name: "max_storage_buffer_binding_size",
                });
            }
        }
        let limit = self.limits.max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > limit) {
            return Err(Error::invalid(op, format!("dispatch {groups:?} exceeds the device limit of {limit} workgroups per dimension")));
        }
        let pipeline = self.pipeline(shader, entry)?;
        let uniform = wgpu::util::DeviceExt::create_buffer_init(
            &self.device,
            &wgpu::util::BufferInitDescriptor {
                label: Some("keel params"),
                contents: bytemuck::bytes_of(params),
                usage: wgpu::BufferUsages::UNIFORM,
            },
        );
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        for b in bindings {
            entries.push(wgpu::BindGroupEntry {
                binding: b.slot,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b.buffer.raw(),
                    offset: b.offset,
                    size: wgpu::BufferSize::new(b.size),
                }),
            });
        }
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(entry),
            layout: &pipeline.layout,
            entries: &entries,
        });
        self.record(|encoder| {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(entry),
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        });
        Ok(())
    }
}
