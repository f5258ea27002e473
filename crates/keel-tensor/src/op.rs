//! The op vocabulary shared by both backends (and by autograd's backward rules).

/// The larger of `a` and `b`, NaN when either is (PyTorch's `maximum`; `f32::max` drops NaN).
/// Two selects, so that loops over it vectorise.
#[inline(always)]
pub(crate) fn nan_max(a: f32, b: f32) -> f32 {
    let larger = if a > b { a } else { b }; // b when either is NaN
    if a.is_nan() {
        a
    } else {
        larger
    }
}

/// The smaller of `a` and `b`, NaN when either is.
#[inline(always)]
pub(crate) fn nan_min(a: f32, b: f32) -> f32 {
    let smaller = if a < b { a } else { b }; // b when either is NaN
    if a.is_nan() {
        a
    } else {
        smaller
    }
}

/// Whether `v` replaces `best` as a running maximum: larger, or a NaN where `best` is not (a
/// NaN is the maximum of anything it is among, as in PyTorch's argmax and max-pooling).
#[inline(always)]
pub(crate) fn ranks_above(v: f32, best: f32) -> bool {
    (v > best) | (v.is_nan() & !best.is_nan())
}

/// PCG's output hash of a 32-bit value (O'Neill's `pcg_hash`): the mixing step of
/// [`mask_value`], the same in `shaders/elementwise.wgsl`.
#[inline(always)]
fn pcg_hash(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// Element `index` of the inverted-dropout mask of `seed`: 0 with probability `rate`, else
/// `keep` (1 / (1 − rate)). Counter-based, so every device makes the same mask in parallel.
#[inline(always)]
pub(crate) fn mask_value(seed: u64, index: u32, rate: f32, keep: f32) -> f32 {
    let stream = pcg_hash(pcg_hash(seed as u32) ^ (seed >> 32) as u32);
    let bits = pcg_hash(stream ^ pcg_hash(index));
    let u = (bits >> 8) as f32 / (1u32 << 24) as f32;
    if u < rate {
        0.0
    } else {
        keep
    }
}

/// Elementwise functions of one tensor (and scalar ops, which carry their scalars).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// max(x, 0); NaN stays NaN
    Relu,
    /// min(max(x, 0), 6); NaN stays NaN
    Relu6,
    /// 1 / (1 + e^-x), computed without overflow
    Sigmoid,
    /// tanh(x), computed without overflow
    Tanh,
    /// e^x
    Exp,
    /// natural logarithm
    Log,
    /// square root
    Sqrt,
    /// -x
    Neg,
    /// |x|
    Abs,
    /// x · mul + add (scalar add, sub, mul, div)
    Affine {
        /// factor
        mul: f32,
        /// offset
        add: f32,
    },
    /// max(x, s); NaN stays NaN
    MaxScalar(f32),
    /// min(x, s); NaN stays NaN
    MinScalar(f32),
    /// x^s
    PowScalar(f32),
    /// 1 where x > s, else 0 (masks for gradients)
    Above(f32),
    /// −1, 0 or 1 by the sign of x; NaN stays NaN
    Sign,
    /// x · sigmoid(x) (SiLU, swish); −∞ gives NaN, as in PyTorch
    Silu,
    /// min(max(x + 3, 0), 6) / 6 (PyTorch's `hardsigmoid`, Keras 3's `hard_sigmoid`)
    HardSigmoid,
    /// x · min(max(x + 3, 0), 6) / 6 (MobileNetV3's hard-swish); −∞ gives NaN, as in PyTorch
    HardSwish,
    /// x · Φ(x) = x / 2 · (1 + erf(x / √2)), the exact GELU (erf to 1.5e-7, Abramowitz and
    /// Stegun 7.1.26); −∞ gives NaN (−∞ · 0)
    Gelu,
    /// GELU's derivative Φ(x) + x · φ(x), for its gradient
    GeluDerivative,
}

impl UnaryOp {
    /// The op code used by `shaders/elementwise.wgsl`, and the two scalars it carries.
    pub(crate) fn code(self) -> (u32, f32, f32) {
        match self {
            UnaryOp::Relu => (0, 0.0, 0.0),
            UnaryOp::Relu6 => (1, 0.0, 0.0),
            UnaryOp::Sigmoid => (2, 0.0, 0.0),
            UnaryOp::Tanh => (3, 0.0, 0.0),
            UnaryOp::Exp => (4, 0.0, 0.0),
            UnaryOp::Log => (5, 0.0, 0.0),
            UnaryOp::Sqrt => (6, 0.0, 0.0),
            UnaryOp::Neg => (7, 0.0, 0.0),
            UnaryOp::Abs => (8, 0.0, 0.0),
            UnaryOp::Affine { mul, add } => (9, mul, add),
            UnaryOp::MaxScalar(s) => (10, s, 0.0),
            UnaryOp::MinScalar(s) => (11, s, 0.0),
            UnaryOp::PowScalar(s) => (12, s, 0.0),
            UnaryOp::Above(s) => (13, s, 0.0),
            UnaryOp::Sign => (14, 0.0, 0.0),
            UnaryOp::Silu => (15, 0.0, 0.0),
            UnaryOp::HardSigmoid => (16, 0.0, 0.0),
            UnaryOp::HardSwish => (17, 0.0, 0.0),
            UnaryOp::Gelu => (18, 0.0, 0.0),
            UnaryOp::GeluDerivative => (19, 0.0, 0.0),
        }
    }

