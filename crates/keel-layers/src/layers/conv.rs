//! Conv2D and DepthwiseConv2D (NHWC input, Keras kernel layouts).

use crate::config::LayerConfig;
use crate::init::glorot_uniform;
use crate::layer::{BuildContext, Fused, Layer, LayerSpec, Role, Weight};
use crate::layers::kernel_bias::KernelBias;
use crate::layers::Activation;
use crate::{Error, Result};
use keel_autograd::Var;
use keel_tensor::{Conv2dOptions, Padding, Tensor};

/// Keras `Conv2D(filters, kernel_size, strides=1, padding="valid", use_bias=True, activation=None)`.
pub struct Conv2DSpec {
    name: Option<String>,
    filters: usize,
    kernel: (usize, usize),
    options: Conv2dOptions,
    use_bias: bool,
    activation: Activation,
}

/// A Conv2D spec with Keras' defaults: stride 1, `valid` padding, a bias, no activation.
pub fn conv2d(filters: usize, kernel: usize) -> Conv2DSpec {
    Conv2DSpec {
        name: None,
        filters,
        kernel: (kernel, kernel),
        options: Conv2dOptions::default(),
        use_bias: true,
        activation: Activation::Linear,
    }
}

spec_setters!(Conv2DSpec: name, strides, padding, use_bias, activation, kernel_size);

impl Conv2DSpec {
    /// Dilation along both axes.
    pub fn dilation(mut self, d: usize) -> Self {
        self.options = self.options.dilation(d);
        self
    }
    /// Channel groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.options = self.options.groups(g);
        self
    }
}

/// A built 2-D convolution (also the depthwise one, which only differs in its kernel layout).
pub struct Conv2D {
    name: String,
    kind: &'static str,
    params: KernelBias,
    options: Conv2dOptions,
    activation: Activation,
    shape: Vec<usize>,
}

/// The [h, w, c] input of a convolution layer, or an error naming the layer.
fn image_input(name: &str, input: &[usize]) -> Result<[usize; 3]> {
    match *input {
        [h, w, c] => Ok([h, w, c]),
        _ => Err(Error::layer(
            name,
            format!("expects an image input [height, width, channels], got {input:?}"),
        )),
    }
}

/// Output shape of a convolution, computed by the tensor crate's geometry on a batch of one.
fn output_shape(
    name: &str,
    input: [usize; 3],
    kernel: &[usize],
    options: &Conv2dOptions,
) -> Result<Vec<usize>> {
    let probe = keel_tensor::Shape::new([1, input[0], input[1], input[2]]);
    let dims = keel_tensor::conv2d_output_shape(
        &probe,
        &keel_tensor::Shape::new(kernel.to_vec()),
        options,
    )
    .map_err(|e| Error::layer(name, e.to_string()))?;
    Ok(dims.dims()[1..].to_vec())
}

impl LayerSpec for Conv2DSpec {
    fn base_name(&self) -> &'static str {
        "conv2d"
    }
    fn downsampling(&self) -> (usize, usize) {
        self.options.stride
    }
    fn build(self: Box<Self>, ctx: &BuildContext<'_>) -> Result<Box<dyn Layer>> {
        let name = self.name.unwrap_or_else(|| ctx.default_name.clone());
        let [h, w, c] = image_input(&name, ctx.input)?;
        if self.filters == 0 {
            return Err(Error::layer(
                &name,
                "a Conv2D layer needs at least 1 filter, got 0",
            ));
        }
        let (kh, kw) = self.kernel;
        let groups = self.options.groups.max(1);
        if c % groups != 0 {
            return Err(Error::layer(
                &name,
                format!("groups = {groups} must divide the {c} input channels"),
            ));
        }
        let kernel_shape = [kh, kw, c / groups, self.filters];
        let shape = output_shape(&name, [h, w, c], &kernel_shape, &self.options)?;
        let fan_in = kh * kw * c / groups;
        let fan_out = kh * kw * self.filters / groups;
        let kernel = glorot_uniform(&kernel_shape, fan_in, fan_out, ctx.seed, ctx.device)?;
        let bias = self.use_bias.then_some(self.filters);
        Ok(Box::new(Conv2D {
            params: KernelBias::new(&name, Role::ConvKernel, kernel, bias, ctx.device)?,
            name,
            kind: "Conv2D",
            options: self.options,
            activation: self.activation,
            shape,
        }))
    }
}

