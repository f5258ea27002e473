//! End to end: a two-layer convolutional network trained with plain SGD on a tiny synthetic
//! task reaches near-zero loss on every device, and the devices agree on the first steps.

use crate::harness::{Rng, Runner};
use keel::autograd::{Param, Var};
use keel::{Conv2dOptions, Device, Padding, Pool2dOptions, Tensor};

const STEPS: usize = 300;

/// Eight 6×6 grey images: class 0 has a bright top half, class 1 a bright bottom half, plus noise.
fn data(rng: &mut Rng) -> (Vec<f32>, Vec<i32>) {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for i in 0..8 {
        let class = i % 2i32;
        for row in 0..6 {
            for _ in 0..6 {
                let bright = (row < 3) == (class == 0);
                images.push(if bright { 1.0 } else { 0.0 } + rng.uniform(-0.2, 0.2));
            }
        }
        labels.push(class);
    }
    (images, labels)
}

/// Trains on `device` from the given initial values; returns the loss at every step.
fn train(
    device: &Device,
    init: &[(Vec<usize>, Vec<f32>)],
    x: &[f32],
    y: &[i32],
) -> keel::autograd::Result<Vec<f32>> {
    let params = init
        .iter()
        .enumerate()
        .map(|(i, (shape, v))| {
            Ok(Param::new(
                format!("p{i}"),
                Tensor::from_slice(v, shape.clone(), device)?,
            ))
        })
        .collect::<keel::Result<Vec<_>>>()?;
    let images = Var::constant(Tensor::from_slice(x, [8, 6, 6, 1], device)?);
    let labels = Tensor::from_i32(y.to_vec(), [8], device)?;
    let same = Conv2dOptions::default().padding(Padding::Same);
    let mut losses = Vec::with_capacity(STEPS);
    for _ in 0..STEPS {
        let h = images
            .conv2d(&params[0].var(), &same)?
            .bias_add(&params[1].var())?
            .relu()?;
        let h = h.max_pool2d(&Pool2dOptions::new(2))?;
        let h = h
            .conv2d(&params[2].var(), &same)?
            .bias_add(&params[3].var())?
            .relu()?;
        let logits = h.flatten()?.matmul(&params[4].var())?;
        let loss = logits.sparse_softmax_cross_entropy(&labels)?;
        losses.push(loss.tensor().to_scalar()?);
        let grads = loss.backward()?;
        for (p, g) in grads.iter() {
            p.set_value(p.value().sub(&g.mul_scalar(0.1)?)?)?;
            p.zero_grad();
        }
    }
    Ok(losses)
}

pub fn two_layer_cnn(t: &mut Runner, rng: &mut Rng) {
    let (x, y) = data(rng);
    let shapes: [&[usize]; 5] = [&[3, 3, 1, 4], &[4], &[3, 3, 4, 4], &[4], &[3 * 3 * 4, 2]];
    let init: Vec<(Vec<usize>, Vec<f32>)> = shapes
        .iter()
        .map(|s| (s.to_vec(), rng.values(s.iter().product(), -0.4, 0.4)))
        .collect();
    let mut curves = Vec::new();
    for device in t.devices().to_vec() {
        match train(&device, &init, &x, &y) {
            Ok(losses) => {
                let last = *losses.last().expect("steps ran");
                t.expect(last < 0.02, "SGD reaches near-zero loss", || {
                    format!(
                        "loss {:.4} after {STEPS} steps (first {:.4}) on {device}",
                        last, losses[0]
                    )
                });
                curves.push((device, losses));
            }
            Err(e) => t.expect(false, "training", || format!("error on {device}: {e}")),
        }
    }
    if let [(d0, a), (d1, b), ..] = &curves[..] {
        let worst = a
            .iter()
            .zip(b)
            .take(10)
            .map(|(p, q)| (p - q).abs() / p.abs().max(1.0))
            .fold(0.0, f32::max);
        t.expect(worst < 1e-4, "devices agree on the first 10 steps", || {
            format!("{d0} vs {d1}: relative difference {worst:.2e}")
        });
    }
}
