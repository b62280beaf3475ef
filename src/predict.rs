//! Top-k prediction on image files with a pretrained classifier.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use image::RgbImage;
use serde::Serialize;

use crate::data::Preprocessor;
use crate::error::{Error, Result};
use crate::export::{ExportInfo, LABELS, WEIGHTS};
use crate::model::weights::Checkpoint;
use crate::model::MobileNetV2;

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
    pub preprocessor: Preprocessor,
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
        let preprocessor = model.preprocessor();
        Ok(Self { model, labels, preprocessor })
    }

    /// Loads an exported folder ([`crate::export`]), with the preprocessing it was trained with.
    pub fn from_dir(dir: &Path, device: &Device) -> Result<Self> {
        let info = ExportInfo::read(dir)?;
        let mut model = MobileNetV2::new(info.model.clone(), device)?;
        model.load_weights(dir.join(WEIGHTS))?;
        model.freeze_all();
        let labels = read_labels(&dir.join(LABELS))?;
        if labels.len() != info.classes {
            return Err(Error::Weights { path: dir.join(LABELS), message: format!("{} labels for {} classes", labels.len(), info.classes) });
        }
        Ok(Self { model, labels, preprocessor: info.preprocessor })
    }

    /// Top-`k` classes for each decoded image, batched through the network once.
    pub fn predict_images(&self, images: &[RgbImage], k: usize) -> Result<Vec<Vec<Prediction>>> {
        let device = self.model.device();
        let batch: Vec<Tensor> = images.iter().map(|img| self.preprocessor.image_tensor(img, device)).collect::<Result<_>>()?;
        self.predict_batch(&Tensor::stack(&batch, 0)?, k)
    }

    /// Top-`k` classes for each model input of a `[N, 3, H, W]` batch made by [`Self::preprocessor`].
    pub fn predict_batch(&self, batch: &Tensor, k: usize) -> Result<Vec<Vec<Prediction>>> {
        let probs = self.model.predict(batch)?.to_vec2::<f32>()?;
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

    /// Where the classifier looks when it scores `class` on an image file: a class activation map
    /// (Zhou et al. 2016, <https://arxiv.org/abs/1512.04150>). With GlobalAveragePooling before
    /// Dense, a class's logit is the average over the last feature map of `weights[class] ·
    /// features(y, x)`; that sum before the average, one value per position, is the map. Returns
    /// the `[h, w]` values in row order and `(h, w)` (the input size / 32).
    pub fn class_activation_map(&self, path: &Path, class: usize) -> Result<(Vec<f32>, (usize, usize))> {
        let Some(classifier) = self.model.classifier() else { return Err(Error::Config("this model has no classifier".into())) };
        if class >= self.labels.len() {
            return Err(Error::Config(format!("class {class} of a {}-class model", self.labels.len())));
        }
        let input = self.preprocessor.file_tensor(path, self.model.device())?.unsqueeze(0)?;
        let maps = self.model.forward_base(&input)?.squeeze(0)?;
        let (c, h, w) = maps.dims3()?;
        let weights = classifier.weight().get(class)?.reshape((1, c))?;
        let map = weights.matmul(&maps.reshape((c, h * w))?)?.flatten_all()?.to_vec1::<f32>()?;
        Ok((map, (h, w)))
    }

    /// Top-`k` classes of an image file, read as training and evaluation read it.
    pub fn predict_file(&self, path: &Path, k: usize) -> Result<Vec<Prediction>> {
        let input = self.preprocessor.file_tensor(path, self.model.device())?;
        Ok(self.predict_batch(&input.unsqueeze(0)?, k)?.remove(0))
    }
}
