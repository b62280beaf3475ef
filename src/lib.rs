//! Food-101 classification by transfer learning on MobileNetV2, in Rust with candle.
//!
//! The flow follows the original Keras project: a frozen ImageNet MobileNetV2 with a new head
//! (phase 1), then the last 50 Keras layers unfrozen (phase 2). Notebooks import this crate as
//! one shared library (`notebooks/kernel/food101-notebook`) and can name the types of the crates
//! it builds on through its re-exports: [`candle_core`], [`candle_nn`], [`image`] and [`rand`].

pub use candle_core;
pub use candle_nn;
pub use image;
pub use rand;

pub mod cache;
pub mod data;
pub mod engine;
pub mod error;
pub mod export;
pub mod memory;
pub mod model;
pub mod notebook;
pub mod predict;
pub mod recipe;
#[cfg(feature = "serve")]
pub mod serve;
pub mod track;
pub mod train;
pub mod viz;

pub use error::{Error, Result};
pub use model::{ClassifierHead, MobileNetV2, MobileNetV2Config};
