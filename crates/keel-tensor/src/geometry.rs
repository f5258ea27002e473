//! Convolution and pooling geometry: padding modes, options and output sizes (Keras/TensorFlow rules).

use crate::{Error, Result, Shape};

/// How a convolution or pooling window treats the border.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// No padding: windows that do not fit are dropped.
    Valid,
    /// Output size `ceil(in / stride)`; the padding is split with the extra row/column at the end
    /// (bottom/right), as TensorFlow and Keras do for even kernels and stride 2.
    Same,
    /// Explicit padding in pixels.
    Explicit {
        /// Rows added above.
        top: usize,
        /// Rows added below.
        bottom: usize,
        /// Columns added on the left.
        left: usize,
        /// Columns added on the right.
        right: usize,
    },
}

impl Padding {
    /// The same explicit padding on all four sides.
    pub fn uniform(p: usize) -> Self {
        Padding::Explicit {
            top: p,
            bottom: p,
            left: p,
            right: p,
        }
    }
}

/// Options of a 2-D convolution (NHWC input, HWIO kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dOptions {
    /// Step between windows, (rows, columns).
    pub stride: (usize, usize),
    /// Border handling.
    pub padding: Padding,
    /// Spacing between kernel taps, (rows, columns).
    pub dilation: (usize, usize),
    /// Channel groups: 1 is a plain convolution, `groups == in_channels` is depthwise.
    pub groups: usize,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions {
            stride: (1, 1),
            padding: Padding::Valid,
            dilation: (1, 1),
            groups: 1,
        }
    }
}

impl Conv2dOptions {
    /// Sets the stride on both axes.
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = (s, s);
        self
    }
    /// Sets the padding.
    pub fn padding(mut self, p: Padding) -> Self {
        self.padding = p;
        self
    }
    /// Sets the dilation on both axes.
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = (d, d);
        self
    }
    /// Sets the number of groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
}

/// Options of a 2-D pooling window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dOptions {
    /// Window size, (rows, columns).
    pub size: (usize, usize),
    /// Step between windows, (rows, columns); Keras defaults it to the window size.
    pub stride: (usize, usize),
    /// `Valid` or `Same` (explicit padding is accepted too).
    pub padding: Padding,
}

impl Pool2dOptions {
    /// A square window whose stride equals its size, `valid` padding (Keras' defaults).
    pub fn new(size: usize) -> Self {
        Pool2dOptions {
            size: (size, size),
            stride: (size, size),
            padding: Padding::Valid,
        }
    }
    /// Sets the stride on both axes.
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = (s, s);
        self
    }
    /// Sets the padding.
    pub fn padding(mut self, p: Padding) -> Self {
        self.padding = p;
        self
    }
}

/// Everything a backend needs to run one sliding-window op over an NHWC tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WindowGeometry {
    pub batch: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub in_c: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub out_c: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub dilation_h: usize,
    pub dilation_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub groups: usize,
}

impl WindowGeometry {
    /// Output shape, NHWC.
    pub fn out_shape(&self) -> Shape {
        Shape::new([self.batch, self.out_h, self.out_w, self.out_c])
    }
    /// Input channels per group.
    pub fn in_per_group(&self) -> usize {
        self.in_c / self.groups
    }
    /// Output channels per group.
    pub fn out_per_group(&self) -> usize {
        self.out_c / self.groups
    }
    /// Rows of the implicit GEMM (output pixels).
    pub fn out_pixels(&self) -> usize {
        self.batch * self.out_h * self.out_w
    }
    /// Whether this is a 1×1 convolution without stride or padding: output pixel i reads input
    /// pixel i only, so the input is its own patch matrix.
    pub fn is_pointwise(&self) -> bool {
        self.kernel_h == 1
            && self.kernel_w == 1
            && self.stride_h == 1
            && self.stride_w == 1
            && self.pad_top == 0
            && self.pad_left == 0
            && self.out_h == self.in_h
            && self.out_w == self.in_w
    }
}

