//! Data: datasets on disk, the input pipeline (decode, augment, resize, normalise, batch,
//! prefetch) and synthetic datasets for tests and quick runs.

mod augment;
mod dataset;
mod decoding;
pub mod download;
mod jpeg;
mod pipeline;
mod preprocess;
mod resample;
pub mod synthetic;

/// How images become model inputs; part of the activation caches' key, so a change here (decoder,
/// resize) rebuilds them.
pub const DECODER: &str = "libjpeg-turbo raw planes + row-wise float resampling, v3";

pub use augment::Augment;
pub use dataset::{ClassSelection, Dataset, Sample};
pub use decoding::{decode_rgb, DecodeError, MAX_PIXELS};
pub use pipeline::{decode, load_sample, Batch, DataLoader, Epoch, EpochStats, PipelineConfig, Skipped};
pub use preprocess::{load_rgb, resize_bilinear, to_tensor, Preprocessing, Resize};
