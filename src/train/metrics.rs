//! Metrics from log-probabilities: loss, accuracy and top-5 while training, and the full
//! [`Evaluation`] (confusion matrix, per-class accuracy, worst classes, every prediction).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Where the true class ranks among the scores (0 = predicted).
fn rank(scores: &[f32], label: usize) -> usize {
    scores.iter().filter(|&&s| s > scores[label]).count()
}

/// Running loss, accuracy and top-5 over the batches of an epoch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    loss_sum: f64,
    correct: usize,
    top5: usize,
    count: usize,
}

impl Metrics {
    /// Adds a batch: one row of log-probabilities per sample.
    pub fn update(&mut self, log_probs: &[Vec<f32>], labels: &[u32]) {
        for (row, &label) in log_probs.iter().zip(labels) {
            let r = rank(row, label as usize);
            self.loss_sum -= row[label as usize] as f64;
            self.correct += usize::from(r == 0);
            self.top5 += usize::from(r < 5);
            self.count += 1;
        }
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// Mean cross-entropy.
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.count.max(1) as f64
    }

    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.count.max(1) as f64
    }

    pub fn top5(&self) -> f64 {
        self.top5 as f64 / self.count.max(1) as f64
    }
}

/// One validation image and what the model said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionRecord {
    pub path: PathBuf,
    pub label: usize,
    pub predicted: usize,
    /// Probability of the predicted class.
    pub prob: f32,
    /// The loss of this image: minus the log-probability of its true class.
    #[serde(default)]
    pub loss: f32,
    pub top5: Vec<usize>,
}

/// A full evaluation of the classifier on a split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub classes: Vec<String>,
    pub loss: f64,
    pub accuracy: f64,
    pub top5: f64,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
    pub predictions: Vec<PredictionRecord>,
    /// Images that could not be read.
    pub skipped: usize,
    #[serde(skip)]
    metrics: Metrics,
}

impl Evaluation {
    pub fn new(classes: Vec<String>) -> Self {
        let n = classes.len();
        Self {
            classes,
            loss: 0.0,
            accuracy: 0.0,
            top5: 0.0,
            confusion: vec![vec![0; n]; n],
            predictions: Vec::new(),
            skipped: 0,
            metrics: Metrics::default(),
        }
    }

    /// Adds a batch of log-probabilities with the labels and files they belong to.
    pub fn update(&mut self, log_probs: &[Vec<f32>], labels: &[u32], paths: impl IntoIterator<Item = PathBuf>) {
        self.metrics.update(log_probs, labels);
        for ((row, &label), path) in log_probs.iter().zip(labels).zip(paths) {
            let mut order: Vec<usize> = (0..row.len()).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            order.truncate(5);
            let predicted = order[0];
            self.confusion[label as usize][predicted] += 1;
            let loss = -row[label as usize];
            self.predictions.push(PredictionRecord { path, label: label as usize, predicted, prob: row[predicted].exp(), loss, top5: order });
        }
        (self.loss, self.accuracy, self.top5) = (self.metrics.loss(), self.metrics.accuracy(), self.metrics.top5());
    }

    /// Accuracy of each class (the diagonal of the confusion matrix over its row).
    pub fn per_class_accuracy(&self) -> Vec<(String, f64)> {
        self.classes
            .iter()
            .zip(&self.confusion)
            .enumerate()
            .map(|(i, (name, row))| (name.clone(), row[i] as f64 / row.iter().sum::<usize>().max(1) as f64))
            .collect()
    }

    /// The `n` classes the model gets wrong most often, worst first.
    pub fn worst_classes(&self, n: usize) -> Vec<(String, f64)> {
        let mut classes = self.per_class_accuracy();
        classes.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        classes.truncate(n);
        classes
    }

    /// The `n` most frequent mistakes as `(true class, predicted class, images)`, most first.
    pub fn most_confused(&self, n: usize) -> Vec<(String, String, usize)> {
        let mut pairs: Vec<(String, String, usize)> = Vec::new();
        for (i, row) in self.confusion.iter().enumerate() {
            for (j, &count) in row.iter().enumerate() {
                if i != j && count > 0 {
                    pairs.push((self.classes[i].clone(), self.classes[j].clone(), count));
                }
            }
        }
        pairs.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| (&a.0, &a.1).cmp(&(&b.0, &b.1))));
        pairs.truncate(n);
        pairs
    }

    /// The `n` images the model got most wrong (highest loss), worst first.
    pub fn highest_loss(&self, n: usize) -> Vec<&PredictionRecord> {
        let mut records: Vec<&PredictionRecord> = self.predictions.iter().collect();
        records.sort_by(|a, b| b.loss.total_cmp(&a.loss));
        records.truncate(n);
        records
    }

    /// Everything, predictions included, as one JSON document.
    pub fn save_json(&self, path: &Path) -> Result<()> {
        let mut value = serde_json::to_value(self)?;
        value["per_class_accuracy"] = serde_json::to_value(self.per_class_accuracy())?;
        crate::cache::write_atomic(path, serde_json::to_string_pretty(&value)?.as_bytes())
    }

    /// One prediction per line: `path,label,predicted,prob,correct`.
    pub fn save_predictions_csv(&self, path: &Path) -> Result<()> {
        let mut csv = csv::Writer::from_writer(Vec::new());
        csv.write_record(["path", "label", "predicted", "prob", "correct"])?;
        for p in &self.predictions {
            let name = |i: usize| self.classes[i].as_str();
            let prob = format!("{:.6}", p.prob);
            let correct = (p.label == p.predicted).to_string();
            csv.write_record([&p.path.display().to_string(), name(p.label), name(p.predicted), &prob, &correct])?;
        }
        crate::cache::write_atomic(path, &csv_bytes(csv)?)
    }

    /// The confusion matrix as CSV with class names on both axes (rows: true class).
    pub fn save_confusion_csv(&self, path: &Path) -> Result<()> {
        let mut csv = csv::Writer::from_writer(Vec::new());
        csv.write_record(std::iter::once("true\\predicted").chain(self.classes.iter().map(String::as_str)))?;
        for (name, row) in self.classes.iter().zip(&self.confusion) {
            csv.write_record(std::iter::once(name.clone()).chain(row.iter().map(usize::to_string)))?;
        }
        crate::cache::write_atomic(path, &csv_bytes(csv)?)
    }
}

fn csv_bytes(csv: csv::Writer<Vec<u8>>) -> Result<Vec<u8>> {
    csv.into_inner().map_err(|e| crate::Error::Io(e.into_error()))
}
