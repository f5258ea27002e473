//! Optimizers: SGD (momentum, Nesterov) and Adam / AdamW, with weight decay and gradient
//! clipping. Each reads the gradients accumulated in the parameters, updates the values on
//! their device, and clears the gradients. Their state is kept by parameter name, so that a
//! checkpoint restores it into a model built again in another process.

use crate::{Error, Result};
use keel_autograd::Param;
use keel_tensor::Tensor;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Gradient clipping before an update (Keras' `clipnorm` / `clipvalue`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Clip {
    /// No clipping.
    #[default]
    None,
    /// Scale all gradients together so that their global L2 norm is at most this.
    GlobalNorm(f32),
    /// Clamp every gradient element to [−v, v].
    Value(f32),
}

/// Something that updates parameters from their gradients.
pub trait Optimizer {
    /// One update of every parameter that has a gradient; the gradients are cleared.
    fn step(&mut self, params: &[Param]) -> Result<()>;
    /// The current learning rate.
    fn learning_rate(&self) -> f32;
    /// Sets the learning rate (schedules call this each epoch).
    fn set_learning_rate(&mut self, lr: f32);
    /// The per-parameter state (moments, velocities, step counts), by parameter name.
    fn state(&self) -> OptimizerState;
    /// Restores a state [`state`](Optimizer::state) returned, from an optimizer of the same kind.
    fn load_state(&mut self, state: OptimizerState) -> Result<()>;
    /// Tensors of state kept per parameter (Adam's two moments, SGD's velocity).
    fn state_slots(&self) -> usize;
}

/// An optimizer's state, by parameter name: what a training checkpoint keeps of it.
#[derive(Clone, Debug, Default)]
pub struct OptimizerState {
    /// `sgd` or `adam`.
    pub kind: String,
    /// Tensors by (parameter name, slot): `("dense/kernel", "m")`.
    pub slots: BTreeMap<(String, String), Tensor>,
    /// Updates made to each parameter.
    pub steps: BTreeMap<String, i32>,
}

impl OptimizerState {
    fn expect_kind(&self, kind: &str) -> Result<()> {
        if self.kind != kind {
            return Err(Error::Mismatch(format!(
                "an optimizer state of `{}` cannot be loaded into `{kind}`",
                self.kind
            )));
        }
        Ok(())
    }

    fn take(&mut self, param: &str, slot: &str) -> Result<Tensor> {
        self.slots
            .remove(&(param.to_string(), slot.to_string()))
            .ok_or_else(|| {
                Error::Mismatch(format!(
                    "the optimizer state has no `{slot}` for parameter `{param}`"
                ))
            })
    }
}

/// The parameters that have gradients, with the gradients clipped as asked; two parameters
/// with one name are an error, since state is kept by name.
fn clipped_grads(params: &[Param], clip: Clip) -> Result<Vec<(Param, Tensor)>> {
    let mut names = HashSet::with_capacity(params.len());
    if let Some(twice) = params.iter().find(|p| !names.insert(p.name())) {
        return Err(Error::Mismatch(format!(
            "two parameters are named `{}`: an optimizer keeps its state by name",
            twice.name()
        )));
    }
    let grads: Vec<(Param, Tensor)> = params
        .iter()
        .filter_map(|p| p.grad().map(|g| (p.clone(), g)))
        .collect();
    Ok(match clip {
        Clip::None => grads,
        Clip::Value(v) => grads
            .into_iter()
            .map(|(p, g)| Ok((p, g.clamp(-v, v)?)))
            .collect::<Result<_>>()?,
        Clip::GlobalNorm(max) => {
            let mut total = 0.0f32;
            for (_, g) in &grads {
                total += g.mul(g)?.sum_all()?.to_scalar()?;
            }
            let norm = total.sqrt();
            if norm <= max {
                grads
            } else {
                let scale = max / norm;
                grads
                    .into_iter()
                    .map(|(p, g)| Ok((p, g.mul_scalar(scale)?)))
                    .collect::<Result<_>>()?
            }
        }
    })
}

/// Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight decay
/// (Keras' `SGD`).
pub struct Sgd {
    /// Learning rate.
    pub lr: f32,
    /// Momentum (0 for plain SGD).
    pub momentum: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 penalty added to the gradient: g + decay · w.
    pub weight_decay: f32,
    /// Gradient clipping.
    pub clip: Clip,
    velocity: HashMap<String, Tensor>,
}

impl Sgd {
    /// Plain SGD at `lr`.
    pub fn new(lr: f32) -> Sgd {
        Sgd {
            lr,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            clip: Clip::None,
            velocity: HashMap::new(),
        }
    }
    /// With momentum (and Nesterov's variant when `nesterov`).
    pub fn momentum(mut self, momentum: f32, nesterov: bool) -> Sgd {
        self.momentum = momentum;
        self.nesterov = nesterov;
        self
    }
    /// With L2 weight decay.
    pub fn weight_decay(mut self, decay: f32) -> Sgd {
        self.weight_decay = decay;
        self
    }
    /// With gradient clipping.
    pub fn clip(mut self, clip: Clip) -> Sgd {
        self.clip = clip;
        self
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, params: &[Param]) -> Result<()> {
        for (p, g) in clipped_grads(params, self.clip)? {
            let w = p.value();
            let g = if self.weight_decay != 0.0 {
                g.add(&w.mul_scalar(self.weight_decay)?)?
            } else {
                g
            };
            // Plain SGD: w −= lr · g. Keras' momentum: v = momentum · v − lr · g; w += v
            // (Nesterov: w += momentum · v − lr · g).
            let lr_g = g.mul_scalar(self.lr)?;
            let next = if self.momentum == 0.0 {
                w.sub(&lr_g)?
            } else {
                let v = match self.velocity.get(p.name()) {
                    Some(v) => v.mul_scalar(self.momentum)?.sub(&lr_g)?,
                    None => lr_g.neg()?,
                };
                self.velocity.insert(p.name().to_string(), v.clone());
                let step = if self.nesterov {
                    v.mul_scalar(self.momentum)?.sub(&lr_g)?
                } else {
                    v
                };
                w.add(&step)?
            };
            p.set_value(next)?;
            p.zero_grad();
        }
        Ok(())
    }
    fn learning_rate(&self) -> f32 {
        self.lr
    }
    fn set_learning_rate(&mut self, lr: f32) {
        self.lr = lr;
    }
    fn state_slots(&self) -> usize {
        usize::from(self.momentum != 0.0)
    }
    fn state(&self) -> OptimizerState {
        OptimizerState {
            kind: "sgd".into(),
            slots: self
                .velocity
                .iter()
                .map(|(name, v)| ((name.clone(), "velocity".into()), v.clone()))
                .collect(),
            steps: BTreeMap::new(),
        }
    }
    fn load_state(&mut self, mut state: OptimizerState) -> Result<()> {
        state.expect_kind("sgd")?;
        let names: Vec<String> = state.slots.keys().map(|(p, _)| p.clone()).collect();
        self.velocity = names
            .into_iter()
            .map(|name| Ok((name.clone(), state.take(&name, "velocity")?)))
            .collect::<Result<_>>()?;
        Ok(())
    }
}

/// Adam (Keras' defaults: β₁ 0.9, β₂ 0.999, ε 1e-7); with `decoupled` weight decay it is AdamW.
pub struct Adam {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Added to the denominator.
    pub epsilon: f32,
    /// Weight decay: added to the gradient (Adam) or applied to the weights (AdamW).
    pub weight_decay: f32,
    /// AdamW: w ← w − lr · decay · w, separately from the gradient.
    pub decoupled: bool,
    /// Gradient clipping.
    pub clip: Clip,
    steps: HashMap<String, (i32, Tensor, Tensor)>,
}

