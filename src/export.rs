//! An exported classifier: the folder `food101 train` and `Trainer::export` write and
//! `food101 predict --model`, the web demo and notebook 04 load. It holds `model.safetensors`
//! (the base with the head as its `predictions` layer, in the naming the base came in),
//! `labels.txt` (one class per line) and `config.json` ([`ExportInfo`]: the architecture, the
//! weight format, the [`Preprocessor`] the model was trained with, and its validation numbers).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cache::write_atomic;
use crate::data::Preprocessor;
use crate::error::{Error, Result};
use crate::model::{MobileNetV2, MobileNetV2Config, WeightFormat};

pub const WEIGHTS: &str = "model.safetensors";
pub const LABELS: &str = "labels.txt";
pub const CONFIG: &str = "config.json";

/// The validation numbers of a trained classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalEvaluation {
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub val_top5: f64,
}

/// `config.json` of an exported classifier folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportInfo {
    pub model: MobileNetV2Config,
    pub format: WeightFormat,
    /// How a photo becomes this model's input: every loader of the folder uses it.
    pub preprocessor: Preprocessor,
    pub classes: usize,
    /// The validation numbers at export time, when the model was evaluated.
    pub evaluation: Option<FinalEvaluation>,
}

impl ExportInfo {
    /// The `config.json` of the folder `dir`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(CONFIG);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::Weights { path: path.clone(), message: format!("not an exported model folder ({e}); `food101 train` writes one") })?;
        serde_json::from_str(&text).map_err(|e| Error::Weights { path, message: format!("not a food101 model config: {e}") })
    }
}

/// Writes `classifier` (a base with its `predictions` layer) with its labels and preprocessing
/// into `dir`, each file replaced atomically; returns `dir`.
pub fn export(classifier: &MobileNetV2, labels: &[String], preprocessor: Preprocessor, evaluation: Option<FinalEvaluation>, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let format = WeightFormat::of(classifier.config());
    classifier.save(dir.join(WEIGHTS), format)?;
    write_atomic(&dir.join(LABELS), (labels.join("\n") + "\n").as_bytes())?;
    let info = ExportInfo { model: classifier.config().clone(), format, preprocessor, classes: labels.len(), evaluation };
    write_atomic(&dir.join(CONFIG), serde_json::to_string_pretty(&info)?.as_bytes())?;
    Ok(dir.to_path_buf())
}
