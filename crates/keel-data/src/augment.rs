//! Seeded augmentation of one image on the host: a random horizontal flip and a random crop
//! resized back to the image size.

use crate::rng::Rng;

/// Which random augmentations to apply to training images.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Augment {
    /// Flip each image left–right with probability ½.
    pub flip: bool,
    /// Crop a random region of at least this fraction of each side and resize it back
    /// (bilinear); `None` for no cropping.
    pub crop: Option<f32>,
}

impl Augment {
    /// No augmentation.
    pub fn none() -> Augment {
        Augment::default()
    }

    /// Whether any augmentation is on (feature caching needs it off).
    pub fn is_active(&self) -> bool {
        self.flip || self.crop.is_some()
    }

    /// Augments one image ([h, w, c] values) in place, with draws from `seed`.
    pub fn apply(&self, img: &mut [f32], [h, w, c]: [usize; 3], seed: u64) {
        if !self.is_active() {
            return;
        }
        let mut rng = Rng::new(seed);
        if let Some(min) = self.crop {
            let scale = min + (1.0 - min) * rng.unit();
            let (ch, cw) = (
                ((h as f32 * scale) as usize).max(1),
                ((w as f32 * scale) as usize).max(1),
            );
            let (y0, x0) = (rng.below(h - ch + 1), rng.below(w - cw + 1));
            crop_resize(img, [h, w, c], [y0, x0, ch, cw]);
        }
        if self.flip && rng.unit() < 0.5 {
            for row in img.chunks_mut(w * c) {
                for x in 0..w / 2 {
                    for k in 0..c {
                        row.swap(x * c + k, (w - 1 - x) * c + k);
                    }
                }
            }
        }
    }
}
/// Replaces `img` with its [y0, x0, ch, cw] region resized to the full size (bilinear, pixel
/// centres aligned).
fn crop_resize(img: &mut [f32], [h, w, c]: [usize; 3], [y0, x0, ch, cw]: [usize; 4]) {
    let src = img.to_vec();
    let sample = |y: f32, x: f32, k: usize| -> f32 {
        let (yf, xf) = (y.floor(), x.floor());
        let (ya, xa) = (yf as usize, xf as usize);
        let (yb, xb) = ((ya + 1).min(ch - 1), (xa + 1).min(cw - 1));
        let (dy, dx) = (y - yf, x - xf);
        let at = |yy: usize, xx: usize| src[((y0 + yy) * w + x0 + xx) * c + k];
        (at(ya, xa) * (1.0 - dx) + at(ya, xb) * dx) * (1.0 - dy)
            + (at(yb, xa) * (1.0 - dx) + at(yb, xb) * dx) * dy
    };
    for oy in 0..h {
        let y = ((oy as f32 + 0.5) * ch as f32 / h as f32 - 0.5).clamp(0.0, (ch - 1) as f32);
        for ox in 0..w {
            let x = ((ox as f32 + 0.5) * cw as f32 / w as f32 - 0.5).clamp(0.0, (cw - 1) as f32);
            for k in 0..c {
                img[(oy * w + ox) * c + k] = sample(y, x, k);
            }
        }
    }
}
