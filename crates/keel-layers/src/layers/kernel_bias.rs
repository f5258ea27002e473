//! The weights of Conv2D, DepthwiseConv2D and Dense: a kernel and an optional bias.

use crate::init::constant;
use crate::layer::{Role, Weight};
use crate::Result;
use keel_autograd::{Param, Var};
use keel_tensor::{Device, Tensor};

/// A kernel and an optional bias, with the role that fixes the kernel's names and layouts.
pub(crate) struct KernelBias {
    pub kernel: Param,
    pub role: Role,
    pub bias: Option<Param>,
}

impl KernelBias {
    /// Layer `layer`'s kernel with initial value `kernel`, and a zero bias of `bias` values
    /// when asked for, both named in Keras' style (`layer/kernel`, `layer/bias`).
    pub fn new(
        layer: &str,
        role: Role,
        kernel: Tensor,
        bias: Option<usize>,
        device: &Device,
    ) -> Result<KernelBias> {
        let bias = match bias {
            Some(n) => Some(Param::new(
                format!("{layer}/bias"),
                constant(n, 0.0, device)?,
            )),
            None => None,
        };
        Ok(KernelBias {
            kernel: Param::new(format!("{layer}/{}", role.keras_name()), kernel),
            role,
            bias,
        })
    }

    /// y + bias (along the last axis), or y when there is no bias.
    pub fn add_bias(&self, y: Var) -> Result<Var> {
        Ok(match &self.bias {
            Some(b) => y.bias_add(&b.var())?,
            None => y,
        })
    }

    /// The weights of layer `layer`; `flattened_from` marks a Dense kernel after a Flatten.
    pub fn weights(&self, layer: &str, flattened_from: Option<[usize; 3]>) -> Vec<Weight> {
        let kernel = Weight {
            layer: layer.to_string(),
            role: self.role,
            param: self.kernel.clone(),
            flattened_from,
        };
        let bias = self.bias.iter().map(|b| Weight {
            layer: layer.to_string(),
            role: Role::Bias,
            param: b.clone(),
            flattened_from: None,
        });
        std::iter::once(kernel).chain(bias).collect()
    }

    /// Freezes or unfreezes both.
    pub fn set_trainable(&self, trainable: bool) {
        self.kernel.set_trainable(trainable);
        if let Some(b) = &self.bias {
            b.set_trainable(trainable);
        }
    }
}
