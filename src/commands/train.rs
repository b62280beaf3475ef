//! `food101 train`: the original project end to end. Data and weights are downloaded when not
//! given; both phases run with checkpoints; the model is evaluated and exported.

use std::path::PathBuf;

use anyhow::{Context, Result};
use food101::candle_core::Device;
use food101::data::{download, Augment, ClassSelection, Dataset, JpegDecoding};
use food101::model::{hub, MobileNetV2};
use food101::recipe::{self, Recipe};
use food101::track::Tracker;
use food101::train::{draws, Schedule, TrainConfig, Trainer};

#[derive(Clone, Copy, clap::ValueEnum)]
enum RecipeName {
    Original,
    Improved,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ScheduleName {
    Constant,
    /// One epoch of linear warm-up, then a cosine decay to 0.
    Cosine,
}

#[derive(Clone, Copy, Default, clap::ValueEnum)]
enum JpegName {
    /// libjpeg-turbo's raw planes, accurate IDCT, never rounded to bytes.
    #[default]
    RawPlanes,
    /// As TensorFlow's decode_image and the Keras recipe: fast IDCT, RGB bytes.
    Tensorflow,
}

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
    /// The recipe: `original` (the Keras project's) or `improved` (see `Recipe::improved`); the
    /// options below change one knob of it.
    #[arg(long, value_enum, default_value_t = RecipeName::Original)]
    recipe: RecipeName,
    /// Phase 1 (frozen base) epochs [recipe: 10].
    #[arg(long)]
    epochs1: Option<usize>,
    /// Phase 2 (fine-tuning) epochs [recipe: 10].
    #[arg(long)]
    epochs2: Option<usize>,
    /// Keras layers of the base that train in phase 2 [recipe: 50].
    #[arg(long)]
    unfreeze_last: Option<usize>,
    /// Phase 1 learning rate [recipe: 1e-3].
    #[arg(long)]
    lr1: Option<f64>,
    /// Phase 2 learning rate [original: 1e-5].
    #[arg(long)]
    lr2: Option<f64>,
    /// Label smoothing of the loss in both phases [original: 0].
    #[arg(long)]
    label_smoothing: Option<f32>,
    /// Learning-rate schedule in both phases [original: constant].
    #[arg(long, value_enum)]
    schedule: Option<ScheduleName>,
    /// Mirror training photos at random, cache kept, in both phases [original: false].
    #[arg(long)]
    random_flip: Option<bool>,
    #[arg(long, default_value_t = 32, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    batch: usize,
    /// Input size in pixels (square); smaller is faster, 224 is what the weights were trained at.
    #[arg(long, default_value_t = 224)]
    image_size: usize,
    /// How JPEGs become pixels; `tensorflow` gives the Keras recipe's pixels, to compare on the same input.
    #[arg(long, value_enum, default_value_t = JpegName::RawPlanes)]
    jpeg: JpegName,
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
    /// Also write the run's random draws into this folder (the head's initial kernel, each
    /// epoch's sample order and dropout masks), for `bench/keras_recipe.py --draws`.
    #[arg(long)]
    draws: Option<PathBuf>,
    /// Registered-model name in MLflow.
    #[arg(long, default_value = recipe::REGISTERED_MODEL)]
    register_as: String,
    /// Do not track the run with MLflow (by default it goes to MLFLOW_TRACKING_URI, or to a
    /// local journal that `food101 mlflow sync` uploads later).
    #[arg(long)]
    no_mlflow: bool,
}

