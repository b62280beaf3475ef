//! What the notebooks share: their settings, read from the environment in a first cell (papermill
//! parameters do not reach the Rust kernel), and the files they hand to each other in
//! `data-cache/notebooks/` (checkpoint, exported model), so each notebook can be opened on its own
//! once the earlier ones have run.
//!
//! `FOOD101_QUICK=1` makes every notebook run in minutes: a small dataset (`FOOD101_DATA`, else a
//! synthetic one written on first use), 96-pixel images and 2 + 1 epochs. Without it: Food-101 and
//! timm's ImageNet weights (downloaded once) and the original recipe. `FOOD101_DATA`,
//! `FOOD101_WEIGHTS`, `FOOD101_CLASSES`, `FOOD101_FRACTION`, `FOOD101_EPOCHS1` and
//! `FOOD101_EPOCHS2` override single settings.

use std::fmt;
use std::path::PathBuf;

use candle_core::Device;

use crate::data::synthetic::{self, Layout, Spec};
use crate::data::{download, ClassSelection, Dataset};
use crate::error::Result;
use crate::model::{hub, MobileNetV2, MobileNetV2Config};
use crate::train::TrainConfig;

#[derive(Debug, Clone)]
pub struct Settings {
    pub quick: bool,
    pub data: PathBuf,
    /// `None` in quick mode without `FOOD101_WEIGHTS`: a randomly initialised base.
    pub weights: Option<PathBuf>,
    pub classes: ClassSelection,
    pub fraction: f64,
    pub image_size: usize,
    pub batch_size: usize,
    pub epochs1: usize,
    pub epochs2: usize,
    pub unfreeze_last: usize,
    pub lr2: f64,
    /// `data-cache/notebooks/{quick,full}`: what one notebook leaves for the next.
    pub work: PathBuf,
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    env(key).and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

impl Settings {
    /// Reads the environment; fetches or writes the dataset and weights when needed.
    pub fn from_env() -> Result<Self> {
        let quick = env("FOOD101_QUICK").is_some_and(|v| v != "0");
        let cache = crate::cache::cache_dir();
        let data = match env("FOOD101_DATA") {
            Some(dir) => PathBuf::from(dir),
            None if quick => {
                let dir = cache.join("synthetic-quick");
                if !dir.join("validation").is_dir() {
                    let spec = Spec { classes: 4, train_per_class: 24, validation_per_class: 8, size: (128, 96), ..Spec::default() };
                    synthetic::generate(&dir, Layout::ClassFolders, &spec)?;
                }
                dir
            }
            None => download::food101(&cache)?,
        };
        let weights = match env("FOOD101_WEIGHTS") {
            Some(path) => Some(PathBuf::from(path)),
            None if quick => None,
            None => Some(hub::timm_imagenet_weights()?),
        };
        Ok(Self {
            quick,
            data,
            weights,
            classes: env("FOOD101_CLASSES").map_or(ClassSelection::All, |c| c.parse().unwrap_or(ClassSelection::All)),
            fraction: env_or("FOOD101_FRACTION", if quick { 0.25 } else { 1.0 }),
            image_size: if quick { 96 } else { 224 },
            batch_size: 32,
            epochs1: env_or("FOOD101_EPOCHS1", if quick { 2 } else { 10 }),
            epochs2: env_or("FOOD101_EPOCHS2", if quick { 1 } else { 10 }),
            unfreeze_last: 50,
            lr2: 1e-5,
            // Quick and full runs keep apart: a checkpoint only resumes the run it came from.
            work: cache.join("notebooks").join(if quick { "quick" } else { "full" }),
        })
    }

    /// The dataset, cut to the selected classes and fraction (the same subset every time).
    pub fn dataset(&self) -> Result<Dataset> {
        Dataset::open(&self.data)?.subset(&self.classes, self.fraction, 42)
    }

    /// The ImageNet base at this input size (random when there are no weights).
    pub fn base(&self) -> Result<MobileNetV2> {
        let size = (self.image_size, self.image_size);
        match &self.weights {
            Some(path) => MobileNetV2::load_with_input_size(path, size, &Device::Cpu),
            None => {
                println!("note: no FOOD101_WEIGHTS in quick mode: the base is randomly initialised, so accuracy stays near chance");
                Ok(MobileNetV2::new(MobileNetV2Config::default().with_input_size(size.0, size.1), &Device::Cpu)?)
            }
        }
    }

    /// Training settings: checkpoints in `work/checkpoint`, resumed when present, so that a
    /// re-run cell or the next notebook continues instead of starting over.
    pub fn train_config(&self) -> TrainConfig {
        TrainConfig { batch_size: self.batch_size, checkpoint_dir: Some(self.checkpoint_dir()), resume: true, ..TrainConfig::default() }
    }

    pub fn checkpoint_dir(&self) -> PathBuf {
        self.work.join("checkpoint")
    }

    pub fn model_dir(&self) -> PathBuf {
        self.work.join("model")
    }
}

impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "mode:     {}", if self.quick { "quick (FOOD101_QUICK=1)" } else { "full recipe" })?;
        writeln!(f, "data:     {} ({:?}, fraction {})", self.data.display(), self.classes, self.fraction)?;
        let weights = self.weights.as_ref().map_or("none (random base)".to_string(), |w| w.display().to_string());
        writeln!(f, "weights:  {weights}")?;
        writeln!(f, "images:   {0}x{0}, batch {1}", self.image_size, self.batch_size)?;
        writeln!(f, "epochs:   {} frozen + {} fine-tuning (last {} layers, lr {})", self.epochs1, self.epochs2, self.unfreeze_last, self.lr2)?;
        write!(f, "work dir: {}", self.work.display())
    }
}
