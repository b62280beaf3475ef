//! Training: exact caching, exact resume, divergence, re-run safety, export, metrics, and the
//! recipe on the real cats-vs-dogs data with the real ImageNet weights.

mod common;

use std::path::Path;

use food101::candle_core::Device;
use food101::data::synthetic::Spec;
use food101::data::{ClassSelection, Dataset};
use food101::predict::ImageClassifier;
use food101::candle_nn::Module;
use food101::train::{cross_entropy, Adam, EpochDraws, Evaluation, History, Phase, TrainConfig, Trainer};
use food101::candle_nn::VarMap;
use food101::{ClassifierHead, Error, MobileNetV2};

use common::setup;

fn phase1() -> Phase {
    Phase::feature_extraction(2)
}

fn phase2(epochs: usize) -> Phase {
    Phase::fine_tune(40, epochs, 1e-4)
}

/// Histories equal in every number but wall time.
fn assert_same_history(a: &History, b: &History, tolerance: f64) {
    assert_eq!(a.epochs.len(), b.epochs.len());
    for (x, y) in a.epochs.iter().zip(&b.epochs) {
        assert_eq!((x.epoch, &x.phase), (y.epoch, &y.phase));
        let pairs = [(x.loss, y.loss), (x.accuracy, y.accuracy), (x.val_loss, y.val_loss), (x.val_accuracy, y.val_accuracy), (x.top5, y.top5)];
        for (p, q) in pairs {
            assert!((p - q).abs() <= tolerance, "epoch {}: {p} vs {q}\n{x}\n{y}", x.epoch);
        }
    }
}

