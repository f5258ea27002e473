//! The graph's behaviour: what is recorded, what is freed, and the errors of `backward()`.

use crate::harness::{Rng, Runner};
use keel::autograd::{no_grad, Error, Param, Var};
use keel::{Conv2dOptions, Device, Padding, Tensor};

/// A 3-layer convolutional "backbone" and a Dense head over its flattened features.
struct Net {
    backbone: Vec<Param>,
    dense: Param,
    bias: Param,
}

impl Net {
    fn new(rng: &mut Rng, device: &Device) -> keel::Result<Net> {
        let mut param = |name: &str, shape: &[usize]| -> keel::Result<Param> {
            let n = shape.iter().product();
            let t = Tensor::from_vec(rng.values(n, -0.3, 0.3), shape.to_vec(), device)?;
            Ok(Param::new(name, t))
        };
        Ok(Net {
            backbone: vec![
                param("conv1", &[3, 3, 3, 4])?,
                param("conv2", &[3, 3, 4, 4])?,
                param("conv3", &[3, 3, 4, 4])?,
            ],
            dense: param("dense/kernel", &[4 * 4 * 4, 3])?,
            bias: param("dense/bias", &[3])?,
        })
    }

    fn loss(&self, x: &Tensor) -> keel::autograd::Result<Var> {
        let same = Conv2dOptions::default().padding(Padding::Same);
        let mut h = Var::constant(x.clone());
        for w in &self.backbone {
            h = h.conv2d(&w.var(), &same)?.relu()?;
        }
        let labels = Tensor::from_i32(vec![0, 2], [2], x.device())?;
        h.flatten()?
            .matmul(&self.dense.var())?
            .bias_add(&self.bias.var())?
            .sparse_softmax_cross_entropy(&labels)
    }
}

pub fn frozen_records_nothing(t: &mut Runner, rng: &mut Rng) {
    for device in t.devices().to_vec() {
        let outcome = (|| -> keel::autograd::Result<(usize, usize, bool, bool)> {
            let net = Net::new(rng, &device)?;
            let x = Tensor::from_vec(rng.values(2 * 4 * 4 * 3, -1.0, 1.0), [2, 4, 4, 3], &device)?;
            net.backbone.iter().for_each(|p| p.set_trainable(false));
            let frozen = net.loss(&x)?;
            // Only the head: matmul, bias_add, the loss, and the two parameter leaves.
            let frozen_size = frozen.graph_size();
            frozen.backward()?;
            let backbone_untouched = net.backbone.iter().all(|p| p.grad().is_none());
            let head_has_grads = net.dense.grad().is_some() && net.bias.grad().is_some();
            net.backbone.iter().for_each(|p| p.set_trainable(true));
            let unfrozen_size = net.loss(&x)?.graph_size();
            Ok((
                frozen_size,
                unfrozen_size,
                backbone_untouched,
                head_has_grads,
            ))
        })();
        match outcome {
            Ok((frozen, unfrozen, untouched, head)) => {
                t.expect(frozen == 5, "frozen backbone: graph holds the head only", || {
                    format!("{frozen} nodes, expected 5 (matmul, bias_add, loss, 2 leaves) on {device}")
                });
                // Each conv layer adds conv2d, relu and its kernel leaf; flatten adds a reshape.
                t.expect(
                    unfrozen == 5 + 3 * 3 + 1,
                    "unfrozen: every layer recorded",
                    || format!("{unfrozen} nodes, expected 15 on {device}"),
                );
                t.expect(untouched && head, "gradients reach the head only", || {
                    format!(
                        "backbone untouched: {untouched}, head has gradients: {head} on {device}"
                    )
                });
            }
            Err(e) => t.expect(false, "frozen backbone", || {
                format!("error on {device}: {e}")
            }),
        }
    }
}

pub fn no_grad_and_accumulation(t: &mut Runner, _rng: &mut Rng) {
    for device in t.devices().to_vec() {
        let outcome = (|| -> keel::autograd::Result<(bool, Vec<f32>, Vec<f32>, bool)> {
            let w = Param::new("w", Tensor::from_vec(vec![1.0, -2.0, 0.5], [3], &device)?);
            let x = Var::constant(Tensor::from_vec(vec![2.0, 1.0, -4.0], [3], &device)?);
            let inside = no_grad(|| x.mul(&w.var()))?;
            let step = || -> keel::autograd::Result<()> {
                x.mul(&w.var())?.sum_all()?.backward()?;
                Ok(())
            };
            step()?;
            let once = w.grad().expect("one backward").to_vec()?;
            step()?;
            let twice = w.grad().expect("two backwards").to_vec()?;
            w.zero_grad();
            Ok((inside.is_tracked(), once, twice, w.grad().is_none()))
        })();
        match outcome {
            Ok((tracked, once, twice, cleared)) => {
                t.expect(!tracked, "no_grad records nothing", || {
                    format!("tracked on {device}")
                });
                t.expect(
                    once == [2.0, 1.0, -4.0] && twice == [4.0, 2.0, -8.0],
                    "gradients accumulate",
                    || format!("after one backward {once:?}, after two {twice:?} on {device}"),
                );
                t.expect(cleared, "zero_grad clears", || {
                    format!("gradient left on {device}")
                });
            }
            Err(e) => t.expect(false, "no_grad and accumulation", || {
                format!("error on {device}: {e}")
            }),
        }
    }
}

pub fn bad_input(t: &mut Runner, _rng: &mut Rng) {
    let device = Device::cpu();
    let w = Param::new("w", Tensor::ones([2, 2], &device).expect("cpu"));
    let y = w.var().mul_scalar(3.0).expect("cpu");
    let not_scalar = y.backward();
    t.expect(
        matches!(not_scalar, Err(Error::NotScalar { .. })),
        "backward on a non-scalar",
        || {
            format!(
                "{not_scalar:?}",
                not_scalar = not_scalar.as_ref().map(|_| ())
            )
        },
    );
    let constant = Var::constant(Tensor::ones([1], &device).expect("cpu"))
        .sum_all()
        .expect("cpu");
    let none = constant.backward();
    t.expect(
        matches!(none, Err(Error::NoTrainable)),
        "backward reaching no parameter",
        || format!("{:?}", none.as_ref().map(|_| ())),
    );
    let loss = y.sum_all().expect("cpu");
    let first = loss.backward();
    let second = loss.backward();
    let msg = second
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default();
    t.expect(
        first.is_ok()
            && matches!(second, Err(Error::GraphFreed { .. }))
            && msg.contains("already used"),
        "backward twice through a freed graph",
        || format!("first ok: {}, second: {msg}", first.is_ok()),
    );
    let seed = Tensor::ones([3], &device).expect("cpu");
    let wrong_seed = y.backward_with(&seed);
    t.expect(
        matches!(wrong_seed, Err(Error::Shape { .. })),
        "seed of the wrong shape",
        || format!("{:?}", wrong_seed.as_ref().map(|_| ())),
    );
}
