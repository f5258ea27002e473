//! Sequential models: layers applied in order, each built on the previous one's output shape.
//! A model is itself a layer, so a backbone nests inside a model with a head after it.

use crate::config::LayerConfig;
use crate::layer::{BuildContext, Fused, Layer, LayerSpec, Role, Weight};
use crate::{Error, Result};
use keel_autograd::{no_grad, Param, Var};
use keel_tensor::{DType, Device, Tensor};
use std::collections::HashMap;

/// A model's configuration: named layer specs, built in order by [`build`](SequentialSpec::build).
pub struct SequentialSpec {
    name: String,
    specs: Vec<Box<dyn LayerSpec>>,
}

/// An empty model configuration called `name`.
pub fn sequential(name: impl Into<String>) -> SequentialSpec {
    SequentialSpec {
        name: name.into(),
        specs: Vec::new(),
    }
}

impl SequentialSpec {
    /// Appends a layer (Keras' `model.add`).
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, spec: impl LayerSpec + 'static) -> Self {
        self.specs.push(Box::new(spec));
        self
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Appends several layers.
    pub fn extend(mut self, specs: Vec<Box<dyn LayerSpec>>) -> Self {
        self.specs.extend(specs);
        self
    }

    /// Builds every layer for inputs of shape `input` (without the batch axis), with weights on
    /// `device` initialised from `seed`.
    pub fn build(self, input: &[usize], device: &Device, seed: u64) -> Result<Sequential> {
        let ctx = BuildContext {
            input,
            device,
            seed,
            default_name: self.name.clone(),
            flattened_from: None,
        };
        self.build_on(&ctx)
    }

    pub(crate) fn build_on(self, ctx: &BuildContext<'_>) -> Result<Sequential> {
        let mut layers: Vec<Box<dyn Layer>> = Vec::with_capacity(self.specs.len());
        let mut shape = ctx.input.to_vec();
        let mut flattened_from = ctx.flattened_from;
        let mut used: HashMap<&'static str, usize> = HashMap::new();
        for (i, spec) in self.specs.into_iter().enumerate() {
            let base = spec.base_name();
            let count = used.entry(base).or_insert(0);
            let default_name = if *count == 0 {
                base.to_string()
            } else {
                format!("{base}_{count}")
            };
            *count += 1;
            let layer_ctx = BuildContext {
                input: &shape,
                device: ctx.device,
                seed: ctx
                    .seed
                    .wrapping_mul(0x100_0000_01B3)
                    .wrapping_add(i as u64 + 1),
                default_name,
                flattened_from,
            };
            let layer = spec.build(&layer_ctx)?;
            flattened_from = match (layer.kind(), &shape[..]) {
                ("Flatten", &[h, w, c]) => Some([h, w, c]),
                _ => None,
            };
            shape = layer.output_shape().to_vec();
            layers.push(layer);
        }
        let mut seen = std::collections::HashSet::new();
        for layer in &layers {
            if !seen.insert(layer.name().to_string()) {
                return Err(Error::layer(
                    layer.name(),
                    format!("two layers of model `{}` share this name", self.name),
                ));
            }
        }
        Ok(Sequential {
            name: self.name,
            input: ctx.input.to_vec(),
            output: shape,
            layers,
        })
    }
}

/// A built model: layers in order, with known input and output shapes.
pub struct Sequential {
    name: String,
    input: Vec<usize>,
    output: Vec<usize>,
    layers: Vec<Box<dyn Layer>>,
}

