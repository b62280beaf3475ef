//! `food101 train`: the original project end to end. Data and weights are downloaded when not
//! given; both phases run with checkpoints; the model is evaluated and exported.

use std::path::PathBuf;

use anyhow::{Context, Result};
use food101::candle_core::Device;
use food101::data::{download, Augment, ClassSelection, Dataset};
use food101::model::{hub, MobileNetV2};
use food101::recipe::{self, Recipe};
use food101::track::Tracker;
use food101::train::{Phase, TrainConfig, Trainer};

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Dataset folder, Food-101 layout or class folders (default: download Food-101 into data-cache/).
    #[arg(long)]
    data: Option<PathBuf>,
    /// ImageNet MobileNetV2 weights, Keras or timm safetensors (default: timm's, from the Hugging Face Hub).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Classes to keep: a number (the first N), comma-separated names, or `all`.
    #[arg(long, default_value = "all")]
    classes: ClassSelection,
    /// Fraction of each class's images to use, in both splits.
    #[arg(long, default_value_t = 1.0)]
    fraction: f64,
    /// Phase 1 (frozen base) epochs.
    #[arg(long, default_value_t = 10)]
    epochs1: usize,
    /// Phase 2 (fine-tuning) epochs.
    #[arg(long, default_value_t = 10)]
    epochs2: usize,
    /// Keras layers of the base that train in phase 2.
    #[arg(long, default_value_t = 50)]
    unfreeze_last: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr1: f64,
    #[arg(long, default_value_t = 1e-5)]
    lr2: f64,
    #[arg(long, default_value_t = 32, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    batch: usize,
    /// Input size in pixels (square); smaller is faster, 224 is what the weights were trained at.
    #[arg(long, default_value_t = 224)]
    image_size: usize,
    /// Random flips, zoom and rotation (turns the activation cache off).
    #[arg(long)]
    augment: bool,
    /// Run every epoch through the frozen layers instead of caching their output.
    #[arg(long)]
    no_cache: bool,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Where the checkpoint, the exported model and the reports go (default: data-cache/train).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue from the checkpoint in --out.
    #[arg(long)]
    resume: bool,
    /// Also write the history (with the final evaluation) here.
    #[arg(long)]
    history_json: Option<PathBuf>,
    /// Registered-model name in MLflow.
    #[arg(long, default_value = recipe::REGISTERED_MODEL)]
    register_as: String,
    /// Do not track the run with MLflow (by default it goes to MLFLOW_TRACKING_URI, or to a
    /// local journal that `food101 mlflow sync` uploads later).
    #[arg(long)]
    no_mlflow: bool,
}

/// The whole recipe and the identity of the data and weights, as MLflow params.
fn params(args: &TrainArgs, root: &std::path::Path, dataset: &Dataset, weights: &std::path::Path, model: &MobileNetV2) -> Vec<(String, String)> {
    let md5 = download::md5_file(weights).unwrap_or_else(|e| format!("unreadable: {e}"));
    [
        ("data", root.display().to_string()),
        ("classes", dataset.classes.len().to_string()),
        ("class_selection", format!("{:?}", args.classes)),
        ("fraction", args.fraction.to_string()),
        ("train_images", dataset.train.len().to_string()),
        ("validation_images", dataset.validation.len().to_string()),
        ("weights", weights.display().to_string()),
        ("weights_md5", md5),
        ("model", model.name()),
        ("image_size", args.image_size.to_string()),
        ("batch_size", args.batch.to_string()),
        ("epochs1", args.epochs1.to_string()),
        ("epochs2", args.epochs2.to_string()),
        ("lr1", args.lr1.to_string()),
        ("lr2", args.lr2.to_string()),
        ("unfreeze_last", args.unfreeze_last.to_string()),
        ("dropout", food101::ClassifierHead::DEFAULT_DROPOUT.to_string()),
        ("augment", args.augment.to_string()),
        ("cache", (!args.no_cache).to_string()),
        ("seed", args.seed.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

pub fn run(args: TrainArgs, device: &Device) -> Result<()> {
    let root = match &args.data {
        Some(dir) => dir.clone(),
        None => download::food101(&food101::cache::cache_dir()).context("getting Food-101 (or pass --data DIR)")?,
    };
    let dataset = Dataset::open(&root)?.subset(&args.classes, args.fraction, args.seed)?;
    println!(
        "data: {} ({} classes, {} train, {} validation images)",
        root.display(),
        dataset.classes.len(),
        dataset.train.len(),
        dataset.validation.len()
    );
    let weights = match &args.weights {
        Some(path) => path.clone(),
        None => hub::timm_imagenet_weights().context("getting the ImageNet weights (or pass --weights FILE)")?,
    };
    let model = MobileNetV2::load_with_input_size(&weights, (args.image_size, args.image_size), device)?;
    println!("weights: {} ({})", weights.display(), model.name());

    let out = args.out.clone().unwrap_or_else(|| food101::cache::cache_dir().join("train"));
    let config = TrainConfig {
        batch_size: args.batch,
        seed: args.seed,
        augment: args.augment.then(Augment::default),
        cache: !args.no_cache,
        checkpoint_dir: Some(out.join("checkpoint")),
        resume: args.resume,
        ..TrainConfig::default()
    };
    let tracker = if args.no_mlflow {
        None
    } else {
        let note = format!(
            "Transfer learning on MobileNetV2: {} epochs with the base frozen, then {} with the last {} layers unfrozen (lr {}).",
            args.epochs1, args.epochs2, args.unfreeze_last, args.lr2
        );
        Some(Tracker::start("food101-train", params(&args, &root, &dataset, &weights, &model), &note, None)?)
    };
    let result = train(&args, model, dataset, config, &out, tracker.clone());
    if let Some(tracker) = &tracker {
        let delivered = tracker.finish(result.is_ok())?;
        match tracker.run_url() {
            Some(url) if delivered => println!("MLflow run: {url}"),
            _ => println!("MLflow: events kept in {} (food101 mlflow sync)", tracker.journal_dir().display()),
        }
    }
    result
}

fn train(args: &TrainArgs, model: MobileNetV2, dataset: Dataset, config: TrainConfig, out: &std::path::Path, tracker: Option<Tracker>) -> Result<()> {
    let mut trainer = Trainer::new(model, dataset, config)?;
    if let Some(tracker) = &tracker {
        trainer.add_callback(tracker.clone());
    }
    let recipe = Recipe {
        feature_extraction: Phase::feature_extraction(args.epochs1).with_learning_rate(args.lr1),
        fine_tune: (args.epochs2 > 0).then(|| Phase::fine_tune(args.unfreeze_last, args.epochs2, args.lr2)),
    };
    recipe.fit(&mut trainer)?;
    let evaluation = recipe::finish(&mut trainer, out, tracker.as_ref(), &args.register_as)?;
    println!("validation: accuracy {:.4}, top-5 {:.4}, loss {:.4}", evaluation.accuracy, evaluation.top5, evaluation.loss);
    for (class, accuracy) in evaluation.worst_classes(5) {
        println!("  worst: {class:<28} {accuracy:.3}");
    }
    if let Some(path) = &args.history_json {
        trainer.history().save(path)?;
    }
    let model_dir = out.join("model");
    println!("model: {} (food101 predict --model {} IMAGE)", model_dir.display(), model_dir.display());
    Ok(())
}
