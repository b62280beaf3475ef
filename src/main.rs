//! `food101`: the command line of the crate.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use food101::candle_core::Device;
use food101::model::{hub, MobileNetV2, MobileNetV2Config};
use food101::predict::ImageClassifier;

#[derive(Parser)]
#[command(name = "food101", version, about = "Food-101 transfer learning on MobileNetV2 (candle)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Top-K classes of images with a classifier checkpoint.
    Predict {
        /// Safetensors weights with a classifier (Keras or timm names).
        #[arg(long)]
        weights: PathBuf,
        /// Labels file, one per line (default: labels.txt or imagenet_labels.txt beside the weights).
        #[arg(long)]
        labels: Option<PathBuf>,
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// Print one JSON array instead of text.
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        images: Vec<PathBuf>,
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
}

fn main() -> Result<()> {
    let device = Device::Cpu;
    match Cli::parse().command {
        Command::Predict { weights, labels, top, json, images } => {
            let classifier = ImageClassifier::from_weights(&weights, labels.as_deref(), &device)?;
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
        Command::FetchWeights => {
            let path = hub::timm_imagenet_weights().context("fetching the ImageNet weights")?;
            println!("{}", path.display());
        }
    }
    Ok(())
}
