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

/// Writes a file whole or not at all: a temporary file beside it, flushed to disk, renamed over
/// it, and the rename itself flushed; an interrupted run or a crash never leaves a half-written
/// checkpoint or cache behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> crate::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}