/// Output length and leading pad of one spatial axis.
fn axis_geometry(
    op: &'static str,
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad: AxisPad,
) -> Result<(usize, usize)> {
    if kernel == 0 || stride == 0 || dilation == 0 || input == 0 {
        return Err(Error::invalid(
            op,
            format!(
                "input {input}, kernel {kernel}, stride {stride}, dilation {dilation}: each must \
                 be at least 1"
            ),
        ));
    }
    let too_large = || {
        Error::invalid(
            op,
            format!("kernel {kernel}, dilation {dilation} and padding {pad:?} are too large"),
        )
    };
    let span = (kernel - 1)
        .checked_mul(dilation)
        .and_then(|s| s.checked_add(1))
        .ok_or_else(too_large)?;
    let (before, after) = match pad {
        Some(p) => p,
        None => {
            let out = input.div_ceil(stride);
            let total = ((out - 1) * stride)
                .checked_add(span)
                .ok_or_else(too_large)?
                .saturating_sub(input);
            (total / 2, total - total / 2)
        }
    };
    let padded = input
        .checked_add(before)
        .and_then(|p| p.checked_add(after))
        .ok_or_else(too_large)?;
    if padded < span {
        return Err(Error::invalid(
            op,
            format!("window of {span} (kernel {kernel}, dilation {dilation}) does not fit an input of {input} with padding {before}+{after}"),
        ));
    }
    Ok(((padded - span) / stride + 1, before))
}

/// (before, after) pixels of one axis; `None` means `Same`, which depends on the sizes.
type AxisPad = Option<(usize, usize)>;

/// The padding of each axis (rows, columns).
fn explicit_pads(p: Padding) -> (AxisPad, AxisPad) {
    match p {
        Padding::Valid => (Some((0, 0)), Some((0, 0))),
        Padding::Same => (None, None),
        Padding::Explicit {
            top,
            bottom,
            left,
            right,
        } => (Some((top, bottom)), Some((left, right))),
    }
}

fn check_positive(op: &'static str, what: &str, v: (usize, usize)) -> Result<()> {
    if v.0 == 0 || v.1 == 0 {
        return Err(Error::invalid(
            op,
            format!("{what} must be at least 1, got {v:?}"),
        ));
    }
    Ok(())
}

fn nhwc(op: &'static str, input: &Shape) -> Result<[usize; 4]> {
    match *input.dims() {
        [n, h, w, c] => Ok([n, h, w, c]),
        _ => Err(Error::invalid(
            op,
            format!("expected an NHWC input of rank 4, got shape {input}"),
        )),
    }
}

/// Validates a convolution and computes its geometry. `kernel` is HWIO: (kh, kw, in/groups, out).
pub(crate) fn conv2d_geometry(
    input: &Shape,
    kernel: &Shape,
    o: &Conv2dOptions,
) -> Result<WindowGeometry> {
    const OP: &str = "conv2d";
    let [n, h, w, c] = nhwc(OP, input)?;
    let [kh, kw, kc, oc] = match *kernel.dims() {
        [a, b, c, d] => [a, b, c, d],
        _ => {
            return Err(Error::shapes(
                OP,
                input,
                kernel,
                "the kernel must be HWIO of rank 4",
            ))
        }
    };
    check_positive(OP, "stride", o.stride)?;
    check_positive(OP, "dilation", o.dilation)?;
    if o.groups == 0 || c % o.groups != 0 || oc % o.groups != 0 {
        return Err(Error::shapes(
            OP,
            input,
            kernel,
            format!(
                "groups = {} must divide the input channels {c} and the output channels {oc}",
                o.groups
            ),
        ));
    }
    if kc != c / o.groups {
        return Err(Error::shapes(
            OP,
            input,
            kernel,
            format!("the kernel expects {kc} input channels per group, the input has {c} channels in {} group(s)", o.groups),
        ));
    }
    let (ph, pw) = explicit_pads(o.padding);
    let (out_h, pad_top) = axis_geometry(OP, h, kh, o.stride.0, o.dilation.0, ph)?;
    let (out_w, pad_left) = axis_geometry(OP, w, kw, o.stride.1, o.dilation.1, pw)?;
    Ok(WindowGeometry {
        batch: n,
        in_h: h,
        in_w: w,
        in_c: c,
        out_h,
        out_w,
        out_c: oc,
        kernel_h: kh,
        kernel_w: kw,
        stride_h: o.stride.0,
        stride_w: o.stride.1,
        dilation_h: o.dilation.0,
        dilation_w: o.dilation.1,
        pad_top,
        pad_left,
        groups: o.groups,
    })
}

