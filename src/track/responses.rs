//! The parts of MLflow's REST answers this crate relies on, as types: an answer that lacks one is
//! an error naming the endpoint and the missing field, never an empty id used further on.

use serde::Deserialize;

/// `experiments/get-by-name`
#[derive(Debug, Deserialize)]
pub(crate) struct ExperimentByName {
    pub experiment: CreatedExperiment,
}

/// `experiments/create`, and the experiment inside `experiments/get-by-name`.
#[derive(Debug, Deserialize)]
pub(crate) struct CreatedExperiment {
    pub experiment_id: String,
}

/// `runs/create` and `runs/get`.
#[derive(Debug, Deserialize)]
pub(crate) struct RunAnswer {
    pub run: Run,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Run {
    pub info: RunInfo,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RunInfo {
    pub run_id: String,
    pub artifact_uri: String,
}

/// `runs/search`: MLflow leaves `runs` out when nothing matches.
#[derive(Debug, Deserialize)]
pub(crate) struct RunsPage {
    #[serde(default)]
    pub runs: Vec<Run>,
}

/// `artifacts/list`: `files` is left out for an empty folder.
#[derive(Debug, Deserialize)]
pub(crate) struct ArtifactList {
    #[serde(default)]
    pub files: Vec<ArtifactFile>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ArtifactFile {
    pub path: String,
    #[serde(default)]
    pub is_dir: bool,
}

/// `model-versions/search`: `model_versions` is left out when nothing matches.
#[derive(Debug, Deserialize)]
pub(crate) struct ModelVersions {
    #[serde(default)]
    pub model_versions: Vec<ModelVersion>,
}

/// `model-versions/create`
#[derive(Debug, Deserialize)]
pub(crate) struct CreatedModelVersion {
    pub model_version: ModelVersion,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ModelVersion {
    pub version: String,
}
