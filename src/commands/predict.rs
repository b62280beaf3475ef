//! `food101 predict`: the top classes of image files, read exactly as training and evaluation read
//! them (the model's own preprocessor).

use std::path::PathBuf;

use anyhow::Result;
use food101::candle_core::Device;
use food101::predict::ImageClassifier;

/// Which classifier to load: a trained model folder, or a checkpoint with a classifier.
#[derive(clap::Args)]
pub struct ClassifierArgs {
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
    pub fn load(&self, device: &Device) -> Result<ImageClassifier> {
        Ok(match (&self.model, &self.weights) {
            (Some(dir), _) => ImageClassifier::from_dir(dir, device)?,
            (None, Some(weights)) => ImageClassifier::from_weights(weights, self.labels.as_deref(), device)?,
            (None, None) => anyhow::bail!("give --model DIR or --weights FILE"),
        })
    }
}

#[derive(clap::Args)]
pub struct PredictArgs {
    #[command(flatten)]
    classifier: ClassifierArgs,
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Print one JSON array instead of text.
    #[arg(long)]
    json: bool,
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

pub fn run(args: PredictArgs, device: &Device) -> Result<()> {
    let classifier = args.classifier.load(device)?;
    let mut out = Vec::new();
    for image in &args.images {
        let top = classifier.predict_file(image, args.top)?;
        if args.json {
            out.push(serde_json::json!({ "image": image, "top": top }));
        } else {
            println!("{}", image.display());
            for p in top {
                println!("  {:>6.2}%  {:>4}  {}", 100.0 * p.prob, p.index, p.label);
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}
