//! candle 0.9 on the layers of keel's `bench` example; prints the same three figures.

use candle_core::{Device, Tensor};
use std::time::Instant;

/// Median seconds of `reps` runs after two warm-ups.
fn median(mut f: impl FnMut(), reps: usize) -> f64 {
    f();
    f();
    let mut t: Vec<f64> = (0..reps).map(|_| { let s = Instant::now(); f(); s.elapsed().as_secs_f64() }).collect();
    t.sort_by(|a, b| a.total_cmp(b));
    t[t.len() / 2]
}

fn main() {
    let d = Device::Cpu;
    let a = Tensor::rand(-0.5f32, 0.5, (1024, 1024), &d).unwrap();
    let b = Tensor::rand(-0.5f32, 0.5, (1024, 1024), &d).unwrap();
    let t = median(|| { a.matmul(&b).unwrap(); }, 15);
    println!("candle matmul 1024: {:.1} GFLOP/s", 2.0 * 1024f64.powi(3) / t / 1e9);
    let x = Tensor::rand(-0.5f32, 0.5, (8, 256, 56, 56), &d).unwrap();
    let w = Tensor::rand(-0.5f32, 0.5, (256, 256, 3, 3), &d).unwrap();
    let t = median(|| { x.conv2d(&w, 1, 1, 1, 1).unwrap(); }, 7);
    println!("candle VGG block3 conv: {:.1} ms", t * 1e3);
    let xd = Tensor::rand(-0.5f32, 0.5, (8, 32, 112, 112), &d).unwrap();
    let wd = Tensor::rand(-0.5f32, 0.5, (32, 1, 3, 3), &d).unwrap();
    let t = median(|| { xd.conv2d(&wd, 1, 1, 1, 32).unwrap(); }, 11);
    println!("candle depthwise: {:.2} ms", t * 1e3);
}
