//! Random augmentation in the spirit of Keras' preprocessing layers: `RandomZoom` (as a random
//! crop), `RandomRotation` (reflect fill) and `RandomFlip("horizontal")`. Seeded per sample.

use image::{imageops, RgbImage};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::resize::resize_bilinear;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    /// Mirror left-right with probability 1/2.
    pub flip: bool,
    /// Crop a window of `1 - zoom ..= 1` of each side before resizing (0 = off).
    pub zoom: f32,
    /// Rotate by up to `± rotation * 2π`, as Keras' `RandomRotation(factor)` (0 = off).
    pub rotation: f32,
}

impl Default for Augment {
    fn default() -> Self {
        Self { flip: true, zoom: 0.1, rotation: 0.05 }
    }
}

impl Augment {
    /// One draw for `seed` (the same seed, the same picture).
    pub fn apply_seeded(&self, img: &RgbImage, height: usize, width: usize, seed: u64) -> RgbImage {
        self.apply(img, height, width, &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed))
    }

    /// Crop, resize to `height x width`, rotate, flip.
    pub fn apply(&self, img: &RgbImage, height: usize, width: usize, rng: &mut impl Rng) -> RgbImage {
        let scale = 1.0 - rng.random::<f32>() * self.zoom.clamp(0.0, 0.9);
        let (cw, ch) = (((img.width() as f32 * scale).round() as u32).max(1), ((img.height() as f32 * scale).round() as u32).max(1));
        let (x0, y0) = (rng.random_range(0..=img.width() - cw), rng.random_range(0..=img.height() - ch));
        let cropped = imageops::crop_imm(img, x0, y0, cw, ch).to_image();
        let mut out = resize_bilinear(&cropped, height, width);
        if self.rotation > 0.0 {
            let angle = (rng.random::<f32>() * 2.0 - 1.0) * self.rotation * std::f32::consts::TAU;
            out = rotate(&out, angle);
        }
        if self.flip && rng.random::<bool>() {
            imageops::flip_horizontal_in_place(&mut out);
        }
        out
    }
}

/// Reflects a coordinate into `0 ..= n - 1` (Keras' default `fill_mode="reflect"`).
fn reflect(v: f32, n: u32) -> f32 {
    let max = (n - 1) as f32;
    if max <= 0.0 {
        return 0.0;
    }
    let period = 2.0 * max;
    let v = v.rem_euclid(period);
    if v > max {
        period - v
    } else {
        v
    }
}

/// Rotation about the centre with bilinear sampling.
fn rotate(img: &RgbImage, angle: f32) -> RgbImage {
    let (w, h) = img.dimensions();
    let (cx, cy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
    let (sin, cos) = angle.sin_cos();
    RgbImage::from_fn(w, h, |x, y| {
        let (dx, dy) = (x as f32 - cx, y as f32 - cy);
        let sx = reflect(cos * dx + sin * dy + cx, w);
        let sy = reflect(-sin * dx + cos * dy + cy, h);
        let (x0, y0) = (sx.floor() as u32, sy.floor() as u32);
        let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
        let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
        let p = |x, y| img.get_pixel(x, y).0.map(f32::from);
        let (a, b, c, d) = (p(x0, y0), p(x1, y0), p(x0, y1), p(x1, y1));
        image::Rgb(std::array::from_fn(|k| {
            let top = a[k] + (b[k] - a[k]) * fx;
            let bottom = c[k] + (d[k] - c[k]) * fx;
            (top + (bottom - top) * fy).round() as u8
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn reflect_folds_back_into_range() {
        assert_eq!(reflect(-1.0, 10), 1.0);
        assert_eq!(reflect(10.0, 10), 8.0);
        assert_eq!(reflect(4.5, 10), 4.5);
    }

    #[test]
    fn same_seed_same_augmentation_and_output_size() {
        let img = RgbImage::from_fn(50, 30, |x, y| image::Rgb([x as u8 * 5, y as u8 * 8, 100]));
        let a = Augment::default();
        let one = a.apply(&img, 24, 20, &mut rand::rngs::StdRng::seed_from_u64(7));
        let two = a.apply(&img, 24, 20, &mut rand::rngs::StdRng::seed_from_u64(7));
        let other = a.apply(&img, 24, 20, &mut rand::rngs::StdRng::seed_from_u64(8));
        assert_eq!(one.dimensions(), (20, 24));
        assert_eq!(one, two);
        assert_ne!(one, other);
    }
}
