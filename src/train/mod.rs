//! Training, as in the original project: phase 1 trains a new head on the frozen ImageNet base,
//! phase 2 unfreezes the last layers at a small learning rate. [`Trainer`] runs a [`Phase`] and
//! keeps the [`History`]; [`Adam`] updates like Keras; activations of frozen layers are cached
//! ([`features`]); [`checkpoint`]s make runs resumable; [`metrics`] evaluates; [`draws`] writes
//! a run's random draws down for another framework to train with.

pub mod adam;
pub mod checkpoint;
pub mod draws;
pub mod features;
pub mod history;
pub mod metrics;
pub mod phase;
pub mod progress;
pub mod schedule;
mod source;
pub mod trainer;

pub use adam::{Adam, AdamConfig};
pub use crate::export::FinalEvaluation;
pub use history::{EpochRecord, History, PhaseRecord};
pub use metrics::{Evaluation, Metrics, PredictionRecord};
pub use phase::Phase;
pub use progress::Progress;
pub use schedule::Schedule;
pub use trainer::{cross_entropy, Callback, EpochDraws, TrainConfig, Trainer};
