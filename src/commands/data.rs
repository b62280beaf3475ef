//! `food101 data`: check a dataset, or download Food-101.

use std::path::PathBuf;

use anyhow::Result;
use food101::data::Dataset;

#[derive(clap::Subcommand)]
pub enum DataCommand {
    /// Scan a dataset (Food-101 layout or class folders): classes, counts and unreadable files.
    Check {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Download the official Food-101 archive (resumable, MD5-checked) and extract it.
    Download {
        /// Where `food-101/` goes (default: data-cache/).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

pub fn run(command: DataCommand) -> Result<()> {
    match command {
        DataCommand::Check { data, json } => check(&data, json),
        DataCommand::Download { dir } => {
            let dir = dir.unwrap_or_else(food101::cache::cache_dir);
            let root = food101::data::download::food101(&dir)?;
            let dataset = Dataset::open(&root)?;
            println!("{}: {} classes, {} train, {} validation images", root.display(), dataset.classes.len(), dataset.train.len(), dataset.validation.len());
            Ok(())
        }
    }
}

fn check(data: &std::path::Path, json: bool) -> Result<()> {
    let dataset = Dataset::open(data)?;
    let skipped = dataset.unreadable();
    if json {
        let report = serde_json::json!({
            "classes": dataset.classes.len(),
            "train": dataset.train.len(),
            "validation": dataset.validation.len(),
            "skipped": skipped,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("{}: {} classes, {} train, {} validation images", data.display(), dataset.classes.len(), dataset.train.len(), dataset.validation.len());
    let train = Dataset::class_counts(&dataset.train, dataset.classes.len());
    let validation = Dataset::class_counts(&dataset.validation, dataset.classes.len());
    for (i, class) in dataset.classes.iter().enumerate().take(20) {
        println!("  {i:>3} {class:<28} {:>6} train {:>6} validation", train[i], validation[i]);
    }
    if dataset.classes.len() > 20 {
        println!("  ... {} more classes", dataset.classes.len() - 20);
    }
    println!("unreadable: {}", skipped.len());
    for s in &skipped {
        println!("  {} ({})", s.path.display(), s.reason);
    }
    Ok(())
}
