//! The original project's recipe, end to end: phase 1 trains a new head on the frozen ImageNet
//! base, phase 2 unfreezes the last layers at a small learning rate, then the classifier is
//! evaluated, exported, reported and (with a tracker) logged to MLflow and registered.
//! `food101 train` runs it; notebooks 02 and 03 run the same two calls a cell at a time.
//!
//! ```no_run
//! # use food101::{recipe::{self, Recipe}, train::{Trainer, TrainConfig}, data::Dataset, MobileNetV2};
//! # fn main() -> food101::Result<()> {
//! let model = MobileNetV2::load("weights.safetensors", &food101::candle_core::Device::Cpu)?;
//! let mut trainer = Trainer::new(model, Dataset::open("data-cache/food-101")?, TrainConfig::default())?;
//! Recipe::default().fit(&mut trainer)?;
//! let evaluation = recipe::finish(&mut trainer, "data-cache/train".as_ref(), None, recipe::REGISTERED_MODEL)?;
//! # Ok(()) }
//! ```

use std::path::Path;

use crate::error::Result;
use crate::track::{Tracker, DEFAULT_ALIAS};
use crate::train::{Evaluation, Phase, Schedule, Trainer};

/// The name the exported model is registered under in MLflow unless told otherwise.
pub const REGISTERED_MODEL: &str = "food101-mobilenetv2";

/// The files [`finish`] writes beside the exported `model/` folder.
pub const REPORTS: [&str; 6] = ["history.json", "history.svg", "evaluation.json", "confusion.csv", "confusion.svg", "predictions.csv"];

/// The two phases.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    /// `original`, `improved`, or a name of one's own (MLflow's `recipe` param).
    pub name: String,
    /// Phase 1: the head alone on the frozen base.
    pub feature_extraction: Phase,
    /// Phase 2, if any: the last layers of the base unfrozen.
    pub fine_tune: Option<Phase>,
}

impl Default for Recipe {
    fn default() -> Self {
        Self::original()
    }
}

impl Recipe {
    /// The original project's: 10 epochs at Adam's default 1e-3, then 10 with the last 50 Keras
    /// layers unfrozen at 1e-5, constant rates, plain cross-entropy.
    pub fn original() -> Self {
        Self { name: "original".into(), feature_extraction: Phase::feature_extraction(10), fine_tune: Some(Phase::fine_tune(50, 10, 1e-5)) }
    }

    /// The original's phases and epochs with changes that pay on real food photos
    /// (`docs/quality.md`): label smoothing 0.1 (Food-101's training labels are noisy), a
    /// one-epoch warm-up then a cosine decay in each phase, phase 2 at 1e-4 (ten times the
    /// original's rate, safe after the warm-up) on the last 100 Keras layers (from block 6 on,
    /// instead of 11), and random horizontal flips that keep the activation cache exact (the
    /// mirrored photos are cached too).
    pub fn improved() -> Self {
        let smoothing = 0.1;
        let cosine = Schedule::Cosine { warmup_epochs: 1.0 };
        Self {
            name: "improved".into(),
            feature_extraction: Phase::feature_extraction(10).with_schedule(cosine).with_label_smoothing(smoothing).with_random_flip(true),
            fine_tune: Some(Phase::fine_tune(100, 10, 1e-4).with_schedule(cosine).with_label_smoothing(smoothing).with_random_flip(true)),
        }
    }

    /// One line for logs and MLflow: the phases with their epochs, layers, rates and options.
    pub fn describe(&self) -> String {
        self.phases()
            .iter()
            .map(|p| {
                let layers = p.unfreeze_last.map_or("base frozen".to_string(), |n| format!("last {n} layers"));
                let mut line = format!("{} {} epochs, {layers}, Adam {:e}", p.name, p.epochs, p.optimizer.learning_rate);
                if p.schedule != Schedule::Constant {
                    line += &format!(", {:?}", p.schedule);
                }
                if p.label_smoothing > 0.0 {
                    line += &format!(", label smoothing {}", p.label_smoothing);
                }
                if p.random_flip {
                    line += ", random flip";
                }
                line
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The phases in order.
    pub fn phases(&self) -> Vec<&Phase> {
        [Some(&self.feature_extraction), self.fine_tune.as_ref()].into_iter().flatten().collect()
    }

    /// Trains both phases, or what is left of them (a finished phase is not trained again). One
    /// pass over the images caches the frozen activations where each phase starts.
    pub fn fit(&self, trainer: &mut Trainer) -> Result<()> {
        trainer.prepare_caches(&self.phases())?;
        for phase in self.phases() {
            trainer.fit(phase.clone())?;
        }
        Ok(())
    }
}

/// Evaluates the classifier, exports it to `out/model`, writes the [`REPORTS`] into `out` and,
/// with a tracker, logs all of it as the run's artifacts and registers the model as
/// `register_as` with the `champion` alias.
pub fn finish(trainer: &mut Trainer, out: &Path, tracker: Option<&Tracker>, register_as: &str) -> Result<Evaluation> {
    let evaluation = trainer.evaluate()?;
    let model_dir = trainer.export(out.join("model"))?;
    trainer.history().save(&out.join("history.json"))?;
    crate::viz::history_chart(trainer.history())?.save(out.join("history.svg"))?;
    evaluation.save_json(&out.join("evaluation.json"))?;
    evaluation.save_confusion_csv(&out.join("confusion.csv"))?;
    crate::viz::confusion_matrix(&evaluation).save(out.join("confusion.svg"))?;
    evaluation.save_predictions_csv(&out.join("predictions.csv"))?;
    if let Some(tracker) = tracker {
        tracker.log_artifact_dir("model", &model_dir)?;
        for file in REPORTS {
            tracker.log_artifact(file, &out.join(file))?;
        }
        tracker.register_model(register_as, "model", DEFAULT_ALIAS)?;
    }
    Ok(evaluation)
}
