//! Turning uploaded bytes into an image, or into a clear 4xx: empty bodies, non-images,
//! truncated files and decompression bombs (huge dimensions in a small file, caught from the
//! header before any pixel is allocated).

use std::io::Cursor;

use axum::http::StatusCode;
use image::{ImageReader, Limits, RgbImage};

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("empty body: send the image file's bytes")]
    Empty,
    #[error("not an image, or a format this demo does not read (JPEG, PNG, BMP, GIF, WebP)")]
    NotAnImage,
    #[error("the image is {width}x{height}: over the limit of {limit} pixels")]
    TooLarge { width: u32, height: u32, limit: u64 },
    #[error("the image cannot be decoded: {0}")]
    Undecodable(String),
}

impl UploadError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Empty => StatusCode::BAD_REQUEST,
            Self::NotAnImage => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Undecodable(_) => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

/// Decodes an upload to RGB, refusing images over `max_pixels`.
pub fn decode_upload(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, UploadError> {
    if bytes.is_empty() {
        return Err(UploadError::Empty);
    }
    let reader = || ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|_| UploadError::NotAnImage);
    let probe = reader()?;
    if probe.format().is_none() {
        return Err(UploadError::NotAnImage);
    }
    let (width, height) = probe.into_dimensions().map_err(|e| UploadError::Undecodable(e.to_string()))?;
    if width as u64 * height as u64 > max_pixels {
        return Err(UploadError::TooLarge { width, height, limit: max_pixels });
    }
    let mut reader = reader()?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_pixels * 8 + (64 << 20));
    reader.limits(limits);
    Ok(reader.decode().map_err(|e| UploadError::Undecodable(e.to_string()))?.into_rgb8())
}