/// The whole recipe and the identity of the data and weights, as MLflow params.
/// The chosen recipe with the knobs given on the command line.
fn recipe(args: &TrainArgs) -> Recipe {
    let mut recipe = match args.recipe {
        RecipeName::Original => Recipe::original(),
        RecipeName::Improved => Recipe::improved(),
    };
    let p1 = &mut recipe.feature_extraction;
    p1.epochs = args.epochs1.unwrap_or(p1.epochs);
    p1.optimizer.learning_rate = args.lr1.unwrap_or(p1.optimizer.learning_rate);
    if let Some(p2) = &mut recipe.fine_tune {
        p2.epochs = args.epochs2.unwrap_or(p2.epochs);
        p2.unfreeze_last = args.unfreeze_last.or(p2.unfreeze_last);
        p2.optimizer.learning_rate = args.lr2.unwrap_or(p2.optimizer.learning_rate);
    }
    if args.epochs2 == Some(0) {
        recipe.fine_tune = None;
    }
    for phase in [Some(&mut recipe.feature_extraction), recipe.fine_tune.as_mut()].into_iter().flatten() {
        phase.label_smoothing = args.label_smoothing.unwrap_or(phase.label_smoothing);
        phase.random_flip = args.random_flip.unwrap_or(phase.random_flip);
        phase.schedule = match args.schedule {
            None => phase.schedule,
            Some(ScheduleName::Constant) => Schedule::Constant,
            Some(ScheduleName::Cosine) => Schedule::Cosine { warmup_epochs: 1.0 },
        };
    }
    recipe
}

fn params(args: &TrainArgs, recipe: &Recipe, root: &std::path::Path, dataset: &Dataset, weights: &std::path::Path, model: &MobileNetV2) -> Vec<(String, String)> {
    let p1 = &recipe.feature_extraction;
    let p2 = recipe.fine_tune.as_ref();
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
        ("recipe", recipe.name.clone()),
        ("epochs1", p1.epochs.to_string()),
        ("epochs2", p2.map_or(0, |p| p.epochs).to_string()),
        ("lr1", p1.optimizer.learning_rate.to_string()),
        ("lr2", p2.map_or("none".into(), |p| p.optimizer.learning_rate.to_string())),
        ("unfreeze_last", p2.and_then(|p| p.unfreeze_last).map_or("none".into(), |n| n.to_string())),
        ("schedule", format!("{:?}", p1.schedule)),
        ("label_smoothing", p1.label_smoothing.to_string()),
        ("random_flip", p1.random_flip.to_string()),
        ("dropout", food101::ClassifierHead::DEFAULT_DROPOUT.to_string()),
        ("jpeg", format!("{:?}", jpeg(args))),
        ("augment", args.augment.to_string()),
        ("cache", (!args.no_cache).to_string()),
        ("seed", args.seed.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn jpeg(args: &TrainArgs) -> JpegDecoding {
    match args.jpeg {
        JpegName::RawPlanes => JpegDecoding::RawPlanes,
        JpegName::Tensorflow => JpegDecoding::TensorFlow,
    }
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
        jpeg: jpeg(&args),
        cache: !args.no_cache,
        checkpoint_dir: Some(out.join("checkpoint")),
        resume: args.resume,
        ..TrainConfig::default()
    };
    let recipe = recipe(&args);
    println!("recipe: {}", recipe.describe());
    let tracker = if args.no_mlflow {
        None
    } else {
        let note = format!("Transfer learning on MobileNetV2, the {} recipe: {}.", recipe.name, recipe.describe());
        Some(Tracker::start("food101-train", params(&args, &recipe, &root, &dataset, &weights, &model), &note, None)?)
    };
    let result = train(&args, &recipe, model, dataset, config, &out, tracker.clone());
    if let Some(tracker) = &tracker {
        let delivered = tracker.finish(result.is_ok())?;
        match tracker.run_url() {
            Some(url) if delivered => println!("MLflow run: {url}"),
            _ => println!("MLflow: events kept in {} (food101 mlflow sync)", tracker.journal_dir().display()),
        }
    }
    result
}

fn train(args: &TrainArgs, recipe: &Recipe, model: MobileNetV2, dataset: Dataset, config: TrainConfig, out: &std::path::Path, tracker: Option<Tracker>) -> Result<()> {
    let mut trainer = Trainer::new(model, dataset, config)?;
    if let Some(dir) = &args.draws {
        if args.augment || recipe.phases().iter().any(|p| p.random_flip) {
            anyhow::bail!("--draws: random flips and augmentation draw more than the file holds; run without them");
        }
        let epochs = recipe.phases().iter().map(|p| p.epochs).sum();
        draws::save(&trainer, epochs, dir)?;
        println!("draws: {epochs} epochs -> {}", dir.display());
    }
    if let Some(tracker) = &tracker {
        trainer.add_callback(tracker.clone());
    }
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