    /// The function itself, for the CPU backend (inlined, so that a loop over one op compiles
    /// to that op alone).
    #[inline(always)]
    pub(crate) fn apply(self, x: f32) -> f32 {
        match self {
            UnaryOp::Relu => nan_max(x, 0.0),
            UnaryOp::Relu6 => relu6(x),
            UnaryOp::Sigmoid => sigmoid(x),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Neg => -x,
            UnaryOp::Abs => x.abs(),
            UnaryOp::Affine { mul, add } => x * mul + add,
            UnaryOp::MaxScalar(s) => nan_max(x, s),
            UnaryOp::MinScalar(s) => nan_min(x, s),
            UnaryOp::PowScalar(s) => x.powf(s),
            UnaryOp::Above(s) => f32::from(x > s),
            UnaryOp::Sign => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else if x.is_nan() {
                    x
                } else {
                    0.0
                }
            }
            UnaryOp::Silu => x * sigmoid(x),
            UnaryOp::HardSigmoid => relu6(x + 3.0) / 6.0,
            UnaryOp::HardSwish => x * relu6(x + 3.0) / 6.0,
            UnaryOp::Gelu => 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)),
            UnaryOp::GeluDerivative => {
                let cdf = 0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
                cdf + x * (-0.5 * x * x).exp() * 0.398_942_3 // 1 / √(2π)
            }
        }
    }
}

/// erf(x) to 1.5e-7 (Abramowitz and Stegun 7.1.26; `shaders/elementwise.wgsl` has the same).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let e = 1.0 - poly * (-a * a).exp();
    if x.is_nan() {
        x
    } else {
        e.copysign(x)
    }
}

/// 1 / (1 + e^-x) without overflow, from e^-|x|: without branches or calls, so that a loop of
/// it vectorises (SiLU and sigmoid gates are a large part of EfficientNet's time).
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    let e = exp_nonpositive(-x.abs());
    let r = 1.0 / (1.0 + e);
    if x >= 0.0 {
        r
    } else {
        e * r
    }
}

/// e^x for x ≤ 0 (NaN stays NaN), to within 2 ulp, subnormal results included: Cephes'
/// `expf` (x = n·ln 2 + r, |r| ≤ ln 2 / 2, a degree-6 polynomial for e^r) with 2^n built from
/// its bits, in two halves below 2^-126.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    // Below −104, e^x rounds to 0 in f32. A NaN fails the comparison and stays.
    let x = if x < -104.0 { -104.0 } else { x };
    // Round x / ln 2 to the nearest integer by adding and subtracting 1.5 · 2^23; the sum's low
    // mantissa bits hold that integer, read as bits rather than by a float-to-int cast (which
    // saturates, so it does not vectorise).
    const ROUND: f32 = 12_582_912.0;
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e_r = p * r * r + r + 1.0;
    // −150 ≤ n ≤ 0 (any value for NaN, whose e_r is NaN).
    let n = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let half = n / 2;
    let two_to = |k: i32| f32::from_bits((k.wrapping_add(127) as u32) << 23);
    e_r * two_to(half) * two_to(n.wrapping_sub(half))
}

/// min(max(x, 0), 6), NaN kept.
#[inline(always)]
fn relu6(x: f32) -> f32 {
    nan_min(nan_max(x, 0.0), 6.0)
}

/// Elementwise functions of two tensors, with NumPy broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// a + b
    Add,
    /// a − b
    Sub,
    /// a · b
    Mul,
    /// a / b
    Div,
    /// max(a, b); NaN when either is
    Max,
    /// min(a, b); NaN when either is
    Min,
    /// 1 where a > b, else 0
    Greater,
    /// 1 where a = b, else 0
    Equal,
    /// a · relu′(b): the gradient a through a ReLU whose input or output is b
    ReluGrad,
    /// a · relu6′(b): the gradient a through a ReLU6 whose input is b (1 on (0, 6], else 0)
    Relu6Grad,
    /// a · silu′(b) = a · s · (1 + b · (1 − s)), s = sigmoid(b): the gradient through a SiLU
    SiluGrad,
    /// a · hard_swish′(b) (0 below −3, b/3 + 1/2 up to 3, 1 above): the gradient through a
    /// hard-swish, as PyTorch's `hardswish_backward`
    HardSwishGrad,
}