#[test]
fn a_resumed_run_repeats_the_uninterrupted_one() {
    let s = setup(Spec::default());
    let mut whole = s.trainer(s.train_config("whole"));
    whole.fit(phase1()).unwrap();
    whole.fit(phase2(3)).unwrap();

    // Stop after the first fine-tuning epoch: a new process would see only the checkpoint.
    let mut first = s.trainer(s.train_config("split"));
    first.fit(phase1()).unwrap();
    first.fit(phase2(1)).unwrap();
    drop(first);
    let mut resumed = s.trainer(TrainConfig { resume: true, ..s.train_config("split") });
    assert_eq!(resumed.history().epochs.len(), 3, "the checkpoint holds epochs 1-3");
    resumed.fit(phase1()).unwrap(); // a re-run cell: phase 1 is complete and must not train again
    assert_eq!(resumed.history().epochs.len(), 3);
    resumed.fit(phase2(3)).unwrap();
    assert_eq!(resumed.history().epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_same_history(whole.history(), resumed.history(), 0.0);
}

#[test]
fn cached_activations_train_exactly_like_the_full_forward_pass() {
    let s = setup(Spec::default());
    let mut cached = s.trainer(s.train_config("cached"));
    cached.fit(phase1()).unwrap();
    cached.fit(phase2(2)).unwrap();
    let mut uncached = s.trainer(TrainConfig { cache: false, ..s.train_config("uncached") });
    uncached.fit(phase1()).unwrap();
    uncached.fit(phase2(2)).unwrap();
    assert_same_history(cached.history(), uncached.history(), 1e-4);
    let saved = cached.history().phases.iter().map(|p| p.cache_seconds).sum::<f64>();
    assert!(saved > 0.0, "building the caches took time and is reported");
    assert_eq!(uncached.history().phases.iter().map(|p| p.cache_seconds).sum::<f64>(), 0.0);
}

#[test]
fn random_flips_train_exactly_the_same_from_the_cache_as_from_the_images() {
    let s = setup(Spec::default());
    let (extract, fine_tune) = (phase1().with_random_flip(true), phase2(2).with_random_flip(true));
    let mut cached = s.trainer(s.train_config("cached"));
    cached.prepare_caches(&[&extract, &fine_tune]).unwrap();
    cached.fit(extract.clone()).unwrap();
    cached.fit(fine_tune.clone()).unwrap();
    let mut uncached = s.trainer(TrainConfig { cache: false, ..s.train_config("uncached") });
    uncached.fit(extract).unwrap();
    uncached.fit(fine_tune).unwrap();
    assert_same_history(cached.history(), uncached.history(), 1e-4);
    // Two plain caches and two of the mirrored training photos.
    assert_eq!(cache_folders(&s.dir.path().join("features")), 4);

    let mut plain = s.trainer(s.train_config("plain"));
    plain.fit(phase1()).unwrap();
    plain.fit(phase2(2)).unwrap();
    let (a, b) = (plain.history().epochs.last().unwrap(), cached.history().epochs.last().unwrap());
    assert!((a.loss - b.loss).abs() > 1e-6, "the flips changed what trained: {a} vs {b}");
}

#[test]
fn a_mirror_image_reverses_each_row_left_to_right() {
    use food101::candle_core::Tensor;
    let x = Tensor::arange(0f32, 12.0, &Device::Cpu).unwrap().reshape((1, 2, 2, 3)).unwrap();
    let m = food101::train::features::mirror(&x).unwrap();
    assert_eq!(m.flatten_all().unwrap().to_vec1::<f32>().unwrap(), [2., 1., 0., 5., 4., 3., 8., 7., 6., 11., 10., 9.]);
}

#[test]
fn label_smoothing_spreads_the_target_over_the_classes() {
    use food101::candle_core::Tensor;
    use food101::train::cross_entropy;
    let log_probs = Tensor::new(&[[0.7f32, 0.2, 0.1], [0.25, 0.5, 0.25]], &Device::Cpu).unwrap().log().unwrap();
    let labels = Tensor::new(&[0u32, 1], &Device::Cpu).unwrap();
    let loss = |s: f64| cross_entropy(&log_probs, &labels, s).unwrap().to_scalar::<f32>().unwrap() as f64;
    let plain = -(0.7f64.ln() + 0.5f64.ln()) / 2.0;
    assert!((loss(0.0) - plain).abs() < 1e-6);
    // Target (1 - s) one-hot + s / K everywhere.
    let s = 0.3;
    let target = |y: usize, k: usize| if k == y { 1.0 - s + s / 3.0 } else { s / 3.0 };
    let rows = [[0.7f64, 0.2, 0.1], [0.25, 0.5, 0.25]];
    let want = rows.iter().enumerate().map(|(y, p)| -(0..3).map(|k| target(y, k) * p[k].ln()).sum::<f64>()).sum::<f64>() / 2.0;
    assert!((loss(s) - want).abs() < 1e-6, "{} vs {want}", loss(s));
}

#[test]
fn prepared_caches_fill_both_phases_in_one_pass_and_train_the_same() {
    let s = setup(Spec::default());
    let features = s.dir.path().join("features");
    let (extract, fine_tune) = (phase1(), phase2(2));
    let mut prepared = s.trainer(s.train_config("prepared"));
    prepared.prepare_caches(&[&extract, &fine_tune]).unwrap();
    assert_eq!(cache_folders(&features), 2, "pooled features and the fine-tuning cut, from one pass");
    prepared.fit(extract.clone()).unwrap();
    prepared.fit(fine_tune.clone()).unwrap();
    assert_eq!(cache_folders(&features), 2);
    assert!(prepared.history().phases.iter().all(|p| p.cache_seconds == 0.0), "nothing was left to build");
    let mut uncached = s.trainer(TrainConfig { cache: false, ..s.train_config("uncached") });
    uncached.fit(extract).unwrap();
    uncached.fit(fine_tune).unwrap();
    assert_same_history(prepared.history(), uncached.history(), 1e-4);
}

fn cache_folders(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn the_cache_is_reused_for_the_same_inputs_and_rebuilt_when_the_weights_change() {
    let s = setup(Spec::default());
    let features = s.dir.path().join("features");
    s.trainer(s.train_config("a")).fit(Phase::feature_extraction(1)).unwrap();
    assert_eq!(cache_folders(&features), 1);
    s.trainer(s.train_config("b")).fit(Phase::feature_extraction(1)).unwrap();
    assert_eq!(cache_folders(&features), 1, "same weights, data and preprocessing: reused");
    let model = s.model();
    let (_, var) = model.trainable_variables().into_iter().find(|(n, _)| n == "Conv1/kernel").unwrap();
    var.set(&(var.as_tensor() * 1.5).unwrap()).unwrap();
    Trainer::new(model, s.dataset.clone(), s.train_config("c")).unwrap().fit(Phase::feature_extraction(1)).unwrap();
    assert_eq!(cache_folders(&features), 2, "other frozen weights: a new cache");
}

#[test]
fn a_diverging_run_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint() {
    let s = setup(Spec::default());
    let mut trainer = s.trainer(s.train_config("diverge"));
    trainer.fit(Phase::feature_extraction(1)).unwrap();
    let good = trainer.head().dense().weight().to_vec2::<f32>().unwrap();
    let err = trainer.fit(Phase::feature_extraction(3).named("too_fast").with_learning_rate(1e38)).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::Diverged { .. }), "{message}");
    assert!(message.contains("diverged") && message.contains("last good checkpoint (epoch 1)"), "{message}");
    assert_eq!(trainer.head().dense().weight().to_vec2::<f32>().unwrap(), good, "weights restored");
    assert_eq!(trainer.history().epochs.len(), 1);
}