/// Validates a pooling window and computes its geometry (channels pass through).
pub(crate) fn pool2d_geometry(
    op: &'static str,
    input: &Shape,
    o: &Pool2dOptions,
) -> Result<WindowGeometry> {
    let [n, h, w, c] = nhwc(op, input)?;
    check_positive(op, "pool size", o.size)?;
    check_positive(op, "stride", o.stride)?;
    let (ph, pw) = explicit_pads(o.padding);
    let (out_h, pad_top) = axis_geometry(op, h, o.size.0, o.stride.0, 1, ph)?;
    let (out_w, pad_left) = axis_geometry(op, w, o.size.1, o.stride.1, 1, pw)?;
    Ok(WindowGeometry {
        batch: n,
        in_h: h,
        in_w: w,
        in_c: c,
        out_h,
        out_w,
        out_c: c,
        kernel_h: o.size.0,
        kernel_w: o.size.1,
        stride_h: o.stride.0,
        stride_w: o.stride.1,
        dilation_h: 1,
        dilation_w: 1,
        pad_top,
        pad_left,
        groups: c,
    })
}

/// The NHWC output shape of [`Tensor::conv2d`](crate::Tensor::conv2d) for these operand
/// shapes, or the error the op would return.
pub fn conv2d_output_shape(
    input: &Shape,
    kernel: &Shape,
    options: &Conv2dOptions,
) -> Result<Shape> {
    Ok(conv2d_geometry(input, kernel, options)?.out_shape())
}

/// The NHWC output shape of max or average pooling of `input`, or the error the op would return.
pub fn pool2d_output_shape(input: &Shape, options: &Pool2dOptions) -> Result<Shape> {
    Ok(pool2d_geometry("pool2d", input, options)?.out_shape())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_puts_the_extra_pixel_at_the_end() {
        // 224 input, 3x3 kernel, stride 2 (MobileNet's first conv): out 112, total pad 1 -> (0, 1).
        let g = conv2d_geometry(
            &Shape::new([1, 224, 224, 3]),
            &Shape::new([3, 3, 3, 32]),
            &Conv2dOptions::default().stride(2).padding(Padding::Same),
        )
        .unwrap();
        assert_eq!((g.out_h, g.pad_top), (112, 0));
        // Even kernel 4, stride 1, input 7: total pad 3 -> (1, 2).
        let g = conv2d_geometry(
            &Shape::new([1, 7, 7, 1]),
            &Shape::new([4, 4, 1, 1]),
            &Conv2dOptions::default().padding(Padding::Same),
        )
        .unwrap();
        assert_eq!((g.out_h, g.pad_top), (7, 1));
    }

    #[test]
    fn bad_channels_are_named() {
        let e = conv2d_geometry(
            &Shape::new([1, 8, 8, 3]),
            &Shape::new([3, 3, 4, 8]),
            &Conv2dOptions::default(),
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("conv2d") && msg.contains("[1, 8, 8, 3]") && msg.contains("[3, 3, 4, 8]"),
            "{msg}"
        );
    }
}