impl BinaryOp {
    /// The op code used by `shaders/elementwise.wgsl`.
    pub(crate) fn code(self) -> u32 {
        self as u32
    }

    /// The function itself, for the CPU backend.
    #[inline(always)]
    pub(crate) fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Max => nan_max(a, b),
            BinaryOp::Min => nan_min(a, b),
            BinaryOp::Greater => f32::from(a > b),
            BinaryOp::Equal => f32::from(a == b),
            BinaryOp::ReluGrad => a * f32::from(b > 0.0),
            BinaryOp::Relu6Grad => a * (f32::from(b > 0.0) - f32::from(b > 6.0)),
            BinaryOp::SiluGrad => {
                let s = sigmoid(b);
                a * (s * (1.0 + b * (1.0 - s)))
            }
            BinaryOp::HardSwishGrad => {
                let inside = f32::from(b > -3.0) - f32::from(b > 3.0);
                a * (inside * (b * (1.0 / 3.0) + 0.5) + f32::from(b > 3.0))
            }
        }
    }

    /// The op's name in error messages.
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Max => "maximum",
            BinaryOp::Min => "minimum",
            BinaryOp::Greater => "greater",
            BinaryOp::Equal => "equal",
            BinaryOp::ReluGrad => "relu_grad",
            BinaryOp::Relu6Grad => "relu6_grad",
            BinaryOp::SiluGrad => "silu_grad",
            BinaryOp::HardSwishGrad => "hard_swish_grad",
        }
    }
}

/// Reductions along an axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    /// Σ
    Sum,
    /// Σ / n
    Mean,
    /// largest element
    Max,
    /// smallest element
    Min,
}

impl ReduceOp {
    /// The op code used by `shaders/reduce.wgsl`.
    pub(crate) fn code(self) -> u32 {
        self as u32
    }
}

/// Which pooling window function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolOp {
    /// Largest value under the window.
    Max,
    /// Mean of the real (unpadded) values under the window.
    Avg,
}

/// An activation fused into a per-channel affine map (batch-norm followed by ReLU, say).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Activation {
    /// No activation.
    #[default]
    None,
    /// max(x, 0)
    Relu,
    /// min(max(x, 0), 6)
    Relu6,
    /// x · sigmoid(x)
    Silu,
    /// x · min(max(x + 3, 0), 6) / 6
    HardSwish,
}

impl Activation {
    /// The activation of one value.
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => UnaryOp::Relu.apply(x),
            Activation::Relu6 => UnaryOp::Relu6.apply(x),
            Activation::Silu => UnaryOp::Silu.apply(x),
            Activation::HardSwish => UnaryOp::HardSwish.apply(x),
        }
    }

    /// The op that multiplies a gradient by this activation's derivative at its input,
    /// `g · act′(x)`; `None` for no activation.
    #[inline(always)]
    pub fn gradient(self) -> Option<BinaryOp> {
        match self {
            Activation::None => None,
            Activation::Relu => Some(BinaryOp::ReluGrad),
            Activation::Relu6 => Some(BinaryOp::Relu6Grad),
            Activation::Silu => Some(BinaryOp::SiluGrad),
            Activation::HardSwish => Some(BinaryOp::HardSwishGrad),
        }
    }
}

/// Shape of a batched matmul: `batch` products of (m×k)·(k×n), operands optionally transposed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MatmulDims {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    /// Elements between consecutive matrices of A (0 to reuse one matrix for every batch).
    pub a_batch_stride: usize,
    /// Same for B.
    pub b_batch_stride: usize,
}

#[cfg(test)]
mod exp_tests {
    #[test]
    fn exp_nonpositive_within_two_ulp_of_f64() {
        let mut worst = 0.0f64;
        for i in 0..=2_000_000 {
            let x = -104.0 * i as f64 / 2_000_000.0;
            let got = f64::from(super::exp_nonpositive(x as f32));
            let want = (x as f32 as f64).exp();
            // One ulp of the f32 result (of the smallest normal, for subnormal results).
            let ulp = f64::from(f32::EPSILON) * want.max(f64::from(f32::MIN_POSITIVE));
            worst = worst.max((got - want).abs() / ulp);
        }
        assert!(worst <= 2.0, "{worst} ulp");
        assert!(super::exp_nonpositive(f32::NAN).is_nan());
        assert_eq!(super::exp_nonpositive(f32::NEG_INFINITY), 0.0);
        assert_eq!(super::exp_nonpositive(0.0), 1.0);
    }
}
