//! The crate's error type: every failure names the file, tensor or setting it is about.

use std::fmt;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("{}: file not found", .0.display())]
    NotFound(PathBuf),
    #[error("{}: {message}", path.display())]
    Weights { path: PathBuf, message: String },
    #[error("{}: the weights do not fit the model:\n{}", path.display(), list(problems))]
    TensorMismatch { path: PathBuf, problems: Vec<TensorProblem> },
    #[error("download of {url} failed: {message}")]
    Download { url: String, message: String },
    #[error("dataset {}: {message}", path.display())]
    Dataset { path: PathBuf, message: String },
    #[error("image {}: {message}", path.display())]
    Image { path: PathBuf, message: String },
    #[error("cannot get `{file}` of {repo} from the Hugging Face Hub: {message}")]
    Hub { repo: String, file: String, message: String },
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },
    #[error("invalid setting: {0}")]
    Config(String),
    #[error("training diverged in epoch {epoch}, batch {batch} (loss {loss}): {recovery}; lower the learning rate and fit again")]
    Diverged { epoch: usize, batch: usize, loss: f32, recovery: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Csv(#[from] csv::Error),
}

/// One tensor that keeps a checkpoint from loading.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorProblem {
    Missing { key: String, expected: Vec<usize> },
    Shape { key: String, expected: Vec<usize>, found: Vec<usize> },
    Unexpected { key: String, found: Vec<usize> },
}

impl TensorProblem {
    pub fn key(&self) -> &str {
        match self {
            Self::Missing { key, .. } | Self::Shape { key, .. } | Self::Unexpected { key, .. } => key,
        }
    }
}

impl fmt::Display for TensorProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing { key, expected } => write!(f, "missing tensor `{key}` (the model expects shape {expected:?})"),
            Self::Shape { key, expected, found } => {
                write!(f, "tensor `{key}` has shape {found:?}, the model expects {expected:?}")
            }
            Self::Unexpected { key, found } => write!(f, "unexpected tensor `{key}` with shape {found:?}"),
        }
    }
}

fn list(problems: &[TensorProblem]) -> String {
    const SHOWN: usize = 12;
    let mut lines: Vec<String> = problems.iter().take(SHOWN).map(|p| format!("  - {p}")).collect();
    if problems.len() > SHOWN {
        lines.push(format!("  ... and {} more", problems.len() - SHOWN));
    }
    lines.join("\n")
}
