//! Batch normalisation folded into the convolution before it, for inference: a batch norm on
//! its moving statistics is a constant per-channel affine map, y = (x − μ)·s + β with
//! s = γ / √(σ² + ε), so conv(x, W)·s + (b − μ)·s + β = conv(x, W·s) + b′, one convolution
//! with a bias instead of a convolution and a pass of the batch norm over the whole map.

use crate::config::LayerConfig;
use crate::sequential::Sequential;
use crate::{Layer, Result, Role};
use keel_tensor::{DType, Tensor};
use std::collections::HashMap;

/// A batch norm folded into a convolution: its name and ε.
struct Folded {
    norm: String,
    epsilon: f32,
}

impl Sequential {
    /// This model for inference with every batch norm that directly follows a convolution
    /// without activation folded into it (the convolution gains a bias), so one pass over
    /// memory less per pair; every other layer and weight as it is. The result computes what
    /// [`predict`](Sequential::predict) computes (batch norms on their moving statistics) to
    /// within f32 rounding; it is a new model, so this one, trainable or not, is unchanged.
    /// Its batch norms are gone, so it is for inference, not for training.
    pub fn folded(&self) -> Result<Sequential> {
        let mut folded = HashMap::new();
        let config = fold_config(self.config(), &mut folded);
        let device = self.weights_device();
        let model = config
            .to_sequential_spec()
            .build(self.input_shape(), &device, 0)?;
        let old: HashMap<String, Tensor> = self
            .weights()
            .into_iter()
            .map(|w| (w.keras_key(), w.param.value()))
            .collect();
        let f32_of = |key: &str| -> Result<Vec<f64>> {
            let t = &old[key];
            let t = if t.dtype() == DType::F16 {
                t.to_dtype(DType::F32)?
            } else {
                t.clone()
            };
            Ok(t.to_vec()?.into_iter().map(f64::from).collect())
        };
        for w in model.weights() {
            let value = match (folded.get(&w.layer), w.role) {
                (Some(f), Role::ConvKernel | Role::DepthwiseKernel | Role::Bias) => {
                    let bn = |var: &str| f32_of(&format!("{}/{var}", f.norm));
                    let (gamma, beta) = (bn("gamma")?, bn("beta")?);
                    let (mean, variance) = (bn("moving_mean")?, bn("moving_variance")?);
                    let scale: Vec<f64> = gamma
                        .iter()
                        .zip(&variance)
                        .map(|(g, v)| g / (v + f64::from(f.epsilon)).sqrt())
                        .collect();
                    let values: Vec<f32> = if w.role == Role::Bias {
                        let bias = match old.contains_key(&w.keras_key()) {
                            true => f32_of(&w.keras_key())?,
                            false => vec![0.0; scale.len()],
                        };
                        (0..scale.len())
                            .map(|c| ((bias[c] - mean[c]) * scale[c] + beta[c]) as f32)
                            .collect()
                    } else {
                        // HWIO (or [kh, kw, C, multiplier]): the output channel is the index
                        // modulo the channel count.
                        let kernel = f32_of(&w.keras_key())?;
                        let n = scale.len();
                        kernel
                            .iter()
                            .enumerate()
                            .map(|(i, k)| (k * scale[i % n]) as f32)
                            .collect()
                    };
                    Tensor::from_vec(values, w.param.value().dims().to_vec(), &device)?
                }
                _ => old[&w.keras_key()].clone(),
            };
            w.param.set_value(value)?;
        }
        for (layer, trainable) in self.trainability() {
            if let Some(l) = find(&model, &layer) {
                l.set_trainable(trainable);
            }
        }
        Ok(model)
    }

    /// The device of the model's weights (the CPU for a model without any).
    fn weights_device(&self) -> keel_tensor::Device {
        self.weights()
            .first()
            .map(|w| w.param.value().device().clone())
            .unwrap_or_else(keel_tensor::Device::cpu)
    }

    /// Each leaf layer with weights, and whether its weights are trainable now.
    fn trainability(&self) -> Vec<(String, bool)> {
        fn walk(layer: &dyn Layer, out: &mut Vec<(String, bool)>) {
            let children = layer.children();
            if children.is_empty() {
                if let Some(w) = layer.weights().iter().find(|w| !w.role.is_statistic()) {
                    out.push((layer.name().to_string(), w.param.trainable()));
                }
            }
            children.into_iter().for_each(|c| walk(c, out));
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }
}

/// The layer called `name` at any depth.
fn find<'a>(layer: &'a dyn Layer, name: &str) -> Option<&'a dyn Layer> {
    if layer.name() == name && layer.children().is_empty() {
        return Some(layer);
    }
    layer.children().into_iter().find_map(|c| find(c, name))
}

/// `config` with each (convolution without activation, batch norm) pair of a `Sequential`
/// merged into the convolution with a bias; `folded` gets the convolutions' names.
fn fold_config(config: LayerConfig, folded: &mut HashMap<String, Folded>) -> LayerConfig {
    use crate::layers::Activation;
    match config {
        LayerConfig::Sequential { name, layers } => {
            let mut out: Vec<LayerConfig> = Vec::with_capacity(layers.len());
            for layer in layers {
                let layer = fold_config(layer, folded);
                if let LayerConfig::BatchNormalization {
                    name: norm,
                    epsilon,
                    ..
                } = &layer
                {
                    match out.last_mut() {
                        Some(
                            LayerConfig::Conv2D {
                                name: conv,
                                use_bias,
                                activation: Activation::Linear,
                                ..
                            }
                            | LayerConfig::DepthwiseConv2D {
                                name: conv,
                                use_bias,
                                activation: Activation::Linear,
                                ..
                            },
                        ) if !folded.contains_key(conv.as_str()) => {
                            *use_bias = true;
                            let fold = Folded {
                                norm: norm.clone(),
                                epsilon: *epsilon,
                            };
                            folded.insert(conv.clone(), fold);
                            continue;
                        }
                        _ => {}
                    }
                }
                out.push(layer);
            }
            LayerConfig::Sequential { name, layers: out }
        }
        LayerConfig::Residual {
            body,
            only_if_same_shape,
            projection,
            drop_path,
        } => LayerConfig::Residual {
            body: Box::new(fold_config(*body, folded)),
            only_if_same_shape,
            projection: projection.map(|p| Box::new(fold_config(*p, folded))),
            drop_path,
        },
        other => other,
    }
}
