//! f16 storage of convolution kernels and matmul's right operand, on devices with SHADER_F16
//! (lavapipe has it): the kernels widen each value to f32, so the result must equal the f64
//! reference computed with the same f16-rounded values. Devices without f16 run the f32 path
//! on the same rounded values, and refuse f16 storage with a clear error.

use crate::harness::{Expected, Input, Rng, Runner};
use crate::reference as r;
use half::f16;
use keel::{Conv2dOptions, DType, Padding, Shape, Tensor};
use std::cell::Cell;

/// `x` with every value rounded to the nearest f16.
fn rounded(mut x: Input) -> Input {
    for v in &mut x.data {
        *v = f16::from_f32(*v).to_f32();
    }
    x
}

/// `w` kept as f16 where its device can, counting where it was.
fn as_half(w: &Tensor, runs: &Cell<usize>) -> keel::Result<Tensor> {
    if !w.device().has_f16() {
        return Ok(w.clone());
    }
    runs.set(runs.get() + 1);
    let h = w.to_dtype(DType::F16)?;
    assert_eq!(h.dtype(), DType::F16);
    Ok(h)
}

/// Fails the test when no device ran f16 although one has SHADER_F16.
fn ran_somewhere(t: &mut Runner, runs: &Cell<usize>, what: &str) {
    let capable = t.devices().iter().any(|d| d.has_f16());
    t.expect(runs.get() > 0 || !capable, what, || {
        "a device has SHADER_F16 but no case ran on f16".into()
    });
}

pub fn matmul(t: &mut Runner, rng: &mut Rng) {
    let runs = Cell::new(0);
    for &(m, k, n) in &[(1, 1, 1), (3, 7, 5), (65, 33, 130), (37, 15, 523)] {
        for tb in [false, true] {
            let a = Input::random(rng, &[m, k]);
            let b = rounded(Input::random(rng, &if tb { [n, k] } else { [k, n] }));
            let want = r::matmul(&a.f64(), &b.f64(), 1, m, n, k, false, tb, false, false);
            t.check(
                &format!("{m}x{k}x{n} tb={tb}, f16 rhs"),
                &[a, b],
                |x| x[0].matmul_t(&as_half(&x[1], &runs)?, false, tb),
                &Expected {
                    shape: vec![m, n],
                    data: want,
                },
            );
        }
    }
    // A batch of matrices times one shared f16 matrix (a Dense layer on a sequence).
    let a = Input::random(rng, &[3, 5, 9]);
    let b = rounded(Input::random(rng, &[9, 4]));
    let want = r::matmul(&a.f64(), &b.f64(), 3, 5, 4, 9, false, false, false, true);
    t.check(
        "batched × shared f16",
        &[a, b],
        |x| x[0].matmul(&as_half(&x[1], &runs)?),
        &Expected {
            shape: vec![3, 5, 4],
            data: want,
        },
    );
    ran_somewhere(t, &runs, "f16 matmul ran");
}

/// Input shape, kernel size, output channels, stride, padding, groups.
type ConvCase = (
    &'static [usize],
    (usize, usize),
    usize,
    usize,
    Padding,
    usize,
);

pub fn conv2d(t: &mut Runner, rng: &mut Rng) {
    let runs = Cell::new(0);
    // Dense 3×3 and 1×1, strided, grouped, and the depthwise kernels (the 3×3 stride-1 one and
    // the general one).
    let cases: &[ConvCase] = &[
        (&[2, 7, 7, 3], (3, 3), 8, 1, Padding::Same, 1),
        (&[1, 9, 6, 70], (1, 1), 67, 1, Padding::Valid, 1),
        (&[2, 9, 9, 5], (3, 3), 6, 2, Padding::Same, 1),
        (&[1, 7, 7, 6], (3, 3), 9, 1, Padding::Same, 3),
        (&[2, 9, 13, 35], (3, 3), 35, 1, Padding::Same, 35),
        (&[1, 13, 13, 5], (3, 3), 10, 2, Padding::Same, 5),
    ];
    for &(x, kernel, out_c, stride, padding, groups) in cases {
        let xi = Input::random(rng, x);
        let wi = rounded(Input::random(
            rng,
            &[kernel.0, kernel.1, x[3] / groups, out_c],
        ));
        let c = r::Conv::new(stride, 1, padding, groups);
        let (shape, want) = r::conv2d(&xi.f64(), x, &wi.f64(), &wi.shape, &c);
        let opts = Conv2dOptions::default()
            .stride(stride)
            .padding(padding)
            .groups(groups);
        t.check(
            &format!("x{x:?} k{kernel:?}→{out_c} s{stride} {padding:?} g{groups}, f16 kernel"),
            &[xi, wi],
            |v| v[0].conv2d(&as_half(&v[1], &runs)?, &opts),
            &Expected { shape, data: want },
        );
    }
    ran_somewhere(t, &runs, "f16 conv2d ran");
}

/// f16 storage is refused where it cannot be kept or used, each time saying why.
pub fn refusals(t: &mut Runner, _rng: &mut Rng) {
    let cpu = keel::Device::cpu();
    let w = Tensor::ones([2, 2], &cpu).expect("tensor");
    let err = w.to_dtype(DType::F16).map(|_| ()).unwrap_err().to_string();
    t.expect(err.contains("SHADER_F16"), "the CPU keeps f32", || {
        err.clone()
    });

    let Some(gpu) = t.devices().iter().find(|d| d.has_f16()).cloned() else {
        return;
    };
    let big = Tensor::from_vec(vec![1.0, -7e4, 2.0], [3], &gpu).expect("tensor");
    let err = big
        .to_dtype(DType::F16)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    t.expect(
        err.contains("element 1") && err.contains("65504"),
        "a value beyond f16's range is named",
        || err.clone(),
    );

    let values = [0.1f32, -3.3, 65504.0, 1e-6, f32::NAN];
    let h = Tensor::from_slice(&values, [5], &gpu)
        .and_then(|x| x.to_dtype(DType::F16))
        .expect("to f16");
    let back = h.to_vec().expect("read back");
    let want: Vec<f32> = values.iter().map(|&v| f16::from_f32(v).to_f32()).collect();
    t.expect(
        back.iter()
            .zip(&want)
            .all(|(a, b)| a == b || (a.is_nan() && b.is_nan())),
        "f16 values read back rounded to nearest",
        || format!("{back:?} vs {want:?}"),
    );
    let f32_again = h.to_dtype(DType::F32).and_then(|x| x.to_vec());
    t.expect(
        f32_again.as_ref().is_ok_and(|v| v[..4] == want[..4]),
        "f16 converts back to f32",
        || format!("{f32_again:?}"),
    );

    let k = Tensor::ones([3, 3, 2, 4], &gpu)
        .and_then(|k| k.to_dtype(DType::F16))
        .expect("kernel");
    let refused = [
        ("relu", k.relu().map(|_| ()).unwrap_err().to_string()),
        (
            "permute",
            k.permute(&[3, 0, 1, 2])
                .map(|_| ())
                .unwrap_err()
                .to_string(),
        ),
        (
            "input gradient",
            Tensor::ones([1, 4, 4, 4], &gpu)
                .and_then(|dy| {
                    dy.conv2d_backward_input(
                        &k,
                        &Shape::new([1, 4, 4, 2]),
                        &Conv2dOptions::default().padding(Padding::Same),
                    )
                })
                .map(|_| ())
                .unwrap_err()
                .to_string(),
        ),
    ];
    for (what, err) in refused {
        t.expect(err.contains("f16"), &format!("{what} refuses f16"), || {
            err.clone()
        });
    }
}
