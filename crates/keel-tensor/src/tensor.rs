//! The `Tensor` handle: shape, dtype and storage on one device. Tensors are immutable and cheap
//! to clone (the storage is shared); every op returns a new tensor.

use crate::device::DeviceKind;
use crate::gpu::GpuBuffer;
use crate::{DType, Device, Error, Result, Shape};
use half::{bf16, f16};
use std::fmt;
use std::sync::Arc;

/// Host-side storage of the CPU backend. Dropped f32 buffers go to [`crate::cpu_cache`].
pub(crate) enum CpuData {
    F32(Vec<f32>),
    I32(Vec<i32>),
}

impl Drop for CpuData {
    fn drop(&mut self) {
        if let CpuData::F32(v) = self {
            crate::cpu_cache::give(std::mem::take(v));
        }
    }
}

/// Where a tensor's elements are.
pub(crate) enum Storage {
    Cpu(CpuData),
    Gpu(GpuBuffer),
}

/// An n-dimensional array on a [`Device`]. Images are NHWC, convolution kernels HWIO.
#[derive(Clone)]
pub struct Tensor {
    storage: Arc<Storage>,
    shape: Shape,
    dtype: DType,
    device: Device,
}

fn check_len(op: &'static str, len: usize, shape: &Shape) -> Result<()> {
    if len != shape.elem_count() {
        return Err(Error::invalid(
            op,
            format!(
                "{len} values do not fill shape {shape} ({} elements)",
                shape.elem_count()
            ),
        ));
    }
    shape.check_usable(op)
}

impl Tensor {
    pub(crate) fn from_storage(
        storage: Storage,
        shape: Shape,
        dtype: DType,
        device: Device,
    ) -> Tensor {
        Tensor {
            storage: Arc::new(storage),
            shape,
            dtype,
            device,
        }
    }

    /// A tensor holding `data` (row-major) with the given shape.
    pub fn from_vec(data: Vec<f32>, shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        check_len("from_vec", data.len(), &shape)?;
        let storage = match &device.0 {
            DeviceKind::Cpu => Storage::Cpu(CpuData::F32(data)),
            DeviceKind::Wgpu(ctx) => {
                Storage::Gpu(ctx.upload("from_vec", bytemuck::cast_slice(&data))?)
            }
        };
        Ok(Tensor::from_storage(
            storage,
            shape,
            DType::F32,
            device.clone(),
        ))
    }

    /// A tensor copied from a slice.
    pub fn from_slice(data: &[f32], shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
        Tensor::from_vec(data.to_vec(), shape, device)
    }

    /// A tensor from half-precision data, converted to f32.
    pub fn from_f16(data: &[f16], shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
        Tensor::from_vec(data.iter().map(|v| v.to_f32()).collect(), shape, device)
    }

    /// A tensor from bfloat16 data, converted to f32.
    pub fn from_bf16(data: &[bf16], shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
        Tensor::from_vec(data.iter().map(|v| v.to_f32()).collect(), shape, device)
    }

    /// An i32 tensor (class labels, indices).
    pub fn from_i32(data: Vec<i32>, shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        check_len("from_i32", data.len(), &shape)?;
        let storage = match &device.0 {
            DeviceKind::Cpu => Storage::Cpu(CpuData::I32(data)),
            DeviceKind::Wgpu(ctx) => {
                Storage::Gpu(ctx.upload("from_i32", bytemuck::cast_slice(&data))?)
            }
        };
        Ok(Tensor::from_storage(
            storage,
            shape,
            DType::I32,
            device.clone(),
        ))
    }

    /// A tensor of one value everywhere.
    pub fn full(value: f32, shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        shape.check_usable("full")?;
        match &device.0 {
            DeviceKind::Cpu => Tensor::from_vec(vec![value; shape.elem_count()], shape, device),
            DeviceKind::Wgpu(ctx) => {
                let buf = ctx.alloc("full", shape.elem_count() as u64 * 4)?;
                crate::gpu::ops::fill(&buf, value)?;
                Ok(Tensor::from_storage(
                    Storage::Gpu(buf),
                    shape,
                    DType::F32,
                    device.clone(),
                ))
            }
        }
    }

