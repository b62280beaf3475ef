//! Images in, tensors out: decoding, resizing and the normalisation each set of weights expects.

mod preprocess;

pub use preprocess::{load_rgb, resize_bilinear, to_tensor, Preprocessing};