impl Adam {
    /// Adam at `lr` with Keras' defaults.
    pub fn new(lr: f32) -> Adam {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-7,
            weight_decay: 0.0,
            decoupled: false,
            clip: Clip::None,
            steps: HashMap::new(),
        }
    }
    /// AdamW at `lr` with decoupled weight decay (Keras' default decay is 0.004).
    pub fn adamw(lr: f32, weight_decay: f32) -> Adam {
        Adam {
            weight_decay,
            decoupled: true,
            ..Adam::new(lr)
        }
    }
    /// With L2 weight decay added to the gradient.
    pub fn weight_decay(mut self, decay: f32) -> Adam {
        self.weight_decay = decay;
        self
    }
    /// With gradient clipping.
    pub fn clip(mut self, clip: Clip) -> Adam {
        self.clip = clip;
        self
    }
    /// With other moment decays and ε (PyTorch's ε is 1e-8).
    pub fn betas(mut self, beta1: f32, beta2: f32, epsilon: f32) -> Adam {
        self.beta1 = beta1;
        self.beta2 = beta2;
        self.epsilon = epsilon;
        self
    }
}

impl Optimizer for Adam {
    fn step(&mut self, params: &[Param]) -> Result<()> {
        for (p, g) in clipped_grads(params, self.clip)? {
            let mut w = p.value();
            let g = if self.weight_decay != 0.0 && !self.decoupled {
                g.add(&w.mul_scalar(self.weight_decay)?)?
            } else {
                g
            };
            let (t, m, v) = match self.steps.remove(p.name()) {
                Some((t, m, v)) => (
                    t + 1,
                    m.mul_scalar(self.beta1)?
                        .add(&g.mul_scalar(1.0 - self.beta1)?)?,
                    v.mul_scalar(self.beta2)?
                        .add(&g.mul(&g)?.mul_scalar(1.0 - self.beta2)?)?,
                ),
                None => (
                    1,
                    g.mul_scalar(1.0 - self.beta1)?,
                    g.mul(&g)?.mul_scalar(1.0 - self.beta2)?,
                ),
            };
            // w −= lr · m̂ / (√v̂ + ε), with the bias corrections folded into the step size.
            let c1 = 1.0 - self.beta1.powi(t);
            let c2 = 1.0 - self.beta2.powi(t);
            let step = m
                .div(&v.mul_scalar(1.0 / c2)?.sqrt()?.add_scalar(self.epsilon)?)?
                .mul_scalar(self.lr / c1)?;
            if self.decoupled && self.weight_decay != 0.0 {
                w = w.mul_scalar(1.0 - self.lr * self.weight_decay)?;
            }
            p.set_value(w.sub(&step)?)?;
            p.zero_grad();
            self.steps.insert(p.name().to_string(), (t, m, v));
        }
        Ok(())
    }
    fn learning_rate(&self) -> f32 {
        self.lr
    }
    fn set_learning_rate(&mut self, lr: f32) {
        self.lr = lr;
    }
    fn state_slots(&self) -> usize {
        2
    }
    fn state(&self) -> OptimizerState {
        let mut state = OptimizerState {
            kind: "adam".into(),
            ..OptimizerState::default()
        };
        for (name, (t, m, v)) in &self.steps {
            state.slots.insert((name.clone(), "m".into()), m.clone());
            state.slots.insert((name.clone(), "v".into()), v.clone());
            state.steps.insert(name.clone(), *t);
        }
        state
    }
    fn load_state(&mut self, mut state: OptimizerState) -> Result<()> {
        state.expect_kind("adam")?;
        let steps = std::mem::take(&mut state.steps);
        self.steps = steps
            .into_iter()
            .map(|(name, t)| {
                let m = state.take(&name, "m")?;
                let v = state.take(&name, "v")?;
                Ok((name, (t, m, v)))
            })
            .collect::<Result<_>>()?;
        Ok(())
    }
}