    /// The scaled keep-mask of inverted dropout: each element 0 with probability `rate`, else
    /// 1 / (1 − `rate`). Made on the device from a counter-based hash of (`seed`, element), so
    /// every device gives the same mask and nothing is uploaded.
    pub fn dropout_mask(
        rate: f32,
        seed: u64,
        shape: impl Into<Shape>,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        shape.check_usable("dropout_mask")?;
        if !(0.0..1.0).contains(&rate) {
            return Err(Error::invalid(
                "dropout_mask",
                format!("a rate of {rate}: it must be in [0, 1)"),
            ));
        }
        let keep = 1.0 / (1.0 - rate);
        let n = shape.elem_count();
        if n > u32::MAX as usize {
            return Err(Error::invalid(
                "dropout_mask",
                format!("{n} elements: a mask holds at most 2^32 − 1"),
            ));
        }
        match &device.0 {
            DeviceKind::Cpu => {
                let values = (0..n as u32)
                    .map(|i| crate::op::mask_value(seed, i, rate, keep))
                    .collect();
                Tensor::from_vec(values, shape, device)
            }
            DeviceKind::Wgpu(ctx) => {
                let buf = ctx.alloc("dropout_mask", n as u64 * 4)?;
                crate::gpu::ops::dropout_mask(&buf, seed, rate, keep)?;
                Ok(Tensor::from_storage(
                    Storage::Gpu(buf),
                    shape,
                    DType::F32,
                    device.clone(),
                ))
            }
        }
    }

    /// A tensor of zeros.
    pub fn zeros(shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
        Tensor::full(0.0, shape, device)
    }

    /// A tensor of ones.
    pub fn ones(shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
        Tensor::full(1.0, shape, device)
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.rank()
    }

    /// Number of elements.
    pub fn elem_count(&self) -> usize {
        self.shape.elem_count()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device holding the data.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The elements as f32, row-major (waits for pending GPU work); f16 elements widened.
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        if self.dtype == DType::F16 {
            let Storage::Gpu(buf) = &*self.storage else {
                unreachable!("f16 tensors live on wgpu devices only")
            };
            let bytes = buf.read()?;
            return Ok(bytes[..self.elem_count() * 2]
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect());
        }
        self.expect_dtype("to_vec", DType::F32)?;
        match &*self.storage {
            Storage::Cpu(CpuData::F32(v)) => Ok(v.clone()),
            Storage::Cpu(CpuData::I32(_)) => unreachable!("dtype checked above"),
            Storage::Gpu(buf) => Ok(bytemuck::pod_collect_to_vec(
                &buf.read()?[..self.elem_count() * 4],
            )),
        }
    }

    /// The elements of an i32 tensor, row-major.
    pub fn to_vec_i32(&self) -> Result<Vec<i32>> {
        self.expect_dtype("to_vec_i32", DType::I32)?;
        match &*self.storage {
            Storage::Cpu(CpuData::I32(v)) => Ok(v.clone()),
            Storage::Cpu(CpuData::F32(_)) => unreachable!("dtype checked above"),
            Storage::Gpu(buf) => Ok(bytemuck::pod_collect_to_vec(
                &buf.read()?[..self.elem_count() * 4],
            )),
        }
    }

    /// The single element of a one-element tensor.
    pub fn to_scalar(&self) -> Result<f32> {
        if self.elem_count() != 1 {
            return Err(Error::invalid(
                "to_scalar",
                format!(
                    "tensor of shape {} has {} elements, not 1",
                    self.shape,
                    self.elem_count()
                ),
            ));
        }
        Ok(self.to_vec()?[0])
    }

    /// The same values on another device (a no-op when it is already there).
    pub fn to_device(&self, device: &Device) -> Result<Tensor> {
        if self.device.same_as(device) {
            return Ok(self.clone());
        }
        match self.dtype {
            DType::F32 => Tensor::from_vec(self.to_vec()?, self.shape.clone(), device),
            DType::I32 => Tensor::from_i32(self.to_vec_i32()?, self.shape.clone(), device),
            DType::F16 => {
                Tensor::from_vec(self.to_vec()?, self.shape.clone(), device)?.to_dtype(DType::F16)
            }
        }
    }

