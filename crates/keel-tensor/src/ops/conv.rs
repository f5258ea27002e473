//! 2-D convolution (NHWC input, HWIO kernel), grouped and depthwise.

use crate::geometry::WindowGeometry;
use crate::geometry::{conv2d_geometry, Conv2dOptions, Padding};
use crate::op::Activation;
use crate::tensor::Storage;
use crate::{cpu, gpu, DType, Error, Result, Shape, Tensor};

impl Tensor {
    /// Convolves an NHWC batch with an HWIO kernel of shape
    /// [kernel_h, kernel_w, in_channels / groups, out_channels]. The kernel may be kept as f16
    /// ([`DType::F16`]); the arithmetic is f32 either way.
    pub fn conv2d(&self, kernel: &Tensor, options: &Conv2dOptions) -> Result<Tensor> {
        self.conv2d_with(kernel, options, None)
    }

    /// [`conv2d`](Self::conv2d), then y = act(y · scale\[c\] + shift\[c\]) over its output
    /// channels (a folded batch norm or a bias, and ReLU or ReLU6): on the CPU in the same pass,
    /// on each block of output rows while it is in cache; on wgpu as a second pass.
    pub fn conv2d_affine(
        &self,
        kernel: &Tensor,
        options: &Conv2dOptions,
        scale: &Tensor,
        shift: &Tensor,
        act: Activation,
    ) -> Result<Tensor> {
        self.conv2d_with(kernel, options, Some((scale, shift, act)))
    }

    /// [`depthwise_conv2d`](Self::depthwise_conv2d) with the epilogue of
    /// [`conv2d_affine`](Self::conv2d_affine).
    pub fn depthwise_conv2d_affine(
        &self,
        kernel: &Tensor,
        options: &Conv2dOptions,
        scale: &Tensor,
        shift: &Tensor,
        act: Activation,
    ) -> Result<Tensor> {
        let (grouped, options) = self.depthwise_as_grouped(kernel, options)?;
        self.conv2d_affine(&grouped, &options, scale, shift, act)
    }

    fn conv2d_with(
        &self,
        kernel: &Tensor,
        options: &Conv2dOptions,
        epilogue: Option<(&Tensor, &Tensor, Activation)>,
    ) -> Result<Tensor> {
        const OP: &str = "conv2d";
        self.same_device(OP, kernel)?;
        self.expect_dtype(OP, DType::F32)?;
        if kernel.dtype() != DType::F16 {
            kernel.expect_dtype(OP, DType::F32)?;
        }
        let g = conv2d_geometry(self.shape(), kernel.shape(), options)?;
        if let Some((scale, shift, _)) = epilogue {
            for v in [scale, shift] {
                self.same_device(OP, v)?;
                v.expect_dtype(OP, DType::F32)?;
                if v.dims() != [g.out_c] {
                    return Err(Error::shapes(
                        OP,
                        self.shape(),
                        v.shape(),
                        format!(
                            "the epilogue's vectors must have {} values (the output channels)",
                            g.out_c
                        ),
                    ));
                }
            }
        }
        let shape = g.out_shape();
        match (self.storage(), kernel.storage()) {
            (Storage::Gpu(x), Storage::Gpu(w)) => {
                let operand = gpu::Operand::of(kernel.dtype());
                let epilogue = match epilogue {
                    Some((scale, shift, act)) => {
                        let (Storage::Gpu(scale), Storage::Gpu(shift)) =
                            (scale.storage(), shift.storage())
                        else {
                            unreachable!("same device checked above")
                        };
                        Some(gpu::ops::GpuEpilogue { scale, shift, act })
                    }
                    None => None,
                };
                let y = gpu::ops::conv2d(x, w, operand, &g, epilogue)?;
                Ok(self.with_gpu(y, shape, DType::F32))
            }
            _ => {
                let epilogue = epilogue.map(|(scale, shift, act)| cpu::Epilogue {
                    scale: scale.cpu_f32(),
                    shift: shift.cpu_f32(),
                    act,
                });
                let y = cpu::conv2d(self.cpu_f32(), kernel.cpu_f32(), &g, epilogue);
                Ok(self.with_cpu(y, shape))
            }
        }
    }

