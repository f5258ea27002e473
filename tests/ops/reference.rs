//! Plain f64 reference implementations, written from the definitions with no shared code
//! with the library.

/// The larger of `a` and `b`, NaN when either is (PyTorch's `maximum`, unlike `f64::max`).
pub fn nan_max(a: f64, b: f64) -> f64 {
    if a > b || a.is_nan() {
        a
    } else {
        b
    }
}

/// The smaller of `a` and `b`, NaN when either is.
pub fn nan_min(a: f64, b: f64) -> f64 {
    if a < b || a.is_nan() {
        a
    } else {
        b
    }
}

/// The maximum of `values`, NaN when any is; −∞ for none.
pub fn max_of(values: impl IntoIterator<Item = f64>) -> f64 {
    values.into_iter().fold(f64::NEG_INFINITY, nan_max)
}

/// The minimum of `values`, NaN when any is; +∞ for none.
pub fn min_of(values: impl IntoIterator<Item = f64>) -> f64 {
    values.into_iter().fold(f64::INFINITY, nan_min)
}

/// Whether `a` ranks above `b` as a maximum: larger, or NaN where `b` is not.
pub fn ranks_above(a: f64, b: f64) -> bool {
    a > b || (a.is_nan() && !b.is_nan())
}

/// Row-major strides.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Multi-index of a linear index.
pub fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
    idx
}

/// C = op(A)·op(B) for `batch` matrices; a batch stride of 0 shares one matrix.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    a: &[f64],
    b: &[f64],
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    a_shared: bool,
    b_shared: bool,
) -> Vec<f64> {
    let mut c = vec![0.0; batch * m * n];
    for bi in 0..batch {
        let ao = if a_shared { 0 } else { bi * m * k };
        let bo = if b_shared { 0 } else { bi * k * n };
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                for p in 0..k {
                    let av = if ta {
                        a[ao + p * m + i]
                    } else {
                        a[ao + i * k + p]
                    };
                    let bv = if tb {
                        b[bo + j * k + p]
                    } else {
                        b[bo + p * n + j]
                    };
                    s += av * bv;
                }
                c[bi * m * n + i * n + j] = s;
            }
        }
    }
    c
}

/// Output length and leading pad of one axis: explicit pads, or TensorFlow's `same` when `None`.
pub fn axis(
    input: usize,
    k: usize,
    s: usize,
    d: usize,
    pad: Option<(usize, usize)>,
) -> (usize, usize) {
    let span = (k - 1) * d + 1;
    match pad {
        Some((b, a)) => ((input + b + a - span) / s + 1, b),
        None => {
            let out = input.div_ceil(s);
            let total = ((out - 1) * s + span).saturating_sub(input);
            (out, total / 2)
        }
    }
}

/// Convolution geometry for the reference: (stride, dilation, pads per axis or None for same).
pub struct Conv {
    pub stride: (usize, usize),
    pub dilation: (usize, usize),
    pub pad: Option<((usize, usize), (usize, usize))>,
    pub groups: usize,
}

impl Conv {
    /// The geometry of keel's `Conv2dOptions` with these square stride and dilation.
    pub fn new(stride: usize, dilation: usize, padding: keel::Padding, groups: usize) -> Conv {
        let pad = match padding {
            keel::Padding::Valid => Some(((0, 0), (0, 0))),
            keel::Padding::Same => None,
            keel::Padding::Explicit {
                top,
                bottom,
                left,
                right,
            } => Some(((top, bottom), (left, right))),
        };
        Conv {
            stride: (stride, stride),
            dilation: (dilation, dilation),
            pad,
            groups,
        }
    }
}

/// Output height and width of the convolution, and its top and left padding.
fn conv_geometry(xs: &[usize], ws: &[usize], c: &Conv) -> ((usize, usize), (usize, usize)) {
    let (oh, pt) = axis(xs[1], ws[0], c.stride.0, c.dilation.0, c.pad.map(|p| p.0));
    let (ow, pl) = axis(xs[2], ws[1], c.stride.1, c.dilation.1, c.pad.map(|p| p.1));
    ((oh, ow), (pt, pl))
}