impl Sequential {
    /// Input shape without the batch axis.
    pub fn input_shape(&self) -> &[usize] {
        &self.input
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    /// Trainable parameters (what an optimizer updates): kernels, biases, batch-norm γ and β of
    /// unfrozen layers. Moving statistics never appear here.
    pub fn trainable_params(&self) -> Vec<Param> {
        self.weights()
            .into_iter()
            .filter(Weight::trainable)
            .map(|w| w.param)
            .collect()
    }

    /// Freezes every layer except the last `n` (Keras' fine-tuning recipe:
    /// `for layer in model.layers[:-n]: layer.trainable = False`), unfreezing those `n`.
    pub fn set_trainable_top(&self, n: usize) {
        let first = self.layers.len().saturating_sub(n);
        for (i, layer) in self.layers.iter().enumerate() {
            layer.set_trainable(i >= first);
        }
    }

    /// Keeps the kernels of the frozen layers at the start of the model (a frozen backbone:
    /// every layer before the first with a trainable weight) as f16 where the device has f16
    /// storage ([`Device::has_f16`]): half their memory and bandwidth, f32 arithmetic, outputs
    /// within f16's rounding of the f32 model's. Biases and batch-norm values stay f32. On
    /// other devices nothing changes and `kernels` is 0. No gradient flows through these
    /// layers; to train one of them, call [`f32_weights`](Self::f32_weights) first.
    pub fn keep_frozen_weights_f16(&self) -> Result<HalfWeights> {
        let mut done = HalfWeights::default();
        let frozen = self
            .layers
            .iter()
            .take_while(|l| l.weights().iter().all(|w| !w.trainable()));
        for weight in frozen.flat_map(|l| l.weights()) {
            let value = weight.param.value();
            let kernel = matches!(
                weight.role,
                Role::ConvKernel | Role::DepthwiseKernel | Role::DenseKernel
            );
            if !kernel || value.dtype() != DType::F32 || !value.device().has_f16() {
                continue;
            }
            weight.param.set_value(value.to_dtype(DType::F16)?)?;
            done.kernels += 1;
            done.bytes_saved += value.elem_count() as u64 * 2;
        }
        Ok(done)
    }

    /// Keeps every weight as f32 again (after [`keep_frozen_weights_f16`](Self::keep_frozen_weights_f16),
    /// before unfreezing those layers). The values stay f16-rounded.
    pub fn f32_weights(&self) -> Result<()> {
        for weight in self.weights() {
            let value = weight.param.value();
            if value.dtype() == DType::F16 {
                weight.param.set_value(value.to_dtype(DType::F32)?)?;
            }
        }
        Ok(())
    }

    /// Runs the model on a batch [N, ...input shape] for inference: no graph, dropout off,
    /// batch normalisation on its moving statistics.
    pub fn predict(&self, x: &Tensor) -> Result<Tensor> {
        no_grad(|| {
            Ok(self
                .forward(&Var::constant(x.clone()), false)?
                .tensor()
                .clone())
        })
    }

    /// Runs the layers from `i` that one layer can run in its own passes over memory — a
    /// ZeroPadding2D before it, a batch norm and an activation after it — and says how many it
    /// ran; `None` when there is nothing to fuse there or the layer cannot take it.
    fn forward_fused_at(&self, i: usize, x: &Var, training: bool) -> Option<Result<(Var, usize)>> {
        let layers = &self.layers;
        let mut fused = Fused::default();
        let mut core = i;
        if let (Some(padding), Some(_)) = (layers[i].zero_padding(), layers.get(i + 1)) {
            fused.padding = Some(padding);
            core = i + 1;
        }
        let mut end = core + 1;
        if let Some(affine) = layers.get(end).and_then(|l| l.inference_affine(training)) {
            match affine {
                Ok(affine) => fused.affine = Some(affine),
                Err(e) => return Some(Err(e)),
            }
            end += 1;
        }
        if let Some(act) = layers.get(end).and_then(|l| l.fusable_activation()) {
            fused.activation = act;
            end += 1;
        }
        if end == core + 1 && fused.padding.is_none() {
            return None;
        }
        let y = crate::profile::forward_fused(layers[core].as_ref(), x, training, &fused)?;
        Some(y.map(|y| (y, end - i)))
    }

    fn check_input(&self, x: &Var) -> Result<()> {
        if x.dims().get(1..) != Some(&self.input[..]) {
            return Err(Error::layer(
                &self.name,
                format!(
                    "expects inputs of shape [batch, {}], got {:?}",
                    join(&self.input),
                    x.dims()
                ),
            ));
        }
        Ok(())
    }
}

fn join(dims: &[usize]) -> String {
    dims.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What [`Sequential::keep_frozen_weights_f16`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HalfWeights {
    /// Kernels now kept as f16 (0 on a device that keeps f32).
    pub kernels: usize,
    /// Device memory they no longer take, in bytes.
    pub bytes_saved: u64,
}

impl Layer for Sequential {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "Sequential"
    }
    fn output_shape(&self) -> &[usize] {
        &self.output
    }
    fn forward(&self, x: &Var, training: bool) -> Result<Var> {
        self.check_input(x)?;
        let mut h = x.clone();
        let mut i = 0;
        while let Some(layer) = self.layers.get(i) {
            if let Some(fused) = self.forward_fused_at(i, &h, training) {
                let (y, used) = fused?;
                (h, i) = (y, i + used);
                continue;
            }
            h = crate::profile::forward(layer.as_ref(), &h, training)?;
            i += 1;
        }
        Ok(h)
    }
    fn weights(&self) -> Vec<Weight> {
        self.layers.iter().flat_map(|l| l.weights()).collect()
    }
    fn set_trainable(&self, trainable: bool) {
        self.layers.iter().for_each(|l| l.set_trainable(trainable));
    }
    fn children(&self) -> Vec<&dyn Layer> {
        self.layers.iter().map(|l| l.as_ref()).collect()
    }
    fn config(&self) -> LayerConfig {
        LayerConfig::Sequential {
            name: self.name.clone(),
            layers: self.layers.iter().map(|l| l.config()).collect(),
        }
    }
}

impl LayerSpec for SequentialSpec {
    fn base_name(&self) -> &'static str {
        "sequential"
    }
    fn downsampling(&self) -> (usize, usize) {
        self.specs.iter().fold((1, 1), |(h, w), s| {
            let (sh, sw) = s.downsampling();
            (h * sh, w * sw)
        })
    }
    fn build(self: Box<Self>, ctx: &BuildContext<'_>) -> Result<Box<dyn Layer>> {
        Ok(Box::new(self.build_on(ctx)?))
    }
}

/// An already built model used as a layer of another (a backbone inside a model).
pub struct Prebuilt(pub Sequential);

impl LayerSpec for Prebuilt {
    fn base_name(&self) -> &'static str {
        "functional"
    }
    fn build(self: Box<Self>, ctx: &BuildContext<'_>) -> Result<Box<dyn Layer>> {
        if ctx.input != self.0.input_shape() {
            return Err(Error::layer(
                self.0.name(),
                format!(
                    "was built for inputs {:?}, placed after an output of {:?}",
                    self.0.input_shape(),
                    ctx.input
                ),
            ));
        }
        Ok(Box::new(self.0))
    }
}
