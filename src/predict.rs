//! Top-k prediction on image files with a pretrained classifier.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::data::{load_rgb, to_tensor, Preprocessing};
use crate::error::{Error, Result};
use crate::model::weights::Checkpoint;
use crate::model::{MobileNetV2, MobileNetV2Config, WeightFormat};
use crate::train::FinalEvaluation;

/// One class of a top-k answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub index: usize,
    pub label: String,
    pub prob: f32,
}

/// A model with a classifier, its labels and the preprocessing its weights expect.
pub struct ImageClassifier {
    pub model: MobileNetV2,
    pub labels: Vec<String>,
    pub preprocessing: Preprocessing,
}

/// `config.json` of an exported classifier folder (see `Trainer::export`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportInfo {
    pub model: MobileNetV2Config,
    pub format: WeightFormat,
    pub preprocessing: Preprocessing,
    pub classes: usize,
    /// The validation numbers at export time, when the model was evaluated.
    pub evaluation: Option<FinalEvaluation>,
}

/// One label per line; index = line number - 1.
pub fn read_labels(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io(std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))))?;
    Ok(text.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect())
}

/// `labels.txt`, `<stem>.labels.txt` or `imagenet_labels.txt` beside the weights.
fn labels_beside(weights: &Path) -> Option<PathBuf> {
    let dir = weights.parent()?;
    let stem = weights.file_stem()?.to_string_lossy();
    [format!("{stem}.labels.txt"), "labels.txt".into(), "imagenet_labels.txt".into()]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
}

/// Indices and values of the `k` largest entries, largest first.
pub fn top_k(probs: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut indexed: Vec<(usize, f32)> = probs.iter().copied().enumerate().collect();
    indexed.sort_by(|a, b| b.1.total_cmp(&a.1));
    indexed.truncate(k);
    indexed
}

impl ImageClassifier {
    /// Loads an ImageNet-style checkpoint (one with `predictions`). Labels come from `labels`, or a
    /// labels file beside the weights, or are named `class_<i>`.
    pub fn from_weights(weights: &Path, labels: Option<&Path>, device: &Device) -> Result<Self> {
        let checkpoint = Checkpoint::read(weights, device)?;
        let mut model = MobileNetV2::from_checkpoint(&checkpoint, weights)?;
        model.freeze_all(); // inference only: lets the engine fold BatchNorm into the convolutions
        let classes = model.config().classes.ok_or_else(|| Error::Weights {
            path: weights.to_path_buf(),
            message: "these weights have no classifier (`predictions`): nothing to predict with".into(),
        })?;
        let labels = match labels.map(Path::to_path_buf).or_else(|| labels_beside(weights)) {
            Some(path) => {
                let labels = read_labels(&path)?;
                if labels.len() != classes {
                    return Err(Error::Weights {
                        path: path.clone(),
                        message: format!("{} labels for a classifier of {classes} classes", labels.len()),
                    });
                }
                labels
            }
            None => (0..classes).map(|i| format!("class_{i}")).collect(),
        };
        Ok(Self { model, labels, preprocessing: checkpoint.format.preprocessing() })
    }

    /// Loads a folder written by `Trainer::export`: `model.safetensors`, `labels.txt`, `config.json`.
    pub fn from_dir(dir: &Path, device: &Device) -> Result<Self> {
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|e| Error::Weights {
            path: config_path.clone(),
            message: format!("not an exported model folder ({e}); `food101 train` writes one"),
        })?;
        let info: ExportInfo = serde_json::from_str(&text)?;
        let mut model = MobileNetV2::new(info.model.clone(), device)?;
        model.load_weights(dir.join("model.safetensors"))?;
        model.freeze_all();
        let labels = read_labels(&dir.join("labels.txt"))?;
        if labels.len() != info.classes {
            return Err(Error::Weights { path: dir.join("labels.txt"), message: format!("{} labels for {} classes", labels.len(), info.classes) });
        }
        Ok(Self { model, labels, preprocessing: info.preprocessing })
    }

    /// Top-`k` classes for each image, batched through the network once.
    pub fn predict_images(&self, images: &[RgbImage], k: usize) -> Result<Vec<Vec<Prediction>>> {
        let size = self.model.config().input_size;
        let device = self.model.device();
        let batch: Vec<Tensor> =
            images.iter().map(|img| to_tensor(img, size, self.preprocessing, device)).collect::<Result<_>>()?;
        let probs = self.model.predict(&Tensor::stack(&batch, 0)?)?.to_vec2::<f32>()?;
        Ok(probs
            .iter()
            .map(|p| {
                top_k(p, k)
                    .into_iter()
                    .map(|(index, prob)| Prediction { index, label: self.labels[index].clone(), prob })
                    .collect()
            })
            .collect())
    }

    pub fn predict_file(&self, path: &Path, k: usize) -> Result<Vec<Prediction>> {
        let image = load_rgb(path)?;
        Ok(self.predict_images(&[image], k)?.remove(0))
    }
}
