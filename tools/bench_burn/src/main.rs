//! The kernels of keel's `bench` example (matmul 1024³, VGG16 block3_conv2 at batch 8, MobileNet
//! depthwise 3×3 on 112×112×32 at batch 8) in Burn, printed as one JSON line: `wgpu` runs Burn's
//! wgpu backend on the CPU adapter (lavapipe), `flex` and `ndarray` its CPU backends.
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, DeviceKind, Distribution, Tensor};
use std::time::Instant;

fn median_secs(reps: usize, device: &Device, mut f: impl FnMut()) -> f64 {
    for _ in 0..2 {
        f();
        device.sync().expect("sync");
    }
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            device.sync().expect("sync");
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    t[reps / 2]
}

fn main() {
    let backend = std::env::args().nth(1).unwrap_or_else(|| "wgpu".into());
    let reps: usize = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let device = match backend.as_str() {
        "wgpu" => Device::wgpu(DeviceKind::Cpu),
        "flex" => Device::flex(),
        #[allow(deprecated)] // measured as the "Burn CPU backends"; flex replaces it
        "ndarray" => Device::ndarray(),
        other => panic!("unknown backend {other:?}: wgpu, flex or ndarray"),
    };
    let d = Distribution::Uniform(-1.0, 1.0);
    let a = Tensor::<2>::random([1024, 1024], d, &device);
    let b = Tensor::<2>::random([1024, 1024], d, &device);
    let t = median_secs(reps, &device, || {
        let _ = a.clone().matmul(b.clone());
    });
    let matmul = 2.0 * 1024f64.powi(3) / t / 1e9;
    let x = Tensor::<4>::random([8, 256, 56, 56], d, &device);
    let w = Tensor::<4>::random([256, 256, 3, 3], d, &device);
    let t = median_secs(reps, &device, || {
        let _ = conv2d(x.clone(), w.clone(), None, ConvOptions::new([1, 1], [1, 1], [1, 1], 1));
    });
    let conv_ms = t * 1e3;
    let x = Tensor::<4>::random([8, 32, 112, 112], d, &device);
    let w = Tensor::<4>::random([32, 1, 3, 3], d, &device);
    let t = median_secs(reps, &device, || {
        let _ = conv2d(x.clone(), w.clone(), None, ConvOptions::new([1, 1], [1, 1], [1, 1], 32));
    });
    println!(
        "{{\"framework\": \"burn 0.22.1 {backend}\", \"matmul_1024_gflops\": {matmul:.2}, \"vgg_block3_conv_ms\": {conv_ms:.1}, \"depthwise_ms\": {:.2}}}",
        t * 1e3
    );
}
