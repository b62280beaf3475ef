//! How an image is brought to the model's input size: bilinear with half-pixel centres, with or
//! without antialiasing (they differ when shrinking).

use fast_image_resize::{images::{Image, ImageRef}, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use serde::{Deserialize, Serialize};

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
    fn algorithm(self) -> ResizeAlg {
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
