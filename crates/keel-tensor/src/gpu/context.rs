//! Opening an adapter with its own limits, recording work into a batched command encoder,
//! waiting for it, and catching wgpu errors instead of aborting.

use crate::{Error, GemmKernels, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use super::buffer::BufferPool;
use super::kernels::{Pipeline, PipelineKey};
use crate::counters::Counters;

/// Submit the recorded work after this many dispatches, so the GPU starts while we keep recording.
const DISPATCHES_PER_SUBMIT: usize = 128;

/// A wgpu device and queue, with everything keel caches per device.
pub(crate) struct GpuContext {
    pub(super) device: wgpu::Device,
    pub(super) queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    pub(super) limits: wgpu::Limits,
    /// The adapter can run the subgroup GEMMs (`shaders/subgroup_tile.wgsl`): 8-wide subgroups.
    subgroup_capable: bool,
    /// The device was opened with `SHADER_F16`: f16 storage buffers and arithmetic in WGSL.
    shader_f16: bool,
    /// Matmul and the forward convolution run the subgroup GEMMs instead of the workgroup-tiled
    /// ones (chosen by measuring both, see `Device::wgpu`).
    subgroup_gemm: AtomicBool,
    /// Errors wgpu reported outside an error scope; surfaced at the next wait.
    errors: Arc<Mutex<Vec<String>>>,
    recorder: Mutex<Recorder>,
    pub(super) pipelines: Mutex<HashMap<PipelineKey, Arc<Pipeline>>>,
    pub(super) pool: Mutex<BufferPool>,
    pub(crate) counters: Counters,
}

/// The command encoder that ops append to until the next submit.
#[derive(Default)]
struct Recorder {
    encoder: Option<wgpu::CommandEncoder>,
    dispatches: usize,
}

/// wgpu's full message: `Display` of a validation error is only "Validation Error".
pub(super) fn describe_error(e: &wgpu::Error) -> String {
    match e {
        wgpu::Error::Validation { description, .. } | wgpu::Error::Internal { description, .. } => {
            description.clone()
        }
        other => other.to_string(),
    }
}

/// Prefers real GPUs to software ones.
fn adapter_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 4,
        wgpu::DeviceType::IntegratedGpu => 3,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 1,
        wgpu::DeviceType::Other => 0,
    }
}

/// The subgroup GEMMs are written for subgroups of exactly 8 lanes (CPU implementations of
/// Vulkan, whose subgroups are a vector register; see `shaders/subgroup_tile.wgsl`).
fn subgroup_gemm_runs(adapter: &wgpu::Adapter) -> bool {
    let info = adapter.get_info();
    adapter.features().contains(wgpu::Features::SUBGROUP)
        && info.subgroup_min_size == 8
        && info.subgroup_max_size == 8
}

