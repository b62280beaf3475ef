//! Decode → resize (bilinear, antialiased like Pillow by default) → normalise → `[3, H, W]` float tensor.

use std::path::Path;

use candle_core::{Device, Tensor};
use fast_image_resize::{images::{Image, ImageRef}, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Pixel normalisation, fixed by the framework that trained the weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preprocessing {
    /// Keras `mobilenet_v2.preprocess_input`: `x / 127.5 - 1`.
    MinusOneToOne,
    /// torchvision/timm: `(x / 255 - mean) / std` per channel.
    MeanStd { mean: [f32; 3], std: [f32; 3] },
}

impl Preprocessing {
    /// ImageNet mean and standard deviation, as timm's MobileNetV2 was trained.
    pub fn imagenet() -> Self {
        Self::MeanStd { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] }
    }

    /// Per-channel `(scale, offset)` so that `value = pixel * scale + offset`.
    pub(super) fn affine(self) -> [(f32, f32); 3] {
        match self {
            Self::MinusOneToOne => [(1.0 / 127.5, -1.0); 3],
            Self::MeanStd { mean, std } => std::array::from_fn(|c| (1.0 / (255.0 * std[c]), -mean[c] / std[c])),
        }
    }

    /// Interleaved RGB bytes (`H x W x 3`) to planar floats (`3 x H x W`).
    pub fn normalize(self, rgb: &[u8]) -> Vec<f32> {
        let mut out = vec![0f32; rgb.len()];
        self.normalize_into(rgb, &mut out);
        out
    }

    /// [`Self::normalize`] into `out` (`rgb.len()` floats).
    pub fn normalize_into(self, rgb: &[u8], out: &mut [f32]) {
        let plane = rgb.len() / 3;
        for (c, (scale, offset)) in self.affine().into_iter().enumerate() {
            let dst = &mut out[c * plane..(c + 1) * plane];
            for (d, px) in dst.iter_mut().zip(rgb.chunks_exact(3)) {
                *d = px[c] as f32 * scale + offset;
            }
        }
    }
}

/// Decodes any supported image file (the content decides, not the extension) to 8-bit RGB, within
/// the pixel budget ([`super::MAX_PIXELS`]).
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let err = |message: String| Error::Image { path: path.to_path_buf(), message };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    super::decode_rgb(&bytes, super::MAX_PIXELS).map_err(|e| err(e.to_string()))
}

/// How an image is brought to the model's input size. Both are bilinear with half-pixel centres;
/// they differ when shrinking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resize {
    /// Pillow's antialiasing: the filter widens with the shrink factor, as Keras'
    /// `load_img(..., interpolation="bilinear")` and `tf.image.resize(..., antialias=True)` do.
    /// TensorFlow's reference top-5 for the shared photos was made this way.
    #[default]
    Antialiased,
    /// The 2x2 nearest pixels, as `tf.image.resize` by default: faster, but it aliases on 512 px
    /// photos and moves the reference probabilities by up to 0.2.
    Bilinear,
}

impl Resize {
    pub(super) fn algorithm(self) -> ResizeAlg {
        match self {
            Self::Antialiased => ResizeAlg::Convolution(FilterType::Bilinear),
            Self::Bilinear => ResizeAlg::Interpolation(FilterType::Bilinear),
        }
    }

    /// `img` resized to `height x width`.
    pub fn apply(self, img: &RgbImage, height: usize, width: usize) -> RgbImage {
        if img.dimensions() == (width as u32, height as u32) {
            return img.clone();
        }
        let src = ImageRef::new(img.width(), img.height(), img.as_raw(), PixelType::U8x3)
            .expect("an RgbImage buffer is exactly width * height * 3 bytes");
        let mut dst = Image::new(width as u32, height as u32, PixelType::U8x3);
        let options = ResizeOptions::new().resize_alg(self.algorithm());
        Resizer::new().resize(&src, &mut dst, &options).expect("same pixel type, non-empty images");
        RgbImage::from_raw(width as u32, height as u32, dst.into_vec()).expect("buffer of the requested size")
    }
}

/// Bilinear resize with Pillow's antialiasing ([`Resize::Antialiased`]).
pub fn resize_bilinear(img: &RgbImage, height: usize, width: usize) -> RgbImage {
    Resize::Antialiased.apply(img, height, width)
}

/// Resize and normalise one image into a `[3, height, width]` tensor.
pub fn to_tensor(img: &RgbImage, (height, width): (usize, usize), p: Preprocessing, device: &Device) -> Result<Tensor> {
    let resized = resize_bilinear(img, height, width);
    Ok(Tensor::from_vec(p.normalize(resized.as_raw()), (3, height, width), device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisations_map_the_byte_range() {
        let px = [0u8, 255, 128];
        let keras = Preprocessing::MinusOneToOne.normalize(&px);
        assert_eq!(keras[0], -1.0);
        assert_eq!(keras[1], 1.0);
        let torch = Preprocessing::imagenet().normalize(&px);
        assert!((torch[0] - (-0.485 / 0.229)).abs() < 1e-6);
        assert!((torch[1] - (1.0 - 0.456) / 0.224).abs() < 1e-5);
    }
}
