//! Bilinear resizing exactly as Pillow does it (`Image.resize(size, Image.BILINEAR)`, which
//! torchvision's `Resize` calls on PIL images): a triangle filter widened by the scale when
//! shrinking (so shrinking averages, as antialiasing), one pass along each axis with rounding to
//! 8 bits in between, and 22-bit fixed-point weights. Matching it bit for bit gives
//! a backbone the very pixels it was trained and evaluated on in PyTorch.

use image::RgbImage;

/// Bits after the point of the fixed-point weights (Pillow's `PRECISION_BITS`).
const PRECISION_BITS: u32 = 22;

/// The input span and fixed-point weights of each output position along one axis.
struct Taps {
    /// First input index read by each output position.
    first: Vec<usize>,
    /// Weights of the inputs from `first` on, summing to about 2^22.
    weights: Vec<Vec<i64>>,
}

/// Pillow's `precompute_coeffs` and `normalize_coeffs_8bpc` for the bilinear filter.
fn taps(in_size: usize, out_size: usize) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter_scale; // the triangle's support is 1
    let one = f64::from(1u32 << PRECISION_BITS);
    let mut first = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for out in 0..out_size {
        let center = (out as f64 + 0.5) * scale;
        // `as i64` truncates toward zero, as C's cast does.
        let lo = ((center - support + 0.5) as i64).max(0) as usize;
        let hi = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let w: Vec<f64> = (lo..hi)
            .map(|i| (1.0 - ((i as f64 - center + 0.5) * (1.0 / filter_scale)).abs()).max(0.0))
            .collect();
        let total: f64 = w.iter().sum();
        // The triangle is never negative, so rounding is adding a half and truncating.
        let fixed = w
            .iter()
            .map(|&v| ((if total != 0.0 { v / total } else { v }) * one + 0.5) as i64)
            .collect();
        first.push(lo);
        weights.push(fixed);
    }
    Taps { first, weights }
}

/// Rounds a fixed-point weighted sum to a byte.
fn to_byte(sum: i64) -> u8 {
    ((sum + (1 << (PRECISION_BITS - 1))) >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resamples one axis of a `w`×`h` RGB image to `out_len` pixels: each row when `along_rows`,
/// else each column.
fn resample(src: &[u8], (w, h): (usize, usize), out_len: usize, along_rows: bool) -> Vec<u8> {
    let (len, out_w) = if along_rows { (w, out_len) } else { (h, w) };
    let lines = if along_rows { h } else { w };
    let t = taps(len, out_len);
    // Pixel index of position i along line `line`, in an image `width` pixels wide.
    let pixel = |line: usize, i: usize, width: usize| {
        if along_rows {
            line * width + i
        } else {
            i * width + line
        }
    };
    let mut out = vec![0u8; lines * out_len * 3];
    for line in 0..lines {
        for (o, (first, weights)) in t.first.iter().zip(&t.weights).enumerate() {
            for c in 0..3 {
                let at = |i: usize| i64::from(src[pixel(line, first + i, w) * 3 + c]);
                let sum: i64 = weights.iter().enumerate().map(|(i, &k)| at(i) * k).sum();
                out[pixel(line, o, out_w) * 3 + c] = to_byte(sum);
            }
        }
    }
    out
}

/// Resizes to exactly `height`×`width`, bilinearly, bit for bit as Pillow's `Image.resize`.
pub fn resize(rgb: &RgbImage, height: usize, width: usize) -> RgbImage {
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let src = rgb.as_raw();
    // Pillow resamples the rows first, except when the width grows and the height shrinks.
    let rows = |src: &[u8], h: usize| resample(src, (w, h), width, true);
    let columns = |src: &[u8], w: usize| resample(src, (w, h), height, false);
    let out = match (width != w, height != h) {
        (false, false) => src.clone(),
        (true, false) => rows(src, h),
        (false, true) => columns(src, w),
        (true, true) if width > w && height < h => rows(&columns(src, w), height),
        (true, true) => columns(&rows(src, h), width),
    };
    RgbImage::from_raw(width as u32, height as u32, out)
        .expect("the buffer has height·width·3 bytes")
}
