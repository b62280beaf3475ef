//! Image bytes to RGB pixels, for every road that decodes a whole image (the pipeline's general
//! path, prediction, the web demo), under one pixel budget checked from the header before any
//! pixel is allocated: a 600-byte file that claims 65,500 x 65,500 pixels is refused, not decoded.
//! The pipeline's raw-plane JPEG road ([`super::jpeg`]) keeps to the same budget.

use std::io::Cursor;
use std::path::Path;

use image::{ImageReader, Limits, RgbImage};

use crate::error::{Error, Result};

/// The most pixels (width x height) one image may have: 40 megapixels, more than any camera
/// photo, about 120 MB as 8-bit RGB.
pub const MAX_PIXELS: u64 = 40_000_000;

/// Why bytes did not become an image.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty file")]
    Empty,
    #[error("not an image, or a format this crate does not read (JPEG, PNG, BMP, GIF, WebP)")]
    NotAnImage,
    #[error("the image is {width}x{height}: over the limit of {limit} pixels")]
    TooLarge { width: u32, height: u32, limit: u64 },
    #[error("the image cannot be decoded: {0}")]
    Undecodable(String),
}

/// Decodes `bytes` (the content decides the format, not a file name) to 8-bit RGB, refusing an
/// image over `max_pixels` from its header.
pub fn decode_rgb(bytes: &[u8], max_pixels: u64) -> std::result::Result<RgbImage, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let reader = || ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|_| DecodeError::NotAnImage);
    let probe = reader()?;
    if probe.format().is_none() {
        return Err(DecodeError::NotAnImage);
    }
    let (width, height) = probe.into_dimensions().map_err(|e| DecodeError::Undecodable(e.to_string()))?;
    if width as u64 * height as u64 > max_pixels {
        return Err(DecodeError::TooLarge { width, height, limit: max_pixels });
    }
    let mut reader = reader()?;
    let mut limits = Limits::default();
    // The largest pixel format (16-bit RGBA) of the largest allowed image, and the decoder's own.
    limits.max_alloc = Some(max_pixels * 8 + (64 << 20));
    reader.limits(limits);
    Ok(reader.decode().map_err(|e| DecodeError::Undecodable(e.to_string()))?.into_rgb8())
}

/// The bytes of an image file, or why they cannot be had (the reason a skip is reported with).
pub(super) fn read_file(path: &Path) -> std::result::Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot open: {e}"))?;
    if bytes.is_empty() {
        return Err(DecodeError::Empty.to_string());
    }
    Ok(bytes)
}

/// Decodes one image file to RGB within [`MAX_PIXELS`], or says why it cannot.
pub fn decode_file(path: &Path) -> std::result::Result<RgbImage, String> {
    decode_rgb(&read_file(path)?, MAX_PIXELS).map_err(|e| e.to_string())
}

/// Decodes any supported image file (the content decides, not the extension) to 8-bit RGB, within
/// [`MAX_PIXELS`].
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    decode_file(path).map_err(|message| Error::Image { path: path.to_path_buf(), message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_over_the_budget_is_refused_from_its_header() {
        let bomb = crate::data::synthetic::jpeg_bomb(65_500, 65_500);
        assert!(bomb.len() < 1000);
        assert_eq!(decode_rgb(&bomb, MAX_PIXELS), Err(DecodeError::TooLarge { width: 65_500, height: 65_500, limit: MAX_PIXELS }));
        assert_eq!(decode_rgb(b"", MAX_PIXELS), Err(DecodeError::Empty));
        assert_eq!(decode_rgb(b"hello, world", MAX_PIXELS), Err(DecodeError::NotAnImage));
    }
}
