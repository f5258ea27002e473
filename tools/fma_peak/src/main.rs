//! Measures the f32 FMA throughput of this x86-64 CPU: 12 independent chains of vector
//! multiply-adds (more than latency × pipes on any current core), on one thread and on every
//! thread of rayon's pool, with 512-bit (AVX-512) and 256-bit (AVX2) vectors. Best of five runs.

use std::arch::x86_64::*;
use std::time::Instant;

const CHAINS: usize = 12;

/// A vector width's name, its chains, and its f32 lanes.
type Kernel = (&'static str, fn() -> f32, usize);
const ITERATIONS: usize = 20_000_000;

/// 12 chains of 512-bit FMAs; returns a sum so the work is not optimised away.
#[target_feature(enable = "avx512f")]
fn chains_512() -> f32 {
    let mut acc = [_mm512_setzero_ps(); CHAINS];
    let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    for _ in 0..ITERATIONS {
        for r in acc.iter_mut() {
            *r = _mm512_fmadd_ps(*r, a, b);
        }
    }
    acc.iter().map(|&r| _mm512_reduce_add_ps(r)).sum()
}

/// 12 chains of 256-bit FMAs.
#[target_feature(enable = "avx2,fma")]
fn chains_256() -> f32 {
    let mut acc = [_mm256_setzero_ps(); CHAINS];
    let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    for _ in 0..ITERATIONS {
        for r in acc.iter_mut() {
            *r = _mm256_fmadd_ps(*r, a, b);
        }
    }
    let mut lanes = [0f32; 8];
    for r in acc {
        let mut v = [0f32; 8];
        // SAFETY: `v` holds 8 floats.
        unsafe { _mm256_storeu_ps(v.as_mut_ptr(), r) };
        lanes.iter_mut().zip(v).for_each(|(l, x)| *l += x);
    }
    lanes.iter().sum()
}

/// GFLOP/s of `run` (which does `flops` floating-point operations) on `threads` threads at once.
fn gflops(run: fn() -> f32, flops: f64, threads: usize) -> f64 {
    let best = (0..5)
        .map(|_| {
            let start = Instant::now();
            let sums = rayon::broadcast(|ctx| if ctx.index() < threads { run() } else { 0.0 });
            std::hint::black_box(sums);
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    flops * threads as f64 / best / 1e9
}

fn main() {
    let all = rayon::current_num_threads();
    let mut kernels: Vec<Kernel> = Vec::new();
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: the feature was detected above.
        kernels.push(("AVX-512", || unsafe { chains_512() }, 16));
    }
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the features were detected above.
        kernels.push(("AVX2", || unsafe { chains_256() }, 8));
    }
    if kernels.is_empty() {
        eprintln!("this CPU has neither AVX-512 nor AVX2 with FMA");
        std::process::exit(1);
    }
    for (name, run, lanes) in kernels {
        let flops = (ITERATIONS * CHAINS * lanes * 2) as f64;
        let one = gflops(run, flops, 1);
        let every = gflops(run, flops, all);
        println!("{name:8} FMA peak: {one:6.1} GFLOP/s on 1 thread, {every:6.1} GFLOP/s on {all} threads");
    }
}