#[test]
fn the_exported_model_predicts_what_the_trainer_evaluated() {
    let s = setup(Spec::default());
    let mut trainer = s.trainer(s.train_config("export"));
    trainer.fit(phase1()).unwrap();
    trainer.fit(phase2(1)).unwrap();
    let evaluation = trainer.evaluate().unwrap();
    let dir = trainer.export(s.dir.path().join("model")).unwrap();
    let classifier = ImageClassifier::from_dir(&dir, &Device::Cpu).unwrap();
    assert_eq!(classifier.labels, s.dataset.classes);
    assert_eq!(classifier.model.config().input_size, (48, 48));
    for record in evaluation.predictions.iter().take(4) {
        let top = classifier.predict_file(&record.path, 1).unwrap();
        assert_eq!(top[0].index, record.predicted, "{}", record.path.display());
        assert!((top[0].prob - record.prob).abs() < 1e-4, "{} vs {}", top[0].prob, record.prob);
    }
}

#[test]
fn the_activation_map_averages_to_the_class_logit() {
    // Class activation map: the Dense weights of a class at each position of the last feature
    // map. Averaged over the positions and plus the bias, it must give that class's logit.
    let s = setup(Spec::default());
    let mut trainer = s.trainer(s.train_config("cam"));
    trainer.fit(phase1()).unwrap();
    let dir = trainer.export(s.dir.path().join("model")).unwrap();
    let classifier = ImageClassifier::from_dir(&dir, &Device::Cpu).unwrap();
    let path = &s.dataset.validation[0].path;
    let input = classifier.preprocessor.file_tensor(path, &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let logits = classifier.model.logits(&input).unwrap().squeeze(0).unwrap().to_vec1::<f32>().unwrap();
    let bias = classifier.model.classifier().unwrap().bias().unwrap().to_vec1::<f32>().unwrap();
    for class in 0..classifier.labels.len() {
        let (map, (h, w)) = classifier.class_activation_map(path, class).unwrap();
        assert_eq!((h, w), (2, 2), "48 px in, a 2x2 map out");
        let mean = map.iter().sum::<f32>() / map.len() as f32;
        assert!((mean + bias[class] - logits[class]).abs() < 1e-4, "class {class}: {} vs {}", mean + bias[class], logits[class]);
    }
}

/// The head's kernel after one phase-1 epoch replayed by hand from `draws`: the batches in its
/// order, its dropout masks, the initial kernel of the seed, Adam's steps on the pooled features.
fn replay_epoch(s: &common::Setup, draws: &EpochDraws, seed: u64) -> Vec<Vec<f32>> {
    use food101::candle_core::Tensor;
    let model = s.model();
    let preprocessor = model.preprocessor();
    let images: Vec<Tensor> = s.dataset.train.iter().map(|x| preprocessor.file_tensor(&x.path, &Device::Cpu).unwrap()).collect();
    let features = model.features(&Tensor::stack(&images, 0).unwrap()).unwrap();
    let labels: Vec<u32> = s.dataset.train.iter().map(|x| x.label as u32).collect();
    let head = ClassifierHead::new(&VarMap::new(), &Device::Cpu, model.feature_dim(), s.dataset.classes.len(), 0.3, seed).unwrap();
    let phase = phase1();
    let mut adam = Adam::new(head.trainable_variables(), phase.optimizer).unwrap();
    for (chunk, keeps) in draws.order.chunks(8).zip(&draws.keeps) {
        let rows: Vec<u32> = chunk.iter().map(|&i| i as u32).collect();
        let index = Tensor::new(rows.as_slice(), &Device::Cpu).unwrap();
        let x = features.index_select(&index, 0).unwrap();
        let mask: Vec<f32> = keeps.iter().map(|&k| if k { 1.0 / 0.7 } else { 0.0 }).collect();
        let x = (x * Tensor::from_vec(mask, (chunk.len(), model.feature_dim()), &Device::Cpu).unwrap()).unwrap();
        let y = Tensor::new(rows.iter().map(|&i| labels[i as usize]).collect::<Vec<_>>().as_slice(), &Device::Cpu).unwrap();
        let log_probs = food101::candle_nn::ops::log_softmax(&head.dense().forward(&x).unwrap(), 1).unwrap();
        adam.step(&cross_entropy(&log_probs, &y, 0.0).unwrap().backward().unwrap()).unwrap();
    }
    head.dense().weight().to_vec2().unwrap()
}

#[test]
fn the_draws_written_down_are_the_ones_the_epoch_trains_with() {
    let s = setup(Spec::default());
    let config = s.train_config("draws");
    let seed = config.seed;
    let mut trainer = s.trainer(config);
    let initial: Vec<Vec<f32>> = trainer.head().dense().weight().to_vec2().unwrap();
    let (first, second) = (trainer.draws(1), trainer.draws(2));
    assert_eq!(first.keeps.len(), s.dataset.train.len().div_ceil(8), "a mask per batch");
    assert_ne!(first, second, "each epoch draws anew");
    trainer.fit(Phase::feature_extraction(1)).unwrap();
    let trained: Vec<Vec<f32>> = trainer.head().dense().weight().to_vec2().unwrap();
    let gap = |kernel: &[Vec<f32>]| kernel.iter().flatten().zip(trained.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    let same = gap(&replay_epoch(&s, &first, seed));
    let other_order = gap(&replay_epoch(&s, &EpochDraws { order: second.order.clone(), ..first.clone() }, seed));
    let other_masks = gap(&replay_epoch(&s, &EpochDraws { keeps: second.keeps.clone(), ..first.clone() }, seed));
    // The small random base's features are tiny and so are the kernel's steps, but the draws
    // shape every step: each shows at the scale of the epoch's whole movement.
    let moved = gap(&initial);
    assert!(moved > 0.0, "the epoch trained the kernel");
    assert!(same <= 0.01 * moved, "replaying epoch 1's draws by hand gives the trained kernel ({same}; the epoch moved it {moved})");
    assert!(other_order > 0.1 * moved && other_masks > 0.1 * moved, "another order ({other_order}) or other masks ({other_masks}) train another kernel (moved {moved})");
}

#[test]
fn a_head_built_by_hand_is_the_one_that_trains_and_must_fit() {
    let s = setup(Spec::default());
    let model = s.model();
    let classes = s.dataset.classes.len();
    let head = ClassifierHead::new(&VarMap::new(), &Device::Cpu, model.feature_dim(), classes, 0.3, 7).unwrap();
    let before = head.dense().weight().to_vec2::<f32>().unwrap();
    let mut trainer = Trainer::with_head(model.clone(), head.clone(), s.dataset.clone(), s.train_config("by-hand")).unwrap();
    trainer.fit(phase1()).unwrap();
    assert_ne!(head.dense().weight().to_vec2::<f32>().unwrap(), before, "the head given is the head trained");
    let wrong = ClassifierHead::new(&VarMap::new(), &Device::Cpu, model.feature_dim(), classes + 1, 0.3, 7).unwrap();
    match Trainer::with_head(model, wrong, s.dataset.clone(), s.train_config("wrong")) {
        Err(Error::Config(message)) => assert!(message.contains("does not fit"), "{message}"),
        other => panic!("expected a clear error, got {:?}", other.err()),
    }
}

#[test]
fn unreadable_images_are_skipped_and_counted_in_the_history() {
    let s = setup(Spec { broken: true, ..Spec::default() });
    let mut trainer = s.trainer(s.train_config("broken"));
    trainer.fit(Phase::feature_extraction(1)).unwrap();
    let record = trainer.history().last().unwrap();
    assert!(record.skipped > 0, "{record}");
    assert!(record.loss.is_finite());
}

#[test]
fn a_batch_of_zero_is_a_clear_error_not_a_panic() {
    let s = setup(Spec::default());
    let err = Trainer::new(s.model(), s.dataset.clone(), TrainConfig { batch_size: 0, ..s.train_config("zero") }).err().expect("an error");
    assert!(err.to_string().contains("batch_size must be at least 1"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_food101")).args(["train", "--batch", "0", "--no-mlflow"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--batch") && !stderr.contains("panicked"), "{stderr}");
}

#[test]
fn evaluation_reports_confusion_per_class_accuracy_and_worst_classes() {
    let classes = vec!["a".to_string(), "b".to_string(), "c".to_string()];
    let mut e = Evaluation::new(classes);
    let row = |p: [f32; 3]| p.map(f32::ln).to_vec();
    let log_probs = vec![row([0.7, 0.2, 0.1]), row([0.1, 0.8, 0.1]), row([0.6, 0.3, 0.1]), row([0.2, 0.2, 0.6])];
    e.update(&log_probs, &[0, 1, 1, 2], ["w", "x", "y, \"quoted\"", "z"].map(Into::into));
    assert_eq!(e.accuracy, 0.75);
    assert_eq!(e.confusion, vec![vec![1, 0, 0], vec![1, 1, 0], vec![0, 0, 1]]);
    assert_eq!(e.worst_classes(1), vec![("b".to_string(), 0.5)]);
    assert!((e.loss - -(0.7f64.ln() + 0.8f64.ln() + 0.3f64.ln() + 0.6f64.ln()) / 4.0).abs() < 1e-6);
    let dir = tempfile::tempdir().unwrap();
    e.save_confusion_csv(&dir.path().join("c.csv")).unwrap();
    e.save_predictions_csv(&dir.path().join("p.csv")).unwrap();
    let csv = std::fs::read_to_string(dir.path().join("c.csv")).unwrap();
    assert_eq!(csv.lines().nth(2), Some("b,1,1,0"));
    let csv = std::fs::read_to_string(dir.path().join("p.csv")).unwrap();
    assert_eq!(csv.lines().nth(3), Some(r#""y, ""quoted""",b,a,0.600000,false"#), "a comma or quote in a path is quoted");
}

/// The recipe on real photos with the real ImageNet weights, on a fifth of cats-vs-dogs (the
/// full run is in the README): the frozen ImageNet features separate cats from dogs at once.
#[test]
#[ignore = "needs ../shared (real ImageNet weights and photos)"]
fn the_recipe_learns_cats_and_dogs_from_imagenet_features() {
    let shared = common::shared();
    let dataset = Dataset::open(shared.join("datasets/cats_and_dogs_filtered")).unwrap().subset(&ClassSelection::All, 0.2, 42).unwrap();
    let model = MobileNetV2::load(shared.join("weights/mobilenet_v2_1.0_224_keras_imagenet.safetensors"), &Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = TrainConfig { cache_dir: Some(dir.path().to_path_buf()), verbose: false, ..TrainConfig::default() };
    let mut trainer = Trainer::new(model, dataset, config).unwrap();
    trainer.fit(Phase::feature_extraction(5)).unwrap();
    let phase1 = trainer.history().last().unwrap().val_accuracy;
    assert!(phase1 >= 0.93, "validation accuracy after phase 1: {phase1}");
    trainer.fit(Phase::fine_tune(50, 1, 1e-5)).unwrap();
    let phase2 = trainer.history().last().unwrap().val_accuracy;
    assert!(phase2 >= phase1 - 0.02, "phase 2 lost accuracy: {phase1} -> {phase2}");
}

#[test]
#[ignore = "needs ../shared (real ImageNet weights and photos)"]
fn food101_predict_gives_the_probabilities_the_evaluation_gave_on_real_photos() {
    // A real model trained on real food photos (both phases), exported by `food101 train`; then
    // `food101 predict --model` on every validation photo. One preprocessor on both roads: the
    // same class and the same probability as the evaluation's `predictions.csv`.
    let shared = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let food101 = env!("CARGO_BIN_EXE_food101");
    let data = shared.join("datasets/food101-5");
    let weights = shared.join("weights/mobilenet_v2_1.0_224_keras_imagenet.safetensors");
    let status = std::process::Command::new(food101)
        .args(["train", "--fraction", "0.1", "--image-size", "128", "--epochs1", "2", "--epochs2", "1", "--no-mlflow"])
        .arg("--data")
        .arg(&data)
        .arg("--weights")
        .arg(&weights)
        .arg("--out")
        .arg(&out)
        .env("FOOD101_CACHE", dir.path().join("cache"))
        .status()
        .unwrap();
    assert!(status.success(), "food101 train failed");
    let mut evaluated = Vec::new();
    for row in csv::Reader::from_path(out.join("predictions.csv")).unwrap().records() {
        let row = row.unwrap();
        evaluated.push((row[0].to_string(), row[2].to_string(), row[3].parse::<f32>().unwrap()));
    }
    assert!(evaluated.len() >= 50, "{} validation photos", evaluated.len());
    let output = std::process::Command::new(food101)
        .args(["predict", "--top", "1", "--json", "--model"])
        .arg(out.join("model"))
        .args(evaluated.iter().map(|(path, ..)| path))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let answers: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut largest = 0f32;
    for ((path, class, prob), answer) in evaluated.iter().zip(answers.as_array().unwrap()) {
        let top = &answer["top"][0];
        assert_eq!(top["label"].as_str().unwrap(), class, "{path}");
        let diff = (top["prob"].as_f64().unwrap() as f32 - prob).abs();
        largest = largest.max(diff);
    }
    println!("{} photos, probabilities differ by up to {largest}", evaluated.len());
    assert!(largest < 1e-5, "probabilities differ by up to {largest}");
}

#[test]
fn food101_train_runs_the_improved_recipe_with_one_knob_changed() {
    let s = setup(Spec::default());
    let (out, history) = (s.dir.path().join("run"), s.dir.path().join("history.json"));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_food101"))
        .args(["train", "--recipe", "improved", "--label-smoothing", "0.2", "--image-size", "48", "--epochs1", "2", "--epochs2", "2", "--batch", "8", "--no-mlflow"])
        .arg("--data")
        .arg(s.dir.path().join("data"))
        .arg("--weights")
        .arg(&s.weights)
        .arg("--out")
        .arg(&out)
        .arg("--history-json")
        .arg(&history)
        .env("FOOD101_CACHE", s.dir.path().join("cache"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    let recipe = text.lines().find(|l| l.starts_with("recipe:")).expect("the recipe is printed");
    for part in ["fine_tune 2 epochs, last 100 layers, Adam 1e-4", "Cosine", "label smoothing 0.2", "random flip"] {
        assert!(recipe.contains(part), "{part:?} missing from {recipe:?}");
    }
    assert!(text.contains("of the mirrored training photos"), "the mirrored photos are cached:\n{text}");
    // Warm-up then cosine within each phase: each ends at the full rate after its first epoch, and
    // below it after the second.
    let history = History::load(&history).unwrap();
    let rates: Vec<f64> = history.epochs.iter().map(|e| e.learning_rate).collect();
    assert_eq!(rates.len(), 4);
    assert!((rates[0] - 1e-3).abs() < 1e-12 && (rates[2] - 1e-4).abs() < 1e-12, "{rates:?}");
    assert!(rates[1] < rates[0] && rates[3] < rates[2], "{rates:?}");
}
