//! Image bytes to RGB pixels, for every road that decodes a whole image (the pipeline's general
//! path, prediction, the web demo), under one memory budget checked from the header before any
//! pixel is allocated: a 600-byte file that claims 65,500 x 65,500 pixels is refused, not decoded,
//! and so is a small PNG whose 16-bit RGBA pixels would take gigabytes. The raw-plane JPEG road
//! ([`super::jpeg`]) keeps to the same budget. A JPEG cut short (an interrupted download) is
//! refused too: decoders fill the missing part with grey and call it a success.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};

use crate::error::{Error, Result};

/// The budget of one decode, in pixels of 8-bit RGB (3 bytes each): 40 megapixels, more than any
/// camera photo, 120 MB. An image whose decoded pixels take more bytes per pixel (16 bits, alpha)
/// gets fewer pixels, counting its own buffer and the RGB copy made of it.
pub const MAX_PIXELS: u64 = 40_000_000;

/// Why bytes did not become an image.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty file")]
    Empty,
    #[error("not an image, or a format this crate does not read (JPEG, PNG, BMP, GIF, WebP)")]
    NotAnImage,
    #[error("the image is {width}x{height} at {bytes_per_pixel} bytes per pixel: over the budget of {limit} pixels of 8-bit RGB")]
    TooLarge { width: u32, height: u32, bytes_per_pixel: u64, limit: u64 },
    #[error("the image is cut short (truncated): its data ends before the end-of-image marker")]
    Truncated,
    #[error("the image cannot be decoded: {0}")]
    Undecodable(String),
}

/// Refuses an image of `width x height` whose decoding takes `bytes_per_pixel` (plus an 8-bit RGB
/// copy when that is not already the format) over the budget of `max_pixels` RGB pixels.
pub(super) fn check_budget(width: u32, height: u32, bytes_per_pixel: u64, max_pixels: u64) -> std::result::Result<(), DecodeError> {
    let per_pixel = if bytes_per_pixel == 3 { 3 } else { bytes_per_pixel + 3 };
    match (width as u64 * height as u64).checked_mul(per_pixel) {
        Some(bytes) if bytes <= max_pixels * 3 => Ok(()),
        _ => Err(DecodeError::TooLarge { width, height, bytes_per_pixel, limit: max_pixels }),
    }
}

/// For JPEG bytes: whether the markers run on to the end-of-image marker. A file cut short ends
/// inside its entropy-coded data instead. Other formats pass (their decoders report a short file).
pub(super) fn check_complete(bytes: &[u8]) -> std::result::Result<(), DecodeError> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return Ok(());
    }
    let mut i = 2;
    while i + 2 <= bytes.len() {
        if bytes[i] != 0xFF {
            return Err(DecodeError::Undecodable(format!("no JPEG marker at byte {i}")));
        }
        match bytes[i + 1] {
            0xD9 => return Ok(()),
            0xFF => i += 1,                  // fill byte before a marker
            0x01 | 0xD0..=0xD7 => i += 2,    // markers without a length
            marker => {
                let Some(len) = bytes.get(i + 2..i + 4).map(|l| u16::from_be_bytes([l[0], l[1]]) as usize) else { break };
                i += 2 + len;
                if marker == 0xDA {
                    // Entropy-coded data runs to the next marker (0xFF 0x00 is a stuffed 0xFF,
                    // 0xFF 0xD0-0xD7 a restart marker inside the data).
                    while i + 1 < bytes.len() && !(bytes[i] == 0xFF && bytes[i + 1] != 0x00 && !(0xD0..=0xD7).contains(&bytes[i + 1])) {
                        i += 1;
                    }
                }
            }
        }
    }
    Err(DecodeError::Truncated)
}

/// Decodes `bytes` (the content decides the format, not a file name) to 8-bit RGB, refusing an
/// image over `max_pixels` from its header.
pub fn decode_rgb(bytes: &[u8], max_pixels: u64) -> std::result::Result<RgbImage, DecodeError> {
    check_complete(bytes)?;
    decode_complete(bytes, max_pixels)
}

/// [`decode_rgb`] of bytes that [`check_complete`] has passed.
pub(super) fn decode_complete(bytes: &[u8], max_pixels: u64) -> std::result::Result<RgbImage, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|_| DecodeError::NotAnImage)?;
    if reader.format().is_none() {
        return Err(DecodeError::NotAnImage);
    }
    let undecodable = |e: image::ImageError| DecodeError::Undecodable(e.to_string());
    // A format `image` recognises but this crate does not decode (TIFF, ICO, PNM...).
    let mut decoder = reader.into_decoder().map_err(|e| match e {
        image::ImageError::Unsupported(_) => DecodeError::NotAnImage,
        e => undecodable(e),
    })?;
    let (width, height) = decoder.dimensions();
    check_budget(width, height, decoder.color_type().bytes_per_pixel() as u64, max_pixels)?;
    let mut limits = Limits::default();
    // The budget, and room for the decoder's own buffers.
    limits.max_alloc = Some(max_pixels * 3 + (64 << 20));
    decoder.set_limits(limits).map_err(undecodable)?;
    Ok(DynamicImage::from_decoder(decoder).map_err(undecodable)?.into_rgb8())
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
        assert_eq!(decode_rgb(&bomb, MAX_PIXELS), Err(DecodeError::TooLarge { width: 65_500, height: 65_500, bytes_per_pixel: 3, limit: MAX_PIXELS }));
        assert_eq!(decode_rgb(b"", MAX_PIXELS), Err(DecodeError::Empty));
        assert_eq!(decode_rgb(b"hello, world", MAX_PIXELS), Err(DecodeError::NotAnImage));
    }
}