/// Keras `DepthwiseConv2D(kernel_size, strides=1, padding="valid", depth_multiplier=1, use_bias=True)`.
pub struct DepthwiseConv2DSpec {
    name: Option<String>,
    kernel: (usize, usize),
    options: Conv2dOptions,
    multiplier: usize,
    use_bias: bool,
    activation: Activation,
}

/// A DepthwiseConv2D spec with Keras' defaults.
pub fn depthwise_conv2d(kernel: usize) -> DepthwiseConv2DSpec {
    DepthwiseConv2DSpec {
        name: None,
        kernel: (kernel, kernel),
        options: Conv2dOptions::default(),
        multiplier: 1,
        use_bias: true,
        activation: Activation::Linear,
    }
}

spec_setters!(DepthwiseConv2DSpec: name, strides, padding, use_bias, activation, kernel_size);

impl DepthwiseConv2DSpec {
    /// Output channels per input channel.
    pub fn depth_multiplier(mut self, m: usize) -> Self {
        self.multiplier = m;
        self
    }
}

impl LayerSpec for DepthwiseConv2DSpec {
    fn base_name(&self) -> &'static str {
        "depthwise_conv2d"
    }
    fn downsampling(&self) -> (usize, usize) {
        self.options.stride
    }
    fn build(self: Box<Self>, ctx: &BuildContext<'_>) -> Result<Box<dyn Layer>> {
        let name = self.name.unwrap_or_else(|| ctx.default_name.clone());
        let [h, w, c] = image_input(&name, ctx.input)?;
        let (kh, kw) = self.kernel;
        let out_c = c * self.multiplier;
        let options = self.options.groups(c);
        let shape = output_shape(&name, [h, w, c], &[kh, kw, 1, out_c], &options)?;
        // Keras: fan_in = kh·kw·1·multiplier... computed on the [kh, kw, C, multiplier] kernel.
        let kernel = glorot_uniform(
            &[kh, kw, c, self.multiplier],
            kh * kw * self.multiplier,
            kh * kw * c,
            ctx.seed,
            ctx.device,
        )?;
        let bias = self.use_bias.then_some(out_c);
        Ok(Box::new(Conv2D {
            params: KernelBias::new(&name, Role::DepthwiseKernel, kernel, bias, ctx.device)?,
            name,
            kind: "DepthwiseConv2D",
            options,
            activation: self.activation,
            shape,
        }))
    }
}