    /// Depthwise convolution with a Keras-layout kernel [kernel_h, kernel_w, channels, multiplier]:
    /// output channel `c · multiplier + m` filters input channel `c`. `options.groups` is ignored.
    pub fn depthwise_conv2d(&self, kernel: &Tensor, options: &Conv2dOptions) -> Result<Tensor> {
        let (grouped, options) = self.depthwise_as_grouped(kernel, options)?;
        self.conv2d(&grouped, &options)
    }

    /// A depthwise kernel [kh, kw, C, multiplier] as the grouped convolution's [kh, kw, 1,
    /// C · multiplier], with C groups.
    fn depthwise_as_grouped(
        &self,
        kernel: &Tensor,
        options: &Conv2dOptions,
    ) -> Result<(Tensor, Conv2dOptions)> {
        let k = kernel.dims();
        let channels = self.dims().last().copied().unwrap_or(0);
        if k.len() != 4 || k[2] != channels {
            return Err(Error::shapes(
                "depthwise_conv2d",
                self.shape(),
                kernel.shape(),
                format!("the kernel must be [kh, kw, {channels}, multiplier] for an input of {channels} channels"),
            ));
        }
        let grouped = kernel.reshape([k[0], k[1], 1, k[2] * k[3]])?;
        Ok((grouped, options.groups(channels)))
    }

    /// Gradient of [`conv2d`](Self::conv2d) with respect to its input, given the output gradient
    /// `self`, the kernel, and the input's shape.
    pub fn conv2d_backward_input(
        &self,
        kernel: &Tensor,
        input_shape: &Shape,
        options: &Conv2dOptions,
    ) -> Result<Tensor> {
        const OP: &str = "conv2d_backward_input";
        self.same_device(OP, kernel)?;
        kernel.expect_dtype(OP, DType::F32)?;
        let g = self.gradient_geometry(OP, input_shape, kernel.shape(), options)?;
        if let Some(padding) = transposed_padding(&g) {
            return self.backward_input_as_conv(kernel, &g, padding);
        }
        let shape = input_shape.clone();
        match (self.storage(), kernel.storage()) {
            (Storage::Gpu(dy), Storage::Gpu(w)) => Ok(self.with_gpu(
                gpu::backward::conv2d_backward_input(dy, w, &g)?,
                shape,
                DType::F32,
            )),
            _ => Ok(self.with_cpu(
                cpu::conv2d_backward_input(kernel.cpu_f32(), self.cpu_f32(), &g),
                shape,
            )),
        }
    }

    /// Gradient of [`conv2d`](Self::conv2d) with respect to its HWIO kernel, given the output
    /// gradient `self`, the input, and the kernel's shape.
    pub fn conv2d_backward_kernel(
        &self,
        input: &Tensor,
        kernel_shape: &Shape,
        options: &Conv2dOptions,
    ) -> Result<Tensor> {
        const OP: &str = "conv2d_backward_kernel";
        self.same_device(OP, input)?;
        input.expect_dtype(OP, DType::F32)?;
        let g = self.gradient_geometry(OP, input.shape(), kernel_shape, options)?;
        let shape = kernel_shape.clone();
        match (input.storage(), self.storage()) {
            (Storage::Gpu(x), Storage::Gpu(dy)) => Ok(self.with_gpu(
                gpu::backward::conv2d_backward_kernel(x, dy, &g)?,
                shape,
                DType::F32,
            )),
            _ => Ok(self.with_cpu(
                cpu::conv2d_backward_kernel(input.cpu_f32(), self.cpu_f32(), &g),
                shape,
            )),
        }
    }

