//! MLflow tracking over its REST API: a thin [`client`], a local [`journal`] that keeps every
//! event until a server has it, and the [`Tracker`] the trainer reports to.

pub mod client;
pub mod journal;
mod responses;
pub mod tracker;

pub use client::{Metric, MlflowClient, MlflowError};
pub use journal::{sync, Event, Journal, SyncReport};
pub use tracker::{journal_root, Tracker, DEFAULT_ALIAS, DEFAULT_EXPERIMENT};
