//! Where downloads, caches and checkpoints live: `data-cache/` at the top of the checkout.

use std::path::{Path, PathBuf};

/// `$FOOD101_CACHE`, else the nearest `data-cache/` in the working directory or one of its
/// parents (notebooks run in `notebooks/`), else `./data-cache`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FOOD101_CACHE") {
        return PathBuf::from(dir);
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    cwd.ancestors()
        .map(|d| d.join("data-cache"))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| cwd.join("data-cache"))
}

/// Writes a file whole or not at all (a temporary beside it, then a rename), so an interrupted
/// run never leaves a half-written checkpoint or cache behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> crate::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("{}.tmp", path.extension().and_then(|e| e.to_str()).unwrap_or("")));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
