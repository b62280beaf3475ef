//! Checkpoints after every epoch: the weights, the optimizer's moments and a JSON state with the
//! epoch, the phase, the history and the seed (every random draw derives from the seed and the
//! epoch, so that is the whole RNG state). Written to a new folder and swapped in by renames, so
//! an interrupted run keeps the previous checkpoint whole.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::history::History;
use super::phase::Phase;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::MobileNetV2Config;

/// Which data a checkpoint was trained on: its folder and the size of each split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataIdentity {
    pub root: PathBuf,
    pub train_images: usize,
    pub validation_images: usize,
}

impl DataIdentity {
    pub fn of(dataset: &Dataset) -> Self {
        Self { root: dataset.root.clone(), train_images: dataset.train.len(), validation_images: dataset.validation.len() }
    }
}

/// `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingState {
    pub classes: Vec<String>,
    /// Absent in a checkpoint that did not record it.
    #[serde(default)]
    pub data: Option<DataIdentity>,
    pub model: MobileNetV2Config,
    pub seed: u64,
    /// The phase the last epoch belonged to, and the optimizer's step count in it.
    pub phase: Phase,
    pub optimizer_iterations: u64,
    pub history: History,
}

impl TrainingState {
    /// Whether a run on `dataset` with `model` and `seed` may continue from this state; if not,
    /// what differs.
    pub fn check_fits(&self, dataset: &Dataset, model: &MobileNetV2Config, seed: u64) -> std::result::Result<(), String> {
        if self.classes != dataset.classes {
            return Err(format!("made for {} other classes ({:?}...), not this dataset's {}", self.classes.len(), self.classes.first(), dataset.classes.len()));
        }
        let here = DataIdentity::of(dataset);
        if let Some(data) = self.data.as_ref().filter(|d| **d != here) {
            return Err(format!(
                "made on {} ({} train, {} validation images), not on {} ({} train, {} validation images)",
                data.root.display(),
                data.train_images,
                data.validation_images,
                here.root.display(),
                here.train_images,
                here.validation_images
            ));
        }
        if &self.model != model {
            return Err(format!("made for {:?}, the model is {model:?}", self.model));
        }
        if self.seed != seed {
            return Err(format!("made with seed {}, this run has seed {seed}: resuming would not repeat the run", self.seed));
        }
        Ok(())
    }
}

pub const BASE: &str = "base.safetensors";
pub const HEAD: &str = "head.safetensors";
pub const OPTIMIZER: &str = "optimizer.safetensors";
const STATE: &str = "state.json";

/// `dir/last`, or `dir/previous` when a run died between the two renames of a swap.
pub fn latest(dir: &Path) -> Option<PathBuf> {
    ["last", "previous"].into_iter().map(|d| dir.join(d)).find(|d| d.join(STATE).is_file())
}

/// Writes a checkpoint: `write_files` fills a fresh folder, which then replaces `dir/last`.
pub fn save(dir: &Path, state: &TrainingState, write_files: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
    let (partial, last, previous) = (dir.join("partial"), dir.join("last"), dir.join("previous"));
    if partial.exists() {
        std::fs::remove_dir_all(&partial)?;
    }
    std::fs::create_dir_all(&partial)?;
    write_files(&partial)?;
    std::fs::write(partial.join(STATE), serde_json::to_string_pretty(state)?)?;
    if previous.exists() {
        std::fs::remove_dir_all(&previous)?;
    }
    if last.exists() {
        std::fs::rename(&last, &previous)?;
    }
    std::fs::rename(&partial, &last)?;
    if previous.exists() {
        std::fs::remove_dir_all(&previous)?;
    }
    Ok(last)
}

/// Reads the state of the latest checkpoint in `dir`, with the folder its files are in.
pub fn load(dir: &Path) -> Result<Option<(TrainingState, PathBuf)>> {
    let Some(folder) = latest(dir) else { return Ok(None) };
    let text = std::fs::read_to_string(folder.join(STATE))?;
    let state = serde_json::from_str(&text).map_err(|e| Error::Checkpoint {
        path: folder.join(STATE),
        message: format!("unreadable training state: {e}"),
    })?;
    Ok(Some((state, folder)))
}

/// Sets every variable of `varmap` from `path`; a tensor missing from the file is named.
pub fn load_vars(varmap: &candle_nn::VarMap, path: &Path) -> Result<()> {
    let tensors = candle_core::safetensors::load(path, &candle_core::Device::Cpu)
        .map_err(|e| Error::Checkpoint { path: path.to_path_buf(), message: format!("not a readable safetensors file: {e}") })?;
    for (name, var) in varmap.data().lock().expect("varmap lock").iter() {
        let value = tensors.get(name).ok_or_else(|| Error::Checkpoint {
            path: path.to_path_buf(),
            message: format!("no tensor `{name}` (shape {:?})", var.dims()),
        })?;
        var.set(value)?;
    }
    Ok(())
}
