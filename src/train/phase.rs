//! A training phase: which part of the base trains, for how many epochs, with which optimizer.

use serde::{Deserialize, Serialize};

use super::adam::AdamConfig;
use super::schedule::Schedule;

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
    /// How the learning rate moves over the phase (default: constant).
    #[serde(default)]
    pub schedule: Schedule,
    /// Label smoothing of the cross-entropy (Szegedy et al., <https://arxiv.org/abs/1512.00567>):
    /// the target puts `1 - s` on the true class and spreads `s` over all classes, as Keras'
    /// `CategoricalCrossentropy(label_smoothing=s)`. 0 (default): plain cross-entropy.
    #[serde(default)]
    pub label_smoothing: f32,
    /// Keras' `RandomFlip("horizontal")` on the training photos: each is mirrored or not at
    /// random, per epoch. Unlike other augmentation it keeps the activation cache: the mirrored
    /// photos' activations are cached too (one more pass over the training photos).
    #[serde(default)]
    pub random_flip: bool,
}

impl Phase {
    /// Phase 1: the ImageNet base frozen, only the new head trains (Adam, Keras defaults).
    pub fn feature_extraction(epochs: usize) -> Self {
        Self {
            name: "feature_extraction".into(),
            epochs,
            unfreeze_last: None,
            optimizer: AdamConfig::default(),
            schedule: Schedule::Constant,
            label_smoothing: 0.0,
            random_flip: false,
        }
    }

    /// Phase 2: the last `layers` Keras layers of the base train with the head, at a small
    /// learning rate and with a fresh optimizer.
    pub fn fine_tune(layers: usize, epochs: usize, learning_rate: f64) -> Self {
        Self {
            name: "fine_tune".into(),
            epochs,
            unfreeze_last: Some(layers),
            optimizer: AdamConfig { learning_rate, ..AdamConfig::default() },
            schedule: Schedule::Constant,
            label_smoothing: 0.0,
            random_flip: false,
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

    pub fn with_schedule(self, schedule: Schedule) -> Self {
        Self { schedule, ..self }
    }

    pub fn with_label_smoothing(self, label_smoothing: f32) -> Self {
        Self { label_smoothing, ..self }
    }

    pub fn with_random_flip(self, random_flip: bool) -> Self {
        Self { random_flip, ..self }
    }
}
