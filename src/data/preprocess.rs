//! The one road from an image to the model's input: decode → resize → normalise → `[3, H, W]`
//! floats. Training, evaluation, the activation caches, `predict` and the web demo all go through
//! a [`Preprocessor`], and an exported model records its own in `config.json`, so a photo gives
//! the same probabilities wherever it is classified.
//!
//! JPEGs take libjpeg-turbo's raw planes ([`super::jpeg`]), the fast road nearly every photo
//! takes; anything else (PNG, WebP, greyscale or CMYK JPEGs...) is decoded by `image` and resized
//! by [`Resize::apply`]. Both keep to the pixel budget ([`super::MAX_PIXELS`]). For comparing with
//! Keras, [`JpegDecoding::TensorFlow`] makes a JPEG's pixels as TensorFlow's input pipeline does.

use std::path::Path;

use candle_core::{Device, Tensor};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::decoding::{check_complete, decode_complete, read_file, DecodeError, MAX_PIXELS};
use super::jpeg;
use super::normalize::Normalization;
use super::resize::Resize;
use crate::error::{Error, Result};

/// How a JPEG becomes the pixels that are resized.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JpegDecoding {
    /// libjpeg-turbo's raw planes with its accurate IDCT, resized before the colour conversion and
    /// never rounded to bytes: the fast and exact road.
    #[default]
    RawPlanes,
    /// As the Keras recipe's `tf.data` pipeline: `tf.io.decode_image` (fast integer IDCT, smooth
    /// chroma upsampling, RGB bytes), then resized to bytes. Up to a few levels from `RawPlanes`
    /// per pixel; for comparing with Keras on the same pixels.
    TensorFlow,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Preprocessor {
    /// `(height, width)` the model takes.
    pub image_size: (usize, usize),
    pub resize: Resize,
    pub normalization: Normalization,
    /// (Models exported before this choice existed decoded raw planes.)
    #[serde(default)]
    pub jpeg: JpegDecoding,
}

impl Default for Preprocessor {
    /// Keras' MobileNetV2 at 224 px: antialiased resize, pixels to `[-1, 1]`.
    fn default() -> Self {
        Self::new((224, 224), Normalization::MinusOneToOne)
    }
}

impl Preprocessor {
    /// Antialiased resizing to `image_size`, normalised as the weights expect.
    pub fn new(image_size: (usize, usize), normalization: Normalization) -> Self {
        Self { image_size, resize: Resize::default(), normalization, jpeg: JpegDecoding::default() }
    }

    pub fn with_resize(self, resize: Resize) -> Self {
        Self { resize, ..self }
    }

    pub fn with_jpeg(self, jpeg: JpegDecoding) -> Self {
        Self { jpeg, ..self }
    }

    /// Floats in one model input, `3 x height x width`.
    pub fn input_len(&self) -> usize {
        3 * self.image_size.0 * self.image_size.1
    }

    /// Image file bytes (any format the content says, within `max_pixels`) into `out`.
    pub fn bytes_into(&self, bytes: &[u8], max_pixels: u64, out: &mut [f32]) -> std::result::Result<(), DecodeError> {
        // Checked once here: the raw JPEG road would accept a file cut short, as decoders do.
        check_complete(bytes)?;
        let done = match self.jpeg {
            JpegDecoding::RawPlanes => jpeg::decode_resized_into(bytes, self.image_size, self.resize, self.normalization, max_pixels, out),
            JpegDecoding::TensorFlow => false,
        };
        if !done {
            self.image_into(&self.decode_checked(bytes, max_pixels)?, out);
        }
        Ok(())
    }

    /// Image file bytes to whole RGB pixels (for augmentation and display): a JPEG as
    /// [`JpegDecoding`] says where that road applies, anything else by `image`.
    pub fn decode(&self, bytes: &[u8], max_pixels: u64) -> std::result::Result<RgbImage, DecodeError> {
        check_complete(bytes)?;
        self.decode_checked(bytes, max_pixels)
    }

    /// [`Preprocessor::decode`] of bytes that `check_complete` has passed.
    fn decode_checked(&self, bytes: &[u8], max_pixels: u64) -> std::result::Result<RgbImage, DecodeError> {
        match self.jpeg {
            JpegDecoding::TensorFlow => jpeg::decode_rgb_as_tensorflow(bytes, max_pixels).map_or_else(|| decode_complete(bytes, max_pixels), Ok),
            JpegDecoding::RawPlanes => decode_complete(bytes, max_pixels),
        }
    }

    /// An image file's whole RGB pixels ([`Preprocessor::decode`]), or why it cannot be read.
    pub fn decode_file(&self, path: &Path) -> std::result::Result<RgbImage, String> {
        self.decode(&read_file(path)?, MAX_PIXELS).map_err(|e| e.to_string())
    }

    /// An image file into `out`, or the reason it cannot be read (as a skipped sample reports it).
    pub fn file_into(&self, path: &Path, out: &mut [f32]) -> std::result::Result<(), String> {
        self.bytes_into(&read_file(path)?, MAX_PIXELS, out).map_err(|e| e.to_string())
    }

    /// An image already decoded into `out`: resized and normalised.
    pub fn image_into(&self, img: &RgbImage, out: &mut [f32]) {
        let (height, width) = self.image_size;
        self.normalization.normalize_into(self.resize.apply(img, height, width).as_raw(), out);
    }

    /// One image file as a `[3, height, width]` tensor.
    pub fn file_tensor(&self, path: &Path, device: &Device) -> Result<Tensor> {
        let mut out = vec![0f32; self.input_len()];
        self.file_into(path, &mut out).map_err(|message| Error::Image { path: path.to_path_buf(), message })?;
        self.tensor(out, device)
    }

    /// One decoded image as a `[3, height, width]` tensor.
    pub fn image_tensor(&self, img: &RgbImage, device: &Device) -> Result<Tensor> {
        let mut out = vec![0f32; self.input_len()];
        self.image_into(img, &mut out);
        self.tensor(out, device)
    }

    /// Model inputs made by this preprocessor as a `[3, height, width]` tensor.
    pub fn tensor(&self, input: Vec<f32>, device: &Device) -> Result<Tensor> {
        let (height, width) = self.image_size;
        Ok(Tensor::from_vec(input, (3, height, width), device)?)
    }
}
