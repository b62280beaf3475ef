//! The fast road from a JPEG file to the model's input, the one nearly every Food-101 image takes.
//!
//! libjpeg-turbo (through the `mozjpeg` crate, SIMD with `nasm`) decodes to its raw planes, Y at
//! full size and Cb/Cr usually at half size, without upsampling the chroma or converting colours.
//! Each plane is resized straight to the output size, and the colour conversion runs once per
//! *output* pixel. Resizing and the YCbCr → RGB map are both linear, so this equals converting
//! first and resizing after, up to the chroma filter (`tests/data.rs` checks how close). The
//! resizing ([`super::resample`]) makes one float row of each plane at a time, and nothing is
//! rounded to bytes on the way. Anything else (greyscale, CMYK, odd sampling, not a JPEG, an
//! error) returns false and takes the general road of [`super::Preprocessor`].
//!
//! [`decode_rgb_as_tensorflow`] is the other road, for comparing with Keras pixel for pixel: RGB
//! bytes as TensorFlow's `tf.io.decode_image` makes them with the same library.

use std::panic::{catch_unwind, AssertUnwindSafe};

use image::RgbImage;
use mozjpeg::{ColorSpace, CompInfoExt, DctMethod, Decompress};

use super::normalize::Normalization;
use super::resample::Filter;
use super::resize::Resize;

/// Writes the model input (`3 x height x width`, normalised by `p`) from JPEG `bytes` into `out`
/// via the raw planes; false when this road does not apply (the general one then decides).
pub fn decode_resized_into(bytes: &[u8], (height, width): (usize, usize), resize: Resize, p: Normalization, max_pixels: u64, out: &mut [f32]) -> bool {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    // libjpeg reports fatal errors by unwinding (the crate's error manager): the general path
    // then decides whether the file is readable and says why not.
    match catch_unwind(AssertUnwindSafe(|| RawPlanes::decode(bytes, max_pixels))) {
        Ok(Some(planes)) => {
            planes.resize_into(height, width, resize, p, out);
            true
        }
        _ => false,
    }
}

/// JPEG `bytes` as `tf.io.decode_image(..., channels=3)` decodes them: libjpeg's fast integer
/// IDCT (TensorFlow's choice, less exact than the default), smooth ("fancy") chroma upsampling,
/// then RGB rounded to bytes. None when this road does not apply or fails (the general road then
/// decides, as for [`decode_resized_into`]).
pub fn decode_rgb_as_tensorflow(bytes: &[u8], max_pixels: u64) -> Option<RgbImage> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let decode = || {
        let mut decoder = Decompress::new_mem(bytes).ok()?;
        let (width, height) = decoder.size();
        super::decoding::check_budget(width as u32, height as u32, 3, max_pixels).ok()?;
        decoder.dct_method(DctMethod::IntegerFast);
        decoder.do_fancy_upsampling(true);
        let mut started = decoder.rgb().ok()?;
        let pixels = started.read_scanlines::<u8>().ok()?;
        started.finish().ok()?;
        RgbImage::from_raw(width as u32, height as u32, pixels)
    };
    catch_unwind(AssertUnwindSafe(decode)).ok().flatten()
}

/// Y, Cb and Cr as libjpeg decodes them: padded to whole blocks, chroma usually subsampled.
struct RawPlanes {
    data: [Vec<u8>; 3],
    strides: [usize; 3],
    rows: [usize; 3],
    /// The part of each plane that covers the image, `(width, height)` in that plane's samples
    /// (fractional for subsampled chroma of an odd-sized image).
    extents: [(f64, f64); 3],
}

impl RawPlanes {
    fn decode(bytes: &[u8], max_pixels: u64) -> Option<Self> {
        let decoder = Decompress::new_mem(bytes).ok()?;
        let sampling: Vec<(u8, u8)> = decoder.components().iter().map(|c| c.sampling()).collect();
        // Y, Cb, Cr with Y the most finely sampled (4:4:4, 4:2:2, 4:2:0).
        if decoder.color_space() != ColorSpace::JCS_YCbCr || sampling.len() != 3 || sampling[1] != sampling[2] {
            return None;
        }
        let ((hy, vy), (hc, vc)) = (sampling[0], sampling[1]);
        if hy % hc != 0 || vy % vc != 0 {
            return None;
        }
        let (image_w, image_h) = decoder.size();
        // Over the budget: the general path refuses it and says why.
        if super::decoding::check_budget(image_w as u32, image_h as u32, 3, max_pixels).is_err() {
            return None;
        }
        let strides: [usize; 3] = std::array::from_fn(|c| decoder.components()[c].row_stride());
        // Rows come in MCU rows of `8 * v` per component; reserved up front, the planes never move.
        let mcu_rows = image_h.div_ceil(8 * usize::from(vy));
        let mut data = [0, 1, 2].map(|c| Vec::with_capacity(strides[c] * mcu_rows * 8 * usize::from(sampling[c].1)));
        let mut started = decoder.raw().ok()?;
        {
            let [y, cb, cr] = &mut data;
            started.read_raw_data(&mut [y, cb, cr]);
        }
        started.finish().ok()?;
        let rows = std::array::from_fn(|c| data[c].len() / strides[c]);
        let extents = std::array::from_fn(|c| {
            let (fx, fy) = if c == 0 { (1.0, 1.0) } else { (f64::from(hc) / f64::from(hy), f64::from(vc) / f64::from(vy)) };
            (image_w as f64 * fx, image_h as f64 * fy)
        });
        Some(Self { data, strides, rows, extents })
    }

