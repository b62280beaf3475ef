//! `History`: what `model.fit` returns in Keras, one record per epoch across both phases.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::export::FinalEvaluation;

/// One epoch's numbers. Training metrics are measured with dropout on, as Keras reports them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based and global: phase 2 of the default recipe has epochs 11-20.
    pub epoch: usize,
    pub phase: String,
    pub loss: f64,
    pub accuracy: f64,
    pub top5: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub val_top5: f64,
    pub learning_rate: f64,
    pub seconds: f64,
    /// Images skipped as unreadable in this epoch (train and validation).
    pub skipped: usize,
}

/// How one phase went as a whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseRecord {
    pub name: String,
    pub first_epoch: usize,
    pub epochs: usize,
    /// Wall time of the phase, caching included.
    pub seconds: f64,
    /// Time spent computing cached activations, and the estimated time the cache saved.
    pub cache_seconds: f64,
    pub cache_saved_seconds: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub epochs: Vec<EpochRecord>,
    pub phases: Vec<PhaseRecord>,
    pub evaluation: Option<FinalEvaluation>,
}

impl History {
    /// Epochs trained in the named phase.
    pub fn epochs_in(&self, phase: &str) -> usize {
        self.epochs.iter().filter(|e| e.phase == phase).count()
    }

    pub fn last(&self) -> Option<&EpochRecord> {
        self.epochs.last()
    }

    /// One metric over all epochs, e.g. `history.metric(|e| e.val_accuracy)` for a chart.
    pub fn metric(&self, f: impl Fn(&EpochRecord) -> f64) -> Vec<f64> {
        self.epochs.iter().map(f).collect()
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a history serialises")
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        crate::cache::write_atomic(path, serde_json::to_string_pretty(self)?.as_bytes())
    }

    pub fn load(path: &Path) -> Result<Self> {
        Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
    }
}

impl std::fmt::Display for EpochRecord {
    /// `epoch  3 feature_extraction  loss 0.4123 acc 0.8312 top5 0.9700 | val_loss ... | 12.3 s`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "epoch {:>2} {:<18} loss {:.4} acc {:.4} top5 {:.4} | val_loss {:.4} val_acc {:.4} val_top5 {:.4} | lr {:.0e} | {:.1} s",
            self.epoch, self.phase, self.loss, self.accuracy, self.top5, self.val_loss, self.val_accuracy, self.val_top5, self.learning_rate, self.seconds
        )?;
        if self.skipped > 0 {
            write!(f, " | skipped {}", self.skipped)?;
        }
        Ok(())
    }
}
