//! What the demo answers when an upload does not decode: empty bodies, non-images, truncated files
//! and decompression bombs (refused from the header, [`crate::data::decode_rgb`]) each get their
//! own 4xx.

use axum::http::StatusCode;

use crate::data::DecodeError;

pub fn status(e: &DecodeError) -> StatusCode {
    match e {
        DecodeError::Empty => StatusCode::BAD_REQUEST,
        DecodeError::NotAnImage => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        DecodeError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        DecodeError::Undecodable(_) => StatusCode::UNPROCESSABLE_ENTITY,
    }
}
