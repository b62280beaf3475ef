//! ImageNet weights from the Hugging Face Hub (hf-hub), cached under `data-cache/huggingface`.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// timm's ImageNet-1k MobileNetV2 1.0 (72.97% top-1), the default pretrained base.
pub const TIMM_MOBILENETV2: &str = "timm/mobilenetv2_100.ra_in1k";
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// `$HF_HOME/hub` when `HF_HOME` is set (shared with Python's `huggingface_hub`), else
/// `data-cache/huggingface/hub`.
pub fn hub_cache_dir() -> PathBuf {
    match std::env::var_os("HF_HOME") {
        Some(home) => PathBuf::from(home).join("hub"),
        None => crate::cache::cache_dir().join("huggingface").join("hub"),
    }
}

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

/// The local path of `file` in the model repository `repo`, downloading it unless it is cached.
/// `HF_HUB_OFFLINE=1` never touches the network; `HF_ENDPOINT` picks another hub.
pub fn hub_file(repo: &str, file: &str) -> Result<PathBuf> {
    let dir = hub_cache_dir();
    let error = |message: String| Error::Hub { repo: repo.into(), file: file.into(), message };
    if let Some(path) = hf_hub::Cache::new(dir.clone()).model(repo.to_string()).get(file) {
        return Ok(path);
    }
    if offline() {
        return Err(error(format!(
            "HF_HUB_OFFLINE is set and it is not in the cache {}; download it on a connected machine or pass a local file (--weights)",
            dir.display()
        )));
    }
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_cache_dir(dir)
        .with_progress(true)
        .build()
        .map_err(|e| error(e.to_string()))?;
    api.model(repo.to_string()).get(file).map_err(|e| {
        error(format!("{e}; without network, put a local copy somewhere and pass it with --weights"))
    })
}

/// timm's ImageNet MobileNetV2 weights ([`TIMM_MOBILENETV2`]).
pub fn timm_imagenet_weights() -> Result<PathBuf> {
    hub_file(TIMM_MOBILENETV2, WEIGHTS_FILE)
}
