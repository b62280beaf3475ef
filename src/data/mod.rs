//! Data: datasets on disk, the [`Preprocessor`] (decode, resize, normalise), the input pipeline
//! (augment, batch, prefetch) and synthetic datasets for tests and quick runs.

mod augment;
mod dataset;
mod decoding;
pub mod download;
mod jpeg;
mod normalize;
mod pipeline;
mod preprocess;
mod resample;
mod resize;
pub mod synthetic;

/// How images become model inputs; part of the activation caches' key, so a change here (decoder,
/// resize) rebuilds them.
pub const DECODER: &str = "libjpeg-turbo raw planes + row-wise float resampling, v3";

pub use augment::Augment;
pub use dataset::{ClassSelection, Dataset, Sample, Skipped};
pub use decoding::{decode_file, decode_rgb, load_rgb, DecodeError, MAX_PIXELS};
pub use normalize::Normalization;
pub use pipeline::{load_sample, Batch, DataLoader, Epoch, EpochStats, PipelineConfig};
pub use preprocess::{JpegDecoding, Preprocessor};
pub use resize::{resize_bilinear, Resize};