    /// The input gradient of a stride-1 convolution (`self` is dy) as a forward convolution of
    /// dy with the kernel flipped in space and, per group, its in/out channels swapped, padded
    /// by `padding` from [`transposed_padding`]. It runs on the forward pass's kernels: on the
    /// CPU the per-thread im2col GEMMs, on wgpu the forward GEMMs (on lavapipe the subgroup
    /// ones, which the gradient kernels do not use), instead of a GEMM into a patch matrix nine
    /// times the input's size followed by col2im.
    fn backward_input_as_conv(
        &self,
        kernel: &Tensor,
        g: &WindowGeometry,
        padding: Padding,
    ) -> Result<Tensor> {
        let (taps, cg, og) = (g.kernel_h * g.kernel_w, g.in_per_group(), g.out_per_group());
        let flipped_shape = [g.kernel_h, g.kernel_w, og, g.in_c];
        let flipped = if let Storage::Cpu(_) = kernel.storage() {
            kernel.with_cpu(
                cpu::flipped_kernel(kernel.cpu_f32(), g),
                flipped_shape.into(),
            )
        } else {
            // [taps, cg, groups, og] → [taps, og, groups, cg] = [taps, og, in_c], then the taps
            // in reverse order: reversing the flat tap index kh · kernel_w + kw flips both
            // spatial axes.
            let swapped = kernel
                .reshape([taps, cg, g.groups, og])?
                .permute(&[0, 3, 2, 1])?
                .reshape([taps, og, g.in_c])?;
            let reversed: Vec<Tensor> = (0..taps)
                .rev()
                .map(|t| swapped.narrow(0, t, 1))
                .collect::<Result<_>>()?;
            Tensor::concat(&reversed.iter().collect::<Vec<_>>(), 0)?.reshape(flipped_shape)?
        };
        let options = Conv2dOptions {
            padding,
            dilation: (g.dilation_h, g.dilation_w),
            groups: g.groups,
            ..Conv2dOptions::default()
        };
        self.conv2d(&flipped, &options)
    }

    /// The geometry of the convolution whose output gradient is `self`, checked against it.
    fn gradient_geometry(
        &self,
        op: &'static str,
        input: &Shape,
        kernel: &Shape,
        options: &Conv2dOptions,
    ) -> Result<WindowGeometry> {
        self.expect_dtype(op, DType::F32)?;
        let g = conv2d_geometry(input, kernel, options)?;
        if self.shape() != &g.out_shape() {
            return Err(Error::shapes(
                op,
                self.shape(),
                &g.out_shape(),
                format!("the output gradient must have the convolution's output shape (input {input}, kernel {kernel})"),
            ));
        }
        Ok(g)
    }
}

/// The padding of the convolution that computes a stride-1 convolution's input gradient from
/// its output gradient: on each side, the kernel's reach minus the forward pad. `None` for
/// strided convolutions and depthwise ones with a channel multiplier (those have their own
/// gradient kernels), or where a forward pad exceeds the reach. A depthwise convolution without
/// a multiplier stays depthwise, so its gradient runs on the forward depthwise kernels.
fn transposed_padding(g: &WindowGeometry) -> Option<Padding> {
    let multiplied = g.in_per_group() == 1 && g.groups > 1 && g.out_per_group() > 1;
    if multiplied || g.stride_h != 1 || g.stride_w != 1 {
        return None;
    }
    let reach_h = (g.kernel_h - 1) * g.dilation_h;
    let reach_w = (g.kernel_w - 1) * g.dilation_w;
    // At stride 1, out = in + pad_before + pad_after − reach.
    let pad_bottom = (g.out_h + reach_h).checked_sub(g.in_h + g.pad_top)?;
    let pad_right = (g.out_w + reach_w).checked_sub(g.in_w + g.pad_left)?;
    Some(Padding::Explicit {
        top: reach_h.checked_sub(g.pad_top)?,
        bottom: reach_h.checked_sub(pad_bottom)?,
        left: reach_w.checked_sub(g.pad_left)?,
        right: reach_w.checked_sub(pad_right)?,
    })
}
