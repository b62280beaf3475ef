//! A training phase: which part of the base trains, for how many epochs, with which optimizer.

use serde::{Deserialize, Serialize};

use super::adam::AdamConfig;

/// The original recipe has two: [`Phase::feature_extraction`] and [`Phase::fine_tune`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// Names the phase in the history, the checkpoints and MLflow; a re-run cell with the same
    /// name continues the phase instead of training it again.
    pub name: String,
    pub epochs: usize,
    /// `None`: the whole base is frozen; `Some(n)`: `unfreeze_last(n)` Keras layers train.
    pub unfreeze_last: Option<usize>,
    pub optimizer: AdamConfig,
}

impl Phase {
    /// Phase 1: the ImageNet base frozen, only the new head trains (Adam, Keras defaults).
    pub fn feature_extraction(epochs: usize) -> Self {
        Self { name: "feature_extraction".into(), epochs, unfreeze_last: None, optimizer: AdamConfig::default() }
    }

    /// Phase 2: the last `layers` Keras layers of the base train with the head, at a small
    /// learning rate and with a fresh optimizer.
    pub fn fine_tune(layers: usize, epochs: usize, learning_rate: f64) -> Self {
        Self {
            name: "fine_tune".into(),
            epochs,
            unfreeze_last: Some(layers),
            optimizer: AdamConfig { learning_rate, ..AdamConfig::default() },
        }
    }

    /// The same phase under another name (to run a further phase of the same kind).
    pub fn named(self, name: impl Into<String>) -> Self {
        Self { name: name.into(), ..self }
    }

    pub fn with_learning_rate(mut self, learning_rate: f64) -> Self {
        self.optimizer.learning_rate = learning_rate;
        self
    }
}
