//! Devices: the native CPU backend and wgpu adapters, and how one is chosen.

use crate::gpu::GpuContext;
use crate::{Error, Result};
use std::fmt;
use std::sync::{Arc, OnceLock};

/// Where tensors live and ops run. Cheap to clone; every clone refers to the same device.
#[derive(Clone)]
pub struct Device(pub(crate) DeviceKind);

#[derive(Clone)]
pub(crate) enum DeviceKind {
    Cpu,
    Wgpu(Arc<GpuContext>),
}

/// Which GEMM kernels (matmul and the forward convolution) a wgpu device runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmKernels {
    /// Where the adapter runs both designs (8-wide subgroups: lavapipe, say), the faster of
    /// the subgroup and the workgroup-tiled kernels, measured once when the device opens; the
    /// workgroup-tiled kernels everywhere else.
    Auto,
    /// The workgroup-tiled kernels on every adapter.
    Tiled,
}

type SharedContext = OnceLock<std::result::Result<Arc<GpuContext>, String>>;

/// The process-wide wgpu contexts: opening an adapter is slow, so it happens once per choice
/// of GEMM kernels.
static WGPU: SharedContext = OnceLock::new();
static WGPU_TILED: SharedContext = OnceLock::new();

fn open_once(slot: &SharedContext, gemm: GemmKernels) -> Result<Arc<GpuContext>> {
    slot.get_or_init(|| {
        let opened = GpuContext::open(gemm).map(Arc::new).and_then(|ctx| {
            crate::autotune::choose_gemm(&ctx)?;
            Ok(ctx)
        });
        opened.map_err(|e| match e {
            Error::NoAdapter(reason) => reason,
            other => other.to_string(),
        })
    })
    .clone()
    .map_err(Error::NoAdapter)
}

fn shared_wgpu() -> Result<Arc<GpuContext>> {
    open_once(&WGPU, GemmKernels::Auto)
}

impl Device {
    /// The native CPU backend (multi-threaded with rayon, GEMM from the `gemm` crate).
    pub fn cpu() -> Device {
        Device(DeviceKind::Cpu)
    }

    /// The best wgpu adapter there is, software ones (lavapipe, WARP) included.
    /// `WGPU_BACKEND` (e.g. `vulkan`) and `WGPU_ADAPTER_NAME` narrow the choice.
    pub fn wgpu() -> Result<Device> {
        shared_wgpu().map(|ctx| Device(DeviceKind::Wgpu(ctx)))
    }

    /// [`Device::wgpu`] running the given GEMM kernels. `GemmKernels::Tiled` opens a second
    /// device on the adapter only where `Auto` would pick the subgroup kernels; elsewhere both
    /// are the same device.
    pub fn wgpu_with(gemm: GemmKernels) -> Result<Device> {
        let ctx = shared_wgpu()?;
        if gemm == GemmKernels::Auto || !ctx.subgroup_gemm() {
            return Ok(Device(DeviceKind::Wgpu(ctx)));
        }
        open_once(&WGPU_TILED, gemm).map(|ctx| Device(DeviceKind::Wgpu(ctx)))
    }

    /// What the device has done so far: submits, transfers, pipeline compilations and
    /// buffer-pool reuse (all zero on the CPU backend, which has no transfers).
    pub fn counters(&self) -> crate::DeviceCounters {
        match &self.0 {
            DeviceKind::Cpu => crate::DeviceCounters::default(),
            DeviceKind::Wgpu(ctx) => ctx.counters.snapshot(),
        }
    }

    /// A hardware GPU through wgpu if there is one, otherwise the native CPU backend
    /// (which is much faster than a software GPU).
    pub fn auto() -> Device {
        match shared_wgpu() {
            Ok(ctx) if ctx.is_hardware() => Device(DeviceKind::Wgpu(ctx)),
            _ => Device::cpu(),
        }
    }

    /// Parses `auto`, `wgpu` or `cpu` (as given to `--device` or `KEEL_DEVICE`).
    pub fn from_name(name: &str) -> Result<Device> {
        match name.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Device::auto()),
            "wgpu" | "gpu" => Device::wgpu(),
            "cpu" => Ok(Device::cpu()),
            _ => Err(Error::UnknownDevice(name.to_string())),
        }
    }

    /// The device named by `KEEL_DEVICE` (`auto`, `wgpu` or `cpu`), `auto` when it is unset.
    pub fn from_env() -> Result<Device> {
        match std::env::var("KEEL_DEVICE") {
            Ok(name) if !name.trim().is_empty() => Device::from_name(&name),
            _ => Ok(Device::auto()),
        }
    }

    /// True for the native CPU backend.
    pub fn is_cpu(&self) -> bool {
        matches!(self.0, DeviceKind::Cpu)
    }

    /// True for a wgpu adapter.
    pub fn is_wgpu(&self) -> bool {
        matches!(self.0, DeviceKind::Wgpu(_))
    }

    /// Waits until all work recorded on the device has finished, reporting any GPU error.
    /// Only benchmarks need this: reading a tensor back waits by itself.
    pub fn synchronize(&self) -> Result<()> {
        match &self.0 {
            DeviceKind::Cpu => Ok(()),
            DeviceKind::Wgpu(ctx) => ctx.synchronize(),
        }
    }

    /// Whether tensors may be kept as f16 here ([`DType::F16`](crate::DType::F16)): a wgpu
    /// adapter with `SHADER_F16`. The CPU backend keeps f32.
    pub fn has_f16(&self) -> bool {
        match &self.0 {
            DeviceKind::Cpu => false,
            DeviceKind::Wgpu(ctx) => ctx.shader_f16(),
        }
    }

    /// Starts the GPU on everything recorded so far and returns at once. Work is otherwise
    /// submitted in batches of dispatches; a training step ends with this so that the GPU runs
    /// it while the host prepares and uploads the next batch.
    pub fn flush(&self) {
        if let DeviceKind::Wgpu(ctx) = &self.0 {
            ctx.submit();
        }
    }

    /// Same device? (Two wgpu handles are the same if they share one context.)
    pub fn same_as(&self, other: &Device) -> bool {
        match (&self.0, &other.0) {
            (DeviceKind::Cpu, DeviceKind::Cpu) => true,
            (DeviceKind::Wgpu(a), DeviceKind::Wgpu(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl PartialEq for Device {
    fn eq(&self, other: &Self) -> bool {
        self.same_as(other)
    }
}

impl fmt::Display for Device {
    /// `cpu (native, N threads)` or `wgpu: ADAPTER (BACKEND, DRIVER INFO)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            DeviceKind::Cpu => write!(f, "cpu (native, {} threads)", rayon::current_num_threads()),
            DeviceKind::Wgpu(ctx) => write!(f, "wgpu: {}", ctx.describe()),
        }
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
