//! `food101 serve`: the web demo on a trained model or a classifier checkpoint.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use food101::candle_core::Device;

use super::predict::ClassifierArgs;

#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    classifier: ClassifierArgs,
    /// Listen address; only loopback unless told otherwise.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    #[arg(long, default_value_t = 7860)]
    port: u16,
    /// Largest upload in megabytes.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1024))]
    max_mb: u64,
    /// A folder of example photos offered on the page (its image files).
    #[arg(long)]
    examples: Option<PathBuf>,
}

/// The image files of `dir` (by extension), sorted.
fn example_photos(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("--examples {}", dir.display()))?;
    let is_image = |p: &Path| {
        p.extension().and_then(|e| e.to_str()).is_some_and(|e| ["jpg", "jpeg", "png", "webp", "gif", "bmp"].contains(&e.to_ascii_lowercase().as_str()))
    };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file() && is_image(p)).collect();
    files.sort();
    Ok(files)
}

pub fn run(args: ServeArgs, device: &Device) -> Result<()> {
    let examples = match &args.examples {
        Some(dir) => example_photos(dir)?,
        None => Vec::new(),
    };
    let classifier = args.classifier.load(device)?;
    let config = food101::serve::ServeConfig { max_bytes: (args.max_mb << 20) as usize, examples, ..Default::default() };
    let addr = std::net::SocketAddr::new(args.host, args.port);
    food101::serve::run(classifier, addr, config).with_context(|| format!("serving on {addr}"))?;
    Ok(())
}