    /// Converts between f32 and i32 (f32 → i32 truncates toward zero, on the device), or
    /// between f32 and f16 storage (through the host, rounding to nearest even). f16 needs a
    /// wgpu device with `SHADER_F16` ([`Device::has_f16`]), and every value within f16's
    /// finite range (±65504): anything else is an error naming the first value at fault.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if self.dtype == dtype {
            return Ok(self.clone());
        }
        match (self.dtype, dtype) {
            (DType::F32, DType::F16) => return self.to_f16(),
            (DType::F16, DType::F32) => {
                return Tensor::from_vec(self.to_vec()?, self.shape.clone(), &self.device)
            }
            (DType::F16, _) | (_, DType::F16) => {
                return Err(Error::invalid(
                    "to_dtype",
                    format!(
                        "{} to {dtype}: f16 converts to and from f32 only",
                        self.dtype
                    ),
                ))
            }
            _ => {}
        }
        if let Storage::Gpu(buf) = &*self.storage {
            let out = crate::gpu::ops::convert(buf, self.elem_count(), dtype)?;
            return Ok(self.with_gpu(out, self.shape.clone(), dtype));
        }
        if dtype == DType::F32 {
            return Tensor::from_vec(
                self.to_vec_i32()?.into_iter().map(|v| v as f32).collect(),
                self.shape.clone(),
                &self.device,
            );
        }
        Tensor::from_i32(
            self.to_vec()?.into_iter().map(|v| v as i32).collect(),
            self.shape.clone(),
            &self.device,
        )
    }

    /// This f32 tensor kept as f16 on its (f16-capable wgpu) device.
    fn to_f16(&self) -> Result<Tensor> {
        const OP: &str = "to_dtype";
        let (DeviceKind::Wgpu(ctx), true) = (&self.device.0, self.device.has_f16()) else {
            return Err(Error::invalid(
                OP,
                format!(
                    "f16 storage needs a wgpu adapter with SHADER_F16, which {} is not; it keeps f32",
                    self.device
                ),
            ));
        };
        let values = self.to_vec()?;
        let mut bytes = Vec::with_capacity(values.len() * 2);
        for (i, &v) in values.iter().enumerate() {
            let h = f16::from_f32(v);
            if v.is_finite() && !h.is_finite() {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "element {i} of the {} tensor is {v}, beyond the largest f16 (±65504)",
                        self.shape
                    ),
                ));
            }
            bytes.extend_from_slice(&h.to_le_bytes());
        }
        let buf = ctx.upload(OP, &bytes)?;
        Ok(self.with_gpu(buf, self.shape.clone(), DType::F16))
    }

    /// The same elements with another shape of the same element count (shares the storage).
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape.elem_count() != self.elem_count() {
            return Err(Error::shapes(
                "reshape",
                &self.shape,
                &shape,
                "element counts differ",
            ));
        }
        shape.check_usable("reshape")?;
        Ok(Tensor {
            storage: self.storage.clone(),
            shape,
            dtype: self.dtype,
            device: self.device.clone(),
        })
    }

    // ----- helpers for the op modules -----

    pub(crate) fn storage(&self) -> &Storage {
        &self.storage
    }

    pub(crate) fn expect_dtype(&self, op: &'static str, dtype: DType) -> Result<()> {
        if self.dtype != dtype {
            return Err(Error::DTypeMismatch {
                op,
                expected: dtype,
                got: self.dtype,
            });
        }
        Ok(())
    }

    /// Fails unless `other` is on the same device.
    pub(crate) fn same_device(&self, op: &'static str, other: &Tensor) -> Result<()> {
        if !self.device.same_as(&other.device) {
            return Err(Error::DeviceMismatch {
                op,
                lhs: self.device.to_string(),
                rhs: other.device.to_string(),
            });
        }
        Ok(())
    }

    /// A new f32 tensor on this tensor's device from backend output.
    pub(crate) fn with_cpu(&self, data: Vec<f32>, shape: Shape) -> Tensor {
        Tensor::from_storage(
            Storage::Cpu(CpuData::F32(data)),
            shape,
            DType::F32,
            self.device.clone(),
        )
    }

    /// A new tensor on this tensor's (wgpu) device from a kernel's output buffer.
    pub(crate) fn with_gpu(&self, buf: GpuBuffer, shape: Shape, dtype: DType) -> Tensor {
        Tensor::from_storage(Storage::Gpu(buf), shape, dtype, self.device.clone())
    }

    /// The f32 host data (CPU tensors only).
    pub(crate) fn cpu_f32(&self) -> &[f32] {
        match &*self.storage {
            Storage::Cpu(CpuData::F32(v)) => v,
            _ => unreachable!("cpu_f32 on a non-f32 or GPU tensor; callers check dtype and device"),
        }
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor({}, {}, {})", self.shape, self.dtype, self.device)
    }
}