impl GpuContext {
    /// Opens the best adapter (see [`adapter_rank`]) with the adapter's own limits, running
    /// `gemm`'s kernels.
    pub fn open(gemm: GemmKernels) -> Result<GpuContext> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let wanted = std::env::var("WGPU_ADAPTER_NAME")
            .ok()
            .map(|s| s.to_lowercase());
        let adapter = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
            .into_iter()
            .filter(|a| wanted.as_ref().is_none_or(|w| a.get_info().name.to_lowercase().contains(w)))
            .max_by_key(|a| adapter_rank(a.get_info().device_type))
            .ok_or_else(|| {
                let narrowed: Vec<String> = [("WGPU_BACKEND", std::env::var("WGPU_BACKEND")), ("WGPU_ADAPTER_NAME", std::env::var("WGPU_ADAPTER_NAME"))]
                    .into_iter()
                    .filter_map(|(k, v)| v.ok().map(|v| format!("{k}={v}")))
                    .collect();
                Error::NoAdapter(format!(
                    "wgpu found no Vulkan, Metal or DX12 adapter{}; on Linux without a GPU install lavapipe: \
                     apt-get install -y mesa-vulkan-drivers libvulkan1",
                    if narrowed.is_empty() { String::new() } else { format!(" ({})", narrowed.join(", ")) }
                ))
            })?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        let subgroup_capable = gemm == GemmKernels::Auto && subgroup_gemm_runs(&adapter);
        let shader_f16 = adapter.features().contains(wgpu::Features::SHADER_F16);
        let mut features = wgpu::Features::empty();
        features.set(wgpu::Features::SUBGROUP, subgroup_capable);
        features.set(wgpu::Features::SHADER_F16, shader_f16);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("keel"),
            required_features: features,
            required_limits: limits.clone(),
            memory_hints: wgpu::MemoryHints::Performance,
            ..Default::default()
        }))
        .map_err(|e| Error::NoAdapter(format!("{} refused a device: {e}", info.name)))?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock().unwrap().push(describe_error(&e));
        }));
        Ok(GpuContext {
            device,
            queue,
            info,
            limits,
            subgroup_capable,
            shader_f16,
            subgroup_gemm: AtomicBool::new(subgroup_capable),
            errors,
            recorder: Mutex::new(Recorder::default()),
            pipelines: Mutex::new(HashMap::new()),
            pool: Mutex::new(BufferPool::default()),
            counters: Counters::default(),
        })
    }

    /// True when matmul and the forward convolution run the subgroup GEMMs.
    pub(crate) fn subgroup_gemm(&self) -> bool {
        self.subgroup_gemm.load(Ordering::Relaxed)
    }

    /// Whether both GEMM designs run here, so that one is chosen by measuring them.
    pub(crate) fn subgroup_capable(&self) -> bool {
        self.subgroup_capable
    }

    /// Whether shaders may keep and read f16 values (`SHADER_F16`).
    pub(crate) fn shader_f16(&self) -> bool {
        self.shader_f16
    }

    /// Runs the subgroup GEMMs (`true`) or the workgroup-tiled ones from now on.
    pub(crate) fn set_subgroup_gemm(&self, subgroup: bool) {
        self.subgroup_gemm
            .store(subgroup && self.subgroup_capable, Ordering::Relaxed);
    }

    /// True for a real GPU (not a software rasteriser such as lavapipe).
    pub fn is_hardware(&self) -> bool {
        adapter_rank(self.info.device_type) >= 2
    }

    /// Adapter name, backend, driver and GEMM kernels, for logs.
    pub fn describe(&self) -> String {
        let driver = format!("{} {}", self.info.driver, self.info.driver_info);
        let gemm = if self.subgroup_gemm() {
            "subgroup"
        } else {
            "tiled"
        };
        let f16 = if self.shader_f16 { ", f16" } else { "" };
        format!(
            "{} ({:?}, {:?}, {}; {gemm} GEMM{f16})",
            self.info.name,
            self.info.backend,
            self.info.device_type,
            driver.trim()
        )
    }

    /// What a measured kernel choice depends on: the adapter, its backend and driver, and the
    /// kernels' sources (see `crate::autotune`).
    pub(crate) fn tuning_key(&self) -> String {
        let i = &self.info;
        let key = format!(
            "{} [{:04x}:{:04x}] | {:?} | {} {} | kernels {:016x}",
            i.name,
            i.vendor,
            i.device,
            i.backend,
            i.driver,
            i.driver_info,
            super::kernels::gemm_kernels_fingerprint()
        );
        key.replace(['\t', '\n', '\r'], " ")
    }

    /// Largest range of a buffer one storage binding may cover.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size
    }

    /// Runs `record` on the pending command encoder and submits every [`DISPATCHES_PER_SUBMIT`].
    pub(super) fn record(&self, record: impl FnOnce(&mut wgpu::CommandEncoder)) {
        let mut rec = self.recorder.lock().unwrap();
        let encoder = rec.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("keel ops"),
                })
        });
        record(encoder);
        rec.dispatches += 1;
        if rec.dispatches >= DISPATCHES_PER_SUBMIT {
            self.submit_locked(&mut rec);
        }
    }

    fn submit_locked(&self, rec: &mut Recorder) {
        if let Some(encoder) = rec.encoder.take() {
            self.queue.submit([encoder.finish()]);
            Counters::add(&self.counters.submits, 1);
        }
        rec.dispatches = 0;
    }

    /// Submits whatever has been recorded, without waiting for it.
    pub(crate) fn submit(&self) {
        self.submit_locked(&mut self.recorder.lock().unwrap());
    }

    /// Returns (and clears) the errors wgpu reported since the last check.
    pub(super) fn take_errors(&self) -> Result<()> {
        let mut errors = self.errors.lock().unwrap();
        if errors.is_empty() {
            return Ok(());
        }
        let all = errors.join("; ");
        errors.clear();
        Err(Error::Gpu(all))
    }

    fn wait(&self) -> Result<()> {
        Counters::add(&self.counters.waits, 1);
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: None,
            })
            .map_err(|e| Error::Gpu(format!("waiting for the GPU failed: {e}")))?;
        Ok(())
    }

    /// Submits all recorded work and waits for it to finish.
    pub fn synchronize(&self) -> Result<()> {
        self.submit();
        self.wait()?;
        self.take_errors()
    }

    /// Copies `bytes` bytes from the start of `buffer` back to the host, waiting for pending work.
    pub(super) fn read_bytes(&self, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("keel readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.record(|enc| enc.copy_buffer_to_buffer(buffer, 0, &staging, 0, bytes));
        self.submit();
        let (tx, rx) = mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        self.take_errors()?;
        rx.recv()
            .map_err(|_| Error::Gpu("the readback was never completed".into()))?
            .map_err(|e| Error::Gpu(format!("mapping the readback buffer failed: {e}")))?;
        Counters::add(&self.counters.readbacks, 1);
        Counters::add(&self.counters.readback_bytes, bytes);
        let data = staging
            .get_mapped_range(..)
            .map_err(|e| Error::Gpu(format!("reading the mapped buffer failed: {e}")))?
            .to_vec();
        staging.unmap();
        Ok(data)
    }
}
