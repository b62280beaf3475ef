//! `food101`: the command line of the crate.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use food101::candle_core::Device;
use food101::data::Dataset;
use food101::model::{hub, MobileNetV2, MobileNetV2Config};
use food101::predict::ImageClassifier;
use food101::track::{Journal, MlflowClient};

mod commands;
use commands::train::{self, TrainArgs};

#[derive(Parser)]
#[command(name = "food101", version, about = "Food-101 transfer learning on MobileNetV2 (candle)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Top-K classes of images with a trained model folder or a classifier checkpoint.
    Predict {
        #[command(flatten)]
        classifier: ClassifierArgs,
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// Print one JSON array instead of text.
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// The main job: both training phases, evaluation and export (downloads Food-101 and the
    /// ImageNet weights when no --data / --weights are given).
    Train(Box<TrainArgs>),
    /// The web demo: a page to upload a photo and see the top-5, and a JSON API.
    Serve {
        #[command(flatten)]
        classifier: ClassifierArgs,
        /// Listen address; only loopback unless told otherwise.
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        #[arg(long, default_value_t = 7860)]
        port: u16,
        /// Largest upload in megabytes.
        #[arg(long, default_value_t = 10)]
        max_mb: usize,
        /// A folder of example photos offered on the page.
        #[arg(long)]
        examples: Option<PathBuf>,
    },
    /// MLflow: deliver locally recorded runs to a server.
    Mlflow {
        #[command(subcommand)]
        command: MlflowCommand,
    },
    /// The Keras layer table of the MobileNetV2 base.
    Summary {
        /// Weights to describe (default: a width-1.0, 224 px model without weights).
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Make the last N layers trainable, as in phase 2 (default: all frozen when N is given).
        #[arg(long)]
        unfreeze_last: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// Download timm's ImageNet MobileNetV2 weights into the Hugging Face cache.
    FetchWeights,
    /// Datasets: check one, or download Food-101.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
}

/// Which classifier to load: a trained model folder, or a checkpoint with a classifier.
#[derive(clap::Args)]
struct ClassifierArgs {
    /// A folder written by `food101 train` (model.safetensors, labels.txt, config.json).
    #[arg(long, conflicts_with = "weights", required_unless_present = "weights")]
    model: Option<PathBuf>,
    /// Safetensors weights with a classifier (Keras or timm names), e.g. the ImageNet ones.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Labels file, one per line (default: labels.txt or imagenet_labels.txt beside the weights).
    #[arg(long)]
    labels: Option<PathBuf>,
}

impl ClassifierArgs {
    fn load(&self, device: &Device) -> Result<ImageClassifier> {
        Ok(match (&self.model, &self.weights) {
            (Some(dir), _) => ImageClassifier::from_dir(dir, device)?,
            (None, Some(weights)) => ImageClassifier::from_weights(weights, self.labels.as_deref(), device)?,
            (None, None) => anyhow::bail!("give --model DIR or --weights FILE"),
        })
    }
}

#[derive(Subcommand)]
enum MlflowCommand {
    /// Send the events of runs recorded while no server was reachable (each exactly once).
    Sync {
        /// Tracking server (default: MLFLOW_TRACKING_URI).
        #[arg(long)]
        uri: Option<String>,
        /// Journal folders (default: every one in data-cache/mlflow-journal).
        journals: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DataCommand {
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

fn main() -> Result<()> {
    let device = Device::Cpu;
    match Cli::parse().command {
        Command::Train(args) => {
            // A training run reuses its freed activations step after step (see the function).
            food101::memory::keep_freed_memory();
            train::run(*args, &device)?
        }
        Command::Mlflow { command: MlflowCommand::Sync { uri, journals } } => sync_journals(uri, journals)?,
        Command::Serve { classifier, host, port, max_mb, examples } => {
            let classifier = classifier.load(&device)?;
            let examples = match examples {
                Some(dir) => {
                    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
                    files.sort();
                    files
                }
                None => Vec::new(),
            };
            let config = food101::serve::ServeConfig { max_bytes: max_mb << 20, examples, ..Default::default() };
            food101::serve::run(classifier, std::net::SocketAddr::new(host, port), config)?;
        }
        Command::Predict { classifier, top, json, images } => {
            let classifier = classifier.load(&device)?;
            let mut out = Vec::new();
            for image in &images {
                let top = classifier.predict_file(image, top)?;
                if json {
                    out.push(serde_json::json!({ "image": image, "top": top }));
                } else {
                    println!("{}", image.display());
                    for p in top {
                        println!("  {:>6.2}%  {:>4}  {}", 100.0 * p.prob, p.index, p.label);
                    }
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&out)?);
            }
        }
        Command::Summary { weights, unfreeze_last, json } => {
            let mut model = match &weights {
                Some(path) => MobileNetV2::load(path, &device)?,
                None => MobileNetV2::new(MobileNetV2Config::default(), &device)?,
            };
            if let Some(n) = unfreeze_last {
                model.unfreeze_last(n);
            }
            let summary = model.summary();
            if json {
                println!("{}", serde_json::to_string_pretty(&summary.to_json())?);
            } else {
                print!("{summary}");
            }
        }
        Command::Data { command: DataCommand::Check { data, json } } => {
            let dataset = Dataset::open(&data)?;
            let skipped = dataset.unreadable();
            if json {
                let report = serde_json::json!({
                    "classes": dataset.classes.len(),
                    "train": dataset.train.len(),
                    "validation": dataset.validation.len(),
                    "skipped": skipped,
                });
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
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
            }
        }
        Command::Data { command: DataCommand::Download { dir } } => {
            let dir = dir.unwrap_or_else(food101::cache::cache_dir);
            let root = food101::data::download::food101(&dir)?;
            let dataset = Dataset::open(&root)?;
            println!("{}: {} classes, {} train, {} validation images", root.display(), dataset.classes.len(), dataset.train.len(), dataset.validation.len());
        }
        Command::FetchWeights => {
            let path = hub::timm_imagenet_weights().context("fetching the ImageNet weights")?;
            println!("{}", path.display());
        }
    }
    Ok(())
}

fn sync_journals(uri: Option<String>, journals: Vec<PathBuf>) -> Result<()> {
    let client = match uri {
        Some(uri) => MlflowClient::new(&uri),
        None => MlflowClient::from_env().context("no server: pass --uri or set MLFLOW_TRACKING_URI to an http(s) address")?,
    };
    let journals = if journals.is_empty() {
        let root = food101::track::journal_root();
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect()).unwrap_or_default();
        dirs.sort();
        dirs
    } else {
        journals
    };
    let mut failed = 0;
    for dir in &journals {
        let journal = Journal::open(dir)?;
        match food101::track::sync(&journal, &client) {
            Ok(r) => println!("{}: {} events delivered, {} rejected, all {} on the server", dir.display(), r.delivered, r.rejected, journal.events().len()),
            Err((r, e)) => {
                failed += 1;
                println!("{}: {} delivered, {} still waiting: {e}", dir.display(), r.delivered, r.pending);
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} journals could not be delivered completely; run the sync again later", journals.len());
    }
    Ok(())
}

