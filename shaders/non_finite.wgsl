// NaN and infinity, as PyTorch treats them. WGSL's max, min, clamp and sign leave the result
// undefined for a NaN operand (lavapipe drops the NaN), and a comparison with NaN may be folded
// as if NaN did not exist, so NaN is recognised by its bits.

fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// max(a, b), NaN when either is.
fn max_nan(a: f32, b: f32) -> f32 {
    return select(select(max(a, b), b, is_nan(b)), a, is_nan(a));
}

// min(a, b), NaN when either is.
fn min_nan(a: f32, b: f32) -> f32 {
    return select(select(min(a, b), b, is_nan(b)), a, is_nan(a));
}

// Whether v replaces best as a running maximum: larger, or a NaN where best is not.
fn ranks_above(v: f32, best: f32) -> bool {
    return !is_nan(best) && (is_nan(v) || v > best);
}

// −∞ and +∞ (WGSL has no literal for them, and a constant may not be infinite).
fn neg_inf() -> f32 {
    return bitcast<f32>(0xff800000u);
}

fn pos_inf() -> f32 {
    return bitcast<f32>(0x7f800000u);
}
