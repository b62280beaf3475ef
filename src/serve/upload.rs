//! What the demo answers when an upload does not decode: empty bodies, non-images, truncated files
//! and decompression bombs (refused from the header, [`crate::data::decode_rgb`]) each get their
//! own 4xx.

use axum::http::{HeaderValue, StatusCode};

use crate::data::DecodeError;

pub fn status(e: &DecodeError) -> StatusCode {
    match e {
        DecodeError::Empty => StatusCode::BAD_REQUEST,
        DecodeError::NotAnImage => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        DecodeError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        DecodeError::Truncated | DecodeError::Undecodable(_) => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// The upload's `Content-Type`, if any, must be an image type or plain bytes. The types a web page
/// may send to another origin without asking first (forms, text) are refused, so no page can make
/// a browser post files to this server behind its user's back.
pub fn check_content_type(kind: Option<&HeaderValue>) -> Result<(), String> {
    let Some(kind) = kind else { return Ok(()) };
    let essence = kind.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence.starts_with("image/") || essence == "application/octet-stream" {
        Ok(())
    } else {
        Err(format!("send the image bytes as image/* or application/octet-stream, not {essence}"))
    }
}