impl Conv2D {
    /// The convolution with `options`, its bias and its activation, with `affine` (a batch
    /// norm's) and `then` (an activation) after them: all in the convolution's own pass when
    /// nothing is differentiated and its activation is one that pass applies, else op by op.
    fn apply(
        &self,
        x: &Var,
        options: &Conv2dOptions,
        affine: Option<&(Tensor, Tensor)>,
        then: keel_tensor::Activation,
    ) -> Result<Var> {
        let kernel = self.params.kernel.var();
        let bias = self.params.bias.as_ref().map(|b| b.var());
        let tracked = x.is_tracked() || kernel.is_tracked() || bias.iter().any(Var::is_tracked);
        let own = self.activation.fusable();
        let depthwise = self.params.role == Role::DepthwiseKernel;
        let error = |e: keel_tensor::Error| Error::layer(&self.name, e.to_string());
        if !tracked && (self.activation == Activation::Linear || own.is_some()) {
            let act = own.unwrap_or(then);
            let (x, w) = (x.tensor(), kernel.tensor());
            let out = *self.shape.last().expect("a map's channels");
            let epilogue = match (affine, bias.as_ref().map(Var::tensor)) {
                (None, None) if act == keel_tensor::Activation::None => None,
                (None, None) => Some((
                    Tensor::full(1.0, [out], x.device())?,
                    Tensor::full(0.0, [out], x.device())?,
                )),
                (None, Some(b)) => Some((Tensor::full(1.0, [out], x.device())?, b.clone())),
                (Some((s, t)), None) => Some((s.clone(), t.clone())),
                (Some((s, t)), Some(b)) => Some((s.clone(), b.mul(s)?.add(t)?)),
            };
            let y = match (epilogue, depthwise) {
                (None, false) => x.conv2d(w, options),
                (None, true) => x.depthwise_conv2d(w, options),
                (Some((s, t)), false) => x.conv2d_affine(w, options, &s, &t, act),
                (Some((s, t)), true) => x.depthwise_conv2d_affine(w, options, &s, &t, act),
            }
            .map_err(error)?;
            return Ok(Var::constant(y));
        }
        let y = if depthwise {
            x.depthwise_conv2d(&kernel, options)
        } else {
            x.conv2d(&kernel, options)
        }
        .map_err(|e| Error::layer(&self.name, e.to_string()))?;
        let mut y = self.params.add_bias(y)?;
        if let Some((scale, shift)) = affine {
            y = y
                .mul(&Var::constant(scale.clone()))?
                .add(&Var::constant(shift.clone()))?;
        }
        let y = self.activation.apply(&y)?;
        Ok(match then {
            keel_tensor::Activation::None => y,
            keel_tensor::Activation::Relu => y.relu()?,
            keel_tensor::Activation::Relu6 => y.relu6()?,
            keel_tensor::Activation::Silu => y.silu()?,
            keel_tensor::Activation::HardSwish => y.hard_swish()?,
        })
    }
}

impl Layer for Conv2D {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }
    fn forward(&self, x: &Var, _training: bool) -> Result<Var> {
        self.apply(x, &self.options, None, keel_tensor::Activation::None)
    }
    fn forward_fused(&self, x: &Var, _training: bool, fused: &Fused) -> Option<Result<Var>> {
        let options = match fused.padding {
            None => self.options,
            Some(_) if self.options.padding != Padding::Valid => return None,
            Some([(top, bottom), (left, right)]) => self.options.padding(Padding::Explicit {
                top,
                bottom,
                left,
                right,
            }),
        };
        // The batch norm and the activation come after this layer's own activation: only a
        // layer without one takes them, or one whose ReLU (ReLU6) the same ReLU (ReLU6) after
        // it leaves as it is.
        let takes = match self.activation {
            Activation::Linear => true,
            own => {
                let idempotent = matches!(own, Activation::Relu | Activation::Relu6);
                fused.affine.is_none()
                    && own.fusable().is_some()
                    && (fused.activation == keel_tensor::Activation::None
                        || (idempotent && own.fusable() == Some(fused.activation)))
            }
        };
        takes.then(|| self.apply(x, &options, fused.affine.as_ref(), fused.activation))
    }
    fn weights(&self) -> Vec<Weight> {
        self.params.weights(&self.name, None)
    }
    fn config(&self) -> LayerConfig {
        let kernel = self.params.kernel.value();
        let &[kh, kw, _, out] = kernel.dims() else {
            unreachable!("convolution kernels are built with rank 4")
        };
        let o = &self.options;
        if self.params.role == Role::DepthwiseKernel {
            LayerConfig::DepthwiseConv2D {
                name: self.name.clone(),
                kernel_size: (kh, kw),
                strides: o.stride,
                padding: o.padding,
                dilation: o.dilation,
                depth_multiplier: out,
                use_bias: self.params.bias.is_some(),
                activation: self.activation,
            }
        } else {
            LayerConfig::Conv2D {
                name: self.name.clone(),
                filters: out,
                kernel_size: (kh, kw),
                strides: o.stride,
                padding: o.padding,
                dilation: o.dilation,
                groups: o.groups,
                use_bias: self.params.bias.is_some(),
                activation: self.activation,
            }
        }
    }
    fn set_trainable(&self, trainable: bool) {
        self.params.set_trainable(trainable)
    }
}
