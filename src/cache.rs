//! Where downloads, caches and checkpoints live: `data-cache/` at the top of the checkout.

use std::path::PathBuf;

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
