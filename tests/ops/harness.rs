//! One helper that runs an op on every device and compares it with an f64 reference.
//!
//! Inputs are random; outputs are poisoned with NaN before each kernel runs, so an element a
//! kernel forgot to write fails the comparison. With `KEEL_REQUIRE_WGPU=1` (CI) a missing wgpu
//! adapter is a failure, never a silent skip.

use keel::{Device, GemmKernels, Tensor};
use std::fmt::Display;

/// A deterministic random source (SplitMix64), so a failure reproduces.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
    }
    /// `n` values uniform in [lo, hi).
    pub fn values(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

/// A host-side input: shape and row-major values.
#[derive(Clone)]
pub struct Input {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Input {
    /// Random values in [-1, 1).
    pub fn random(rng: &mut Rng, shape: &[usize]) -> Input {
        Input {
            shape: shape.to_vec(),
            data: rng.values(shape.iter().product(), -1.0, 1.0),
        }
    }
    /// Random values in [lo, hi).
    pub fn random_in(rng: &mut Rng, shape: &[usize], lo: f32, hi: f32) -> Input {
        Input {
            shape: shape.to_vec(),
            data: rng.values(shape.iter().product(), lo, hi),
        }
    }
    /// Random values in [-1, 1) of which about `fraction` are NaN, +∞ or −∞ (a third each).
    pub fn with_non_finite(rng: &mut Rng, shape: &[usize], fraction: f32) -> Input {
        let mut x = Input::random(rng, shape);
        for v in &mut x.data {
            if rng.uniform(0.0, 1.0) < fraction {
                *v = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][(rng.next_u64() % 3) as usize];
            }
        }
        x
    }
    /// The values in f64, for references.
    pub fn f64(&self) -> Vec<f64> {
        self.data.iter().map(|&v| v as f64).collect()
    }
}

/// What a reference computed.
pub struct Expected {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

/// The devices under test and what ran on each.
pub struct Runner {
    devices: Vec<Device>,
    cases: Vec<usize>,
    failures: Vec<String>,
    current: String,
    /// Relative tolerance: |got − want| ≤ tol · max(|want|, 1).
    pub tol: f64,
}

impl Runner {
    /// The CPU backend, plus the wgpu adapter when there is one (required with KEEL_REQUIRE_WGPU=1),
    /// once per choice of GEMM kernels where the choice makes a difference.
    pub fn new() -> Runner {
        keel::tensor::debug::set_poison_outputs(true);
        let mut devices = vec![Device::cpu()];
        let mut failures = Vec::new();
        match Device::wgpu() {
            Ok(d) => {
                devices.push(d);
                // Where the adapter runs the subgroup GEMMs, the workgroup-tiled ones are tested too.
                match Device::wgpu_with(GemmKernels::Tiled) {
                    Ok(tiled) if !devices.contains(&tiled) => devices.push(tiled),
                    Ok(_) => {}
                    Err(e) => failures.push(format!("the tiled-GEMM wgpu device: {e}")),
                }
            }
            Err(e) if std::env::var("KEEL_REQUIRE_WGPU").is_ok_and(|v| v == "1") => {
                failures.push(format!("KEEL_REQUIRE_WGPU=1 but no wgpu adapter: {e}"));
            }
            Err(e) => eprintln!("note: no wgpu adapter, testing the CPU backend only ({e})"),
        }
        let cases = vec![0; devices.len()];
        Runner {
            devices,
            cases,
            failures,
            current: String::new(),
            tol: 1e-4,
        }
    }

    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    pub fn begin(&mut self, test: &str) {
        self.current = test.to_string();
    }

    fn fail(&mut self, device: &Device, case: &str, why: String) {
        self.failures
            .push(format!("{} [{case}] on {device}: {why}", self.current));
    }

    /// Runs `op` on `inputs` on every device; `verify` returns why the output is wrong, if it is.
    fn run_case<E: Display>(
        &mut self,
        case: &str,
        inputs: &[Input],
        op: impl Fn(&[Tensor]) -> Result<Tensor, E>,
        verify: impl Fn(&Tensor) -> keel::Result<Option<String>>,
    ) {
        for i in 0..self.devices.len() {
            let device = self.devices[i].clone();
            self.cases[i] += 1;
            let outcome =
                run_on(&device, inputs, &op).and_then(|y| verify(&y).map_err(|e| e.to_string()));
            match outcome {
                Err(e) => self.fail(&device, case, format!("error: {e}")),
                Ok(Some(why)) => self.fail(&device, case, why),
                Ok(None) => {}
            }
        }
    }

    /// Runs `op` on `inputs` on every device and compares with `expected` within `tol`.
    pub fn check<E: Display>(
        &mut self,
        case: &str,
        inputs: &[Input],
        op: impl Fn(&[Tensor]) -> Result<Tensor, E>,
        expected: &Expected,
    ) {
        let tol = self.tol;
        self.run_case(case, inputs, op, |y| {
            if y.dims() != expected.shape {
                return Ok(Some(format!(
                    "shape {:?}, expected {:?}",
                    y.dims(),
                    expected.shape
                )));
            }
            Ok(compare(&y.to_vec()?, &expected.data, tol))
        });
    }

    /// Like [`check`](Self::check) for ops with an i32 result, compared exactly.
    pub fn check_i32(
        &mut self,
        case: &str,
        inputs: &[Input],
        op: impl Fn(&[Tensor]) -> keel::Result<Tensor>,
        shape: &[usize],
        expected: &[i32],
    ) {
        self.run_case(case, inputs, op, |y| {
            let got = y.to_vec_i32()?;
            let ok = y.dims() == shape && got == expected;
            Ok((!ok).then(|| {
                format!(
                    "got {:?} {got:?}, expected {shape:?} {expected:?}",
                    y.dims()
                )
            }))
        });
    }

    /// Records a failure that is not a comparison (an error test, say).
    pub fn expect(&mut self, ok: bool, case: &str, why: impl FnOnce() -> String) {
        self.cases.iter_mut().for_each(|c| *c += 1);
        if !ok {
            self.failures
                .push(format!("{} [{case}]: {}", self.current, why()));
        }
    }

    pub fn failure_count(&self) -> usize {
        self.failures.len()
    }

    /// Prints what ran where and the failures; returns whether everything passed.
    pub fn report(&self, tests: usize, failed_tests: usize) -> bool {
        for f in &self.failures {
            println!("FAILED {f}");
        }
        for (d, n) in self.devices.iter().zip(&self.cases) {
            println!("{n} cases ran on {d}");
        }
        if !self.devices.iter().any(|d| d.is_wgpu()) {
            println!("no wgpu adapter: WGSL kernels were not exercised");
        }
        println!("{} passed, {} failed", tests - failed_tests, failed_tests);
        self.failures.is_empty()
    }
}

/// Uploads `inputs` to `device` and applies `op`.
fn run_on<E: Display>(
    device: &Device,
    inputs: &[Input],
    op: &impl Fn(&[Tensor]) -> Result<Tensor, E>,
) -> Result<Tensor, String> {
    let tensors = inputs
        .iter()
        .map(|x| Tensor::from_slice(&x.data, x.shape.clone(), device))
        .collect::<keel::Result<Vec<_>>>()
        .map_err(|e| e.to_string())?;
    op(&tensors).map_err(|e| e.to_string())
}

/// None if every element is within tolerance, else a description of the worst one.
fn compare(got: &[f32], want: &[f64], tol: f64) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!("{} values, expected {}", got.len(), want.len()));
    }
    let mut worst: Option<(usize, f64)> = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs() / w.abs().max(1.0);
        // NaN (an unwritten, poisoned element) must fail where a number is expected; where NaN or
        // ±∞ is expected, exactly that must come out.
        let bad = if w.is_finite() {
            err.is_nan() || err > tol
        } else {
            !(g as f64 == w || (g.is_nan() && w.is_nan()))
        };
        if bad && worst.is_none_or(|(_, e)| err > e || err.is_nan()) {
            worst = Some((i, err));
        }
    }
    worst.map(|(i, err)| {
        format!(
            "element {i}: got {}, expected {} (relative error {err:.2e} > {tol:.0e})",
            got[i], want[i]
        )
    })
}

/// A test: checks on every device through the runner, with its own random source.
pub type Test = fn(&mut Runner, &mut Rng);

/// Runs the `tests` whose names contain one of the command-line filters (all without filters),
/// each with a random source seeded from its name length times `seed`, prints one line per test
/// and the report, and exits with 1 if anything failed.
pub fn run_tests(tests: &[(&str, Test)], seed: u64) {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut runner = Runner::new();
    let (mut ran, mut failed) = (0, 0);
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        runner.begin(name);
        let before = runner.failure_count();
        test(&mut runner, &mut Rng::new(name.len() as u64 * seed));
        let ok = runner.failure_count() == before;
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        ran += 1;
        failed += usize::from(!ok);
    }
    if !runner.report(ran, failed) {
        std::process::exit(1);
    }
}
