//! Data movement: permute/transpose, slice, concat and pad. Each is one or more strided copies
//! (`shaders/layout.wgsl` on wgpu), and works for f32 and i32 tensors alike.

use crate::gpu::GpuBuffer;
use crate::shape::StridedView;
use crate::tensor::{CpuData, Storage};
use crate::{cpu, gpu, DType, Device, Error, Result, Shape, Tensor};
use std::ops::Range;

/// An output tensor being assembled from strided copies.
enum Assembly {
    Cpu(CpuData),
    Gpu(GpuBuffer),
}

/// Why an op refuses an f16 tensor.
pub(crate) const F16_ONLY_AS_OPERAND: &str = "f16 tensors are kept for the kernels of convolutions and the right operand of matmul only; convert with to_dtype(DType::F32) first";

impl Assembly {
    /// Storage for `shape`; `fill` is written first where not every element will be copied into.
    fn new(
        op: &'static str,
        device: &Device,
        dtype: DType,
        shape: &Shape,
        fill: Option<f32>,
    ) -> Result<Assembly> {
        let n = shape.elem_count();
        let value = fill.unwrap_or(0.0);
        match &device.0 {
            _ if dtype == DType::F16 => Err(Error::invalid(op, F16_ONLY_AS_OPERAND)),
            crate::device::DeviceKind::Cpu => Ok(Assembly::Cpu(match dtype {
                DType::I32 => CpuData::I32(vec![value as i32; n]),
                _ => CpuData::F32(cpu::filled(n, value)),
            })),
            crate::device::DeviceKind::Wgpu(ctx) => {
                let buf = ctx.alloc(op, n as u64 * 4)?;
                if let Some(v) = fill {
                    gpu::ops::fill(&buf, v)?;
                }
                Ok(Assembly::Gpu(buf))
            }
        }
    }

    /// Copies view `sv` of `src` into view `dv` of the output.
    fn copy(
        &mut self,
        op: &'static str,
        src: &Tensor,
        sv: &StridedView,
        dv: &StridedView,
    ) -> Result<()> {
        match (self, src.storage()) {
            (Assembly::Cpu(CpuData::F32(d)), Storage::Cpu(CpuData::F32(s))) => {
                cpu::copy_strided(s, sv, d, dv)
            }
            (Assembly::Cpu(CpuData::I32(d)), Storage::Cpu(CpuData::I32(s))) => {
                cpu::copy_strided(s, sv, d, dv)
            }
            (Assembly::Gpu(d), Storage::Gpu(s)) => gpu::ops::copy_strided(op, s, sv, d, dv)?,
            _ => return Err(Error::invalid(op, "operands differ in device or dtype")),
        }
        Ok(())
    }

    fn finish(self, shape: Shape, dtype: DType, device: &Device) -> Tensor {
        let storage = match self {
            Assembly::Cpu(d) => Storage::Cpu(d),
            Assembly::Gpu(b) => Storage::Gpu(b),
        };
        Tensor::from_storage(storage, shape, dtype, device.clone())
    }
}

impl Tensor {
    /// Reorders the axes: output axis `i` is input axis `dims[i]` (NHWC → NCHW is `[0, 3, 1, 2]`).
    pub fn permute(&self, dims: &[usize]) -> Result<Tensor> {
        const OP: &str = "permute";
        let mut seen = vec![false; self.rank()];
        if dims.len() != self.rank()
            || dims
                .iter()
                .any(|&d| d >= self.rank() || std::mem::replace(&mut seen[d], true))
        {
            return Err(Error::invalid(
                OP,
                format!(
                    "{dims:?} is not a permutation of the {} axes of shape {}",
                    self.rank(),
                    self.shape()
                ),
            ));
        }
        let strides = self.shape().strides();
        let shape = Shape::new(dims.iter().map(|&d| self.dims()[d]).collect::<Vec<_>>());
        let sv = StridedView {
            shape: shape.dims().to_vec(),
            strides: dims.iter().map(|&d| strides[d]).collect(),
            offset: 0,
        };
        let mut out = Assembly::new(OP, self.device(), self.dtype(), &shape, None)?;
        out.copy(OP, self, &sv, &StridedView::contiguous(&shape))?;
        Ok(out.finish(shape, self.dtype(), self.device()))
    }