/// Calls `f(y, x, w)` with the flat indices of every product of a direct NHWC × HWIO
/// convolution (output element, input element, kernel element).
fn conv_products(xs: &[usize], ws: &[usize], c: &Conv, mut f: impl FnMut(usize, usize, usize)) {
    let (n, h, wd, ci) = (xs[0], xs[1], xs[2], xs[3]);
    let (kh, kw, cg, co) = (ws[0], ws[1], ws[2], ws[3]);
    let og = co / c.groups;
    let ((oh, ow), (pt, pl)) = conv_geometry(xs, ws, c);
    for b in 0..n {
        for i in 0..oh {
            for j in 0..ow {
                for o in 0..co {
                    let yi = ((b * oh + i) * ow + j) * co + o;
                    for p in 0..kh {
                        for q in 0..kw {
                            let ih = (i * c.stride.0 + p * c.dilation.0) as isize - pt as isize;
                            let iw = (j * c.stride.1 + q * c.dilation.1) as isize - pl as isize;
                            if ih < 0 || iw < 0 || ih >= h as isize || iw >= wd as isize {
                                continue;
                            }
                            for r in 0..cg {
                                let xi = ((b * h + ih as usize) * wd + iw as usize) * ci
                                    + o / og * cg
                                    + r;
                                f(yi, xi, ((p * kw + q) * cg + r) * co + o);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Direct NHWC × HWIO convolution.
pub fn conv2d(
    x: &[f64],
    xs: &[usize],
    w: &[f64],
    ws: &[usize],
    c: &Conv,
) -> (Vec<usize>, Vec<f64>) {
    let ((oh, ow), _) = conv_geometry(xs, ws, c);
    let shape = vec![xs[0], oh, ow, ws[3]];
    let mut y = vec![0.0; shape.iter().product()];
    conv_products(xs, ws, c, |yi, xi, wi| y[yi] += x[xi] * w[wi]);
    (shape, y)
}

/// Gradients of [`conv2d`] with respect to x and w, given the output gradient `dy`.
pub fn conv2d_grads(
    x: &[f64],
    xs: &[usize],
    w: &[f64],
    ws: &[usize],
    dy: &[f64],
    c: &Conv,
) -> (Vec<f64>, Vec<f64>) {
    let mut dx = vec![0.0; x.len()];
    let mut dw = vec![0.0; w.len()];
    conv_products(xs, ws, c, |yi, xi, wi| {
        dx[xi] += dy[yi] * w[wi];
        dw[wi] += dy[yi] * x[xi];
    });
    (dx, dw)
}

/// For each output element of a pooling window, the flat input indices under its window
/// (padded positions excluded), in row-major order.
fn pool_windows(
    xs: &[usize],
    size: (usize, usize),
    stride: (usize, usize),
    same: bool,
) -> (Vec<usize>, Vec<Vec<usize>>) {
    let (n, h, w, c) = (xs[0], xs[1], xs[2], xs[3]);
    let pad = |_: usize| if same { None } else { Some((0, 0)) };
    let (oh, pt) = axis(h, size.0, stride.0, 1, pad(0));
    let (ow, pl) = axis(w, size.1, stride.1, 1, pad(1));
    let mut windows = Vec::new();
    for b in 0..n {
        for i in 0..oh {
            for j in 0..ow {
                for ch in 0..c {
                    let mut idx = Vec::new();
                    for p in 0..size.0 {
                        for q in 0..size.1 {
                            let ih = (i * stride.0 + p) as isize - pt as isize;
                            let iw = (j * stride.1 + q) as isize - pl as isize;
                            if ih >= 0 && iw >= 0 && ih < h as isize && iw < w as isize {
                                idx.push(((b * h + ih as usize) * w + iw as usize) * c + ch);
                            }
                        }
                    }
                    windows.push(idx);
                }
            }
        }
    }
    (vec![n, oh, ow, c], windows)
}

/// Max or average pooling (padded positions excluded).
pub fn pool(
    x: &[f64],
    xs: &[usize],
    size: (usize, usize),
    stride: (usize, usize),
    same: bool,
    max: bool,
) -> (Vec<usize>, Vec<f64>) {
    let (shape, windows) = pool_windows(xs, size, stride, same);
    let y = windows
        .iter()
        .map(|idx| {
            let vals = idx.iter().map(|&i| x[i]);
            if max {
                max_of(vals)
            } else {
                vals.sum::<f64>() / idx.len() as f64
            }
        })
        .collect();
    (shape, y)
}

/// Gradient of [`pool`] with respect to x: max to the first maximum of each window (a NaN
/// being the maximum), average spread evenly.
pub fn pool_backward(
    x: &[f64],
    xs: &[usize],
    dy: &[f64],
    size: (usize, usize),
    stride: (usize, usize),
    same: bool,
    max: bool,
) -> Vec<f64> {
    let (_, windows) = pool_windows(xs, size, stride, same);
    let mut dx = vec![0.0; x.len()];
    for (idx, &g) in windows.iter().zip(dy) {
        if max {
            let first =
                idx.iter().copied().fold(
                    idx[0],
                    |best, i| if ranks_above(x[i], x[best]) { i } else { best },
                );
            dx[first] += g;
        } else {
            idx.iter().for_each(|&i| dx[i] += g / idx.len() as f64);
        }
    }
    dx
}

/// Reduces `axes` of `x` with `f` over the collected values.
pub fn reduce(
    x: &[f64],
    shape: &[usize],
    axes: &[usize],
    keepdim: bool,
    f: impl Fn(&[f64]) -> f64,
) -> (Vec<usize>, Vec<f64>) {
    let kept_shape: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect();
    let count: usize = kept_shape.iter().product();
    let mut groups = vec![Vec::new(); count];
    let ks = strides(&kept_shape);
    for (i, &v) in x.iter().enumerate() {
        let idx = unravel(i, shape);
        let o: usize = idx
            .iter()
            .enumerate()
            .map(|(d, &c)| if axes.contains(&d) { 0 } else { c * ks[d] })
            .sum();
        groups[o].push(v);
    }
    let out_shape = if keepdim {
        kept_shape
    } else {
        shape
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .collect()
    };
    (out_shape, groups.iter().map(|g| f(g)).collect())
}

/// Softmax or log-softmax of rows of length `cols`.
pub fn softmax(x: &[f64], cols: usize, log: bool) -> Vec<f64> {
    x.chunks(cols)
        .flat_map(|row| {
            let m = max_of(row.iter().copied());
            let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
            row.iter()
                .map(move |v| {
                    if log {
                        v - m - s.ln()
                    } else {
                        (v - m).exp() / s
                    }
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Broadcast binary op.
pub fn broadcast(
    a: &[f64],
    sa: &[usize],
    b: &[f64],
    sb: &[usize],
    f: impl Fn(f64, f64) -> f64,
) -> (Vec<usize>, Vec<f64>) {
    let rank = sa.len().max(sb.len());
    let pad = |s: &[usize]| [vec![1; rank - s.len()], s.to_vec()].concat();
    let (pa, pb) = (pad(sa), pad(sb));
    let out: Vec<usize> = pa.iter().zip(&pb).map(|(&x, &y)| x.max(y)).collect();
    let (ta, tb) = (strides(&pa), strides(&pb));
    let n: usize = out.iter().product();
    let data = (0..n)
        .map(|i| {
            let idx = unravel(i, &out);
            let ia: usize = idx
                .iter()
                .enumerate()
                .map(|(d, &c)| if pa[d] == 1 { 0 } else { c * ta[d] })
                .sum();
            let ib: usize = idx
                .iter()
                .enumerate()
                .map(|(d, &c)| if pb[d] == 1 { 0 } else { c * tb[d] })
                .sum();
            f(a[ia], b[ib])
        })
        .collect();
    (out, data)
}

/// erf(x) in f64 to about 1e-14: the Taylor series below 3, the continued fraction of erfc
/// above.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let value = if a < 3.0 {
        let (mut term, mut sum, mut n) = (a, a, 0.0);
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= -a * a / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else if a.is_finite() {
        // erfc(a) = e^{-a²}/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + …)))), evaluated from the tail.
        let mut f = a;
        for k in (1..60).rev() {
            f = a + (k as f64 / 2.0) / f;
        }
        1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / f
    } else {
        1.0
    };
    value.copysign(x)
}

/// The exact GELU, x · Φ(x).
pub fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

/// `act` of one value.
pub fn activation(act: keel::tensor::Activation, y: f64) -> f64 {
    match act {
        keel::tensor::Activation::None => y,
        keel::tensor::Activation::Relu => y.max(0.0),
        keel::tensor::Activation::Relu6 => y.clamp(0.0, 6.0),
        keel::tensor::Activation::Silu => y / (1.0 + (-y).exp()),
        keel::tensor::Activation::HardSwish => y * (y + 3.0).clamp(0.0, 6.0) / 6.0,
    }
}

/// The derivative of `act` at `z`, piecewise as PyTorch's backward passes define it at kinks
/// (ReLU and ReLU6: 1 on (0, ∞) and (0, 6]; hard-swish: z/3 + 1/2 on (−3, 3]).
pub fn activation_derivative(act: keel::tensor::Activation, z: f64) -> f64 {
    match act {
        keel::tensor::Activation::None => 1.0,
        keel::tensor::Activation::Relu => f64::from(u8::from(z > 0.0)),
        keel::tensor::Activation::Relu6 => f64::from(u8::from(z > 0.0 && z <= 6.0)),
        keel::tensor::Activation::Silu => {
            let s = 1.0 / (1.0 + (-z).exp());
            s * (1.0 + z * (1.0 - s))
        }
        keel::tensor::Activation::HardSwish => {
            if z <= -3.0 {
                0.0
            } else if z <= 3.0 {
                z / 3.0 + 0.5
            } else {
                1.0
            }
        }
    }
}