    /// The columns of plane `c` that the image covers (partly, at a fractional edge).
    fn columns(&self, c: usize) -> usize {
        (self.extents[c].0.ceil() as usize).min(self.strides[c])
    }

    /// Resizes the three planes row by row and converts each output row to normalised RGB.
    fn resize_into(&self, height: usize, width: usize, resize: Resize, p: Normalization, out: &mut [f32]) {
        let filters: [(Filter, Filter); 3] = std::array::from_fn(|c| {
            let (ew, eh) = self.extents[c];
            (Filter::new(ew, self.columns(c), width, resize), Filter::new(eh, self.rows[c], height, resize))
        });
        let mut source_rows: [Vec<f32>; 3] = std::array::from_fn(|c| vec![0.0; self.columns(c)]);
        let mut resized = [(); 3].map(|_| vec![0f32; width]);
        let n = height * width;
        let (r_out, rest) = out[..3 * n].split_at_mut(n);
        let (g_out, b_out) = rest.split_at_mut(n);
        for y in 0..height {
            for (c, (across, down)) in filters.iter().enumerate() {
                down.vertical(&self.data[c], self.strides[c], y, &mut source_rows[c]);
                across.horizontal(&source_rows[c], &mut resized[c]);
            }
            let row = y * width..(y + 1) * width;
            let [ys, cbs, crs] = &resized;
            to_model_input(ys, cbs, crs, p, &mut r_out[row.clone()], &mut g_out[row.clone()], &mut b_out[row]);
        }
    }
}

/// Normalised RGB from resized Y, Cb, Cr: JFIF's colour conversion clamped to the byte range,
/// then the normalisation, once per output pixel, all in float.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn to_model_input(y: &[f32], cb: &[f32], cr: &[f32], p: Normalization, r_out: &mut [f32], g_out: &mut [f32], b_out: &mut [f32]) {
    let [(sr, or), (sg, og), (sb, ob)] = p.affine();
    let n = y.len();
    let (cb, cr, r_out, g_out, b_out) = (&cb[..n], &cr[..n], &mut r_out[..n], &mut g_out[..n], &mut b_out[..n]);
    for i in 0..n {
        let (y, cb, cr) = (y[i], cb[i] - 128.0, cr[i] - 128.0);
        r_out[i] = (y + 1.402 * cr).clamp(0.0, 255.0) * sr + or;
        g_out[i] = (y - 0.344_136 * cb - 0.714_136 * cr).clamp(0.0, 255.0) * sg + og;
        b_out[i] = (y + 1.772 * cb).clamp(0.0, 255.0) * sb + ob;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_stays_grey_and_primaries_match_jfif() {
        let p = Normalization::MeanStd { mean: [0.0; 3], std: [1.0 / 255.0; 3] }; // the identity
        let (mut r, mut g, mut b) = ([0.0; 2], [0.0; 2], [0.0; 2]);
        // Mid grey, and JFIF's pure red (76, 85, 255).
        to_model_input(&[77.0, 76.0], &[128.0, 85.0], &[128.0, 255.0], p, &mut r, &mut g, &mut b);
        assert_eq!([r[0], g[0], b[0]], [77.0; 3]);
        let (r, g, b) = (r[1], g[1], b[1]);
        assert!(r >= 253.0 && g <= 2.0 && b <= 2.0, "{r} {g} {b}");
    }

    #[test]
    fn not_a_jpeg_takes_the_general_path() {
        let (p, mut out) = (Normalization::MinusOneToOne, vec![0.0; 3 * 64]);
        let budget = crate::data::MAX_PIXELS;
        assert!(!decode_resized_into(b"\x89PNG\r\n\x1a\n", (8, 8), Resize::default(), p, budget, &mut out));
        assert!(!decode_resized_into(&[0xFF, 0xD8, 0xFF, 0x00, 0x12], (8, 8), Resize::default(), p, budget, &mut out));
    }
}