    /// Repeats this tensor along size-1 and missing leading axes to `shape` (NumPy broadcasting),
    /// as a contiguous copy.
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        const OP: &str = "broadcast_to";
        let shape = shape.into();
        if crate::broadcast_shapes(OP, self.shape(), &shape)? != shape {
            return Err(Error::shapes(
                OP,
                self.shape(),
                &shape,
                "the target shape must contain the broadcast of both",
            ));
        }
        let sv = StridedView::broadcast_to(self.shape(), &shape);
        let mut out = Assembly::new(OP, self.device(), self.dtype(), &shape, None)?;
        out.copy(OP, self, &sv, &StridedView::contiguous(&shape))?;
        Ok(out.finish(shape, self.dtype(), self.device()))
    }

    /// Swaps two axes (negative counts from the end).
    pub fn transpose(&self, a: isize, b: isize) -> Result<Tensor> {
        let (a, b) = (
            self.shape().axis("transpose", a)?,
            self.shape().axis("transpose", b)?,
        );
        let mut dims: Vec<usize> = (0..self.rank()).collect();
        dims.swap(a, b);
        self.permute(&dims)
    }

    /// The sub-tensor `ranges[i]` along each leading axis `i` (axes without a range are kept whole).
    pub fn slice(&self, ranges: &[Range<usize>]) -> Result<Tensor> {
        const OP: &str = "slice";
        if ranges.len() > self.rank() {
            return Err(Error::invalid(
                OP,
                format!("{} ranges for shape {}", ranges.len(), self.shape()),
            ));
        }
        let strides = self.shape().strides();
        let mut dims = self.dims().to_vec();
        let mut offset = 0;
        for (axis, r) in ranges.iter().enumerate() {
            if r.start >= r.end || r.end > dims[axis] {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "range {r:?} is empty or out of bounds for axis {axis} of shape {}",
                        self.shape()
                    ),
                ));
            }
            offset += r.start * strides[axis];
            dims[axis] = r.end - r.start;
        }
        let shape = Shape::new(dims);
        let sv = StridedView {
            shape: shape.dims().to_vec(),
            strides,
            offset,
        };
        let mut out = Assembly::new(OP, self.device(), self.dtype(), &shape, None)?;
        out.copy(OP, self, &sv, &StridedView::contiguous(&shape))?;
        Ok(out.finish(shape, self.dtype(), self.device()))
    }

    /// `len` entries of `axis` starting at `start`.
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Tensor> {
        let axis = self.shape().axis("narrow", axis)?;
        let mut ranges: Vec<Range<usize>> = self.dims()[..axis].iter().map(|&d| 0..d).collect();
        ranges.push(start..start + len);
        self.slice(&ranges)
    }

    /// Joins tensors along `axis`; all other dimensions must agree.
    pub fn concat(tensors: &[&Tensor], axis: isize) -> Result<Tensor> {
        const OP: &str = "concat";
        let first = *tensors
            .first()
            .ok_or_else(|| Error::invalid(OP, "no tensors to join"))?;
        let axis = first.shape().axis(OP, axis)?;
        let mut dims = first.dims().to_vec();
        dims[axis] = 0;
        for t in tensors {
            first.same_device(OP, t)?;
            t.expect_dtype(OP, first.dtype())?;
            let same_elsewhere = t.rank() == first.rank()
                && (0..t.rank()).all(|a| a == axis || t.dims()[a] == first.dims()[a]);
            if !same_elsewhere {
                return Err(Error::shapes(
                    OP,
                    first.shape(),
                    t.shape(),
                    format!("only axis {axis} may differ"),
                ));
            }
            dims[axis] += t.dims()[axis];
        }
        let shape = Shape::new(dims);
        let out_strides = shape.strides();
        let mut out = Assembly::new(OP, first.device(), first.dtype(), &shape, None)?;
        let mut at = 0;
        for t in tensors {
            let dv = StridedView {
                shape: t.dims().to_vec(),
                strides: out_strides.clone(),
                offset: at * out_strides[axis],
            };
            out.copy(OP, t, &StridedView::contiguous(t.shape()), &dv)?;
            at += t.dims()[axis];
        }
        Ok(out.finish(shape, first.dtype(), first.device()))
    }

    /// Pads every axis with `(before, after)` elements of `value` (one pair per axis).
    pub fn pad(&self, pads: &[(usize, usize)], value: f32) -> Result<Tensor> {
        const OP: &str = "pad";
        self.expect_dtype(OP, DType::F32)?;
        if pads.len() != self.rank() {
            return Err(Error::invalid(
                OP,
                format!(
                    "{} (before, after) pairs for shape {} of rank {}",
                    pads.len(),
                    self.shape(),
                    self.rank()
                ),
            ));
        }
        let shape = Shape::new(
            self.dims()
                .iter()
                .zip(pads)
                .map(|(&d, &(b, a))| d + b + a)
                .collect::<Vec<_>>(),
        );
        let strides = shape.strides();
        let offset = pads.iter().zip(&strides).map(|(&(b, _), &s)| b * s).sum();
        let dv = StridedView {
            shape: self.dims().to_vec(),
            strides,
            offset,
        };
        let mut out = Assembly::new(OP, self.device(), DType::F32, &shape, Some(value))?;
        out.copy(OP, self, &StridedView::contiguous(self.shape()), &dv)?;
        Ok(out.finish(shape, DType::F32, self.device()))
    }
}
