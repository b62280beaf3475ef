//! The notebooks' settings in quick mode: real photos and weights when they can be had, a stand-in
//! that says so when not, and the four notebooks' flow on that stand-in (a random base resumed into
//! fine-tuning, evaluated, exported and used for prediction).

mod common;

use food101::candle_core::Device;
use food101::data::synthetic::{self, Layout, Spec};
use food101::data::ClassSelection;
use food101::notebook::Settings;
use food101::predict::ImageClassifier;
use food101::train::{Phase, Trainer};

/// One test: it changes process-wide environment variables, as a learner's kernel would have them.
#[test]
fn quick_mode_uses_what_it_can_get_and_says_when_it_stands_in() {
    let cache = tempfile::tempdir().unwrap();
    std::env::set_var("FOOD101_QUICK", "1");
    std::env::set_var("FOOD101_CACHE", cache.path());
    std::env::set_var("HF_HOME", cache.path().join("hf"));
    for key in ["FOOD101_DATA", "FOOD101_WEIGHTS", "FOOD101_CLASSES", "FOOD101_FRACTION", "HF_ENDPOINT"] {
        std::env::remove_var(key);
    }

    // Offline, nothing on disk: synthetic photos and a random base, and the settings say both.
    std::env::set_var("HF_HUB_OFFLINE", "1");
    let settings = Settings::from_env().unwrap();
    assert!(!settings.is_real());
    assert!(settings.weights.is_none());
    let shown = settings.to_string();
    assert!(shown.contains("THIS RUN IS A STAND-IN"), "{shown}");
    assert!(shown.contains("synthetic") && shown.contains("randomly initialised"), "{shown}");

    // The notebooks' flow on it, with small settings: 02 trains phase 1 into the checkpoint,
    // 03 starts a new trainer (a new random base, as a new kernel would), resumes and fine-tunes,
    // evaluates and exports, 04 predicts with the export.
    let settings = Settings { epochs1: 1, epochs2: 1, ..settings };
    let config = || settings.train_config();
    let extract = Phase::feature_extraction(settings.epochs1);
    let fine_tune = Phase::fine_tune(settings.unfreeze_last, settings.epochs2, settings.lr2);
    let mut trainer = Trainer::new(settings.base().unwrap(), settings.dataset().unwrap(), config()).unwrap();
    trainer.prepare_caches(&[&extract, &fine_tune]).unwrap();
    trainer.fit(extract).unwrap();
    drop(trainer);
    let mut trainer = Trainer::new(settings.base().unwrap(), settings.dataset().unwrap(), config()).unwrap();
    assert_eq!(trainer.history().epochs_in("feature_extraction"), 1, "03 resumes 02's checkpoint");
    trainer.fit(fine_tune).unwrap();
    let evaluation = food101::recipe::finish(&mut trainer, &settings.work(), None, "unused").unwrap();
    assert_eq!(evaluation.predictions.len(), settings.dataset().unwrap().validation.len());
    let classifier = ImageClassifier::from_dir(&settings.model_dir(), &Device::Cpu).unwrap();
    let sample = &settings.dataset().unwrap().validation[0];
    assert_eq!(classifier.predict_file(&sample.path, 3).unwrap().len(), 3);
    let (map, (h, w)) = classifier.class_activation_map(&sample.path, 0).unwrap();
    assert_eq!(map.len(), h * w);

    // Experiments: every setting and the name pick the folder; finished ones are listed.
    let other = Settings { lr2: 1e-4, ..settings.clone() };
    assert_ne!(other.work(), settings.work(), "another learning rate, another folder");
    let named = settings.clone().experiment("Phase 2 at 1e-3");
    assert!(named.work().file_name().unwrap().to_string_lossy().starts_with("quick-phase-2-at-1e-3-"), "{}", named.work().display());
    let experiments = food101::notebook::experiments(true).unwrap();
    assert_eq!(experiments.len(), 1);
    assert_eq!((experiments[0].0.as_str(), experiments[0].1.epochs.len()), ("baseline", 2));

    // A tracker cell run twice continues one open run; once finished, the next run is new.
    let first = settings.tracker("03_fine_tuning.ipynb").unwrap();
    let again = settings.tracker("03_fine_tuning.ipynb").unwrap();
    assert_eq!(first.journal_dir(), again.journal_dir());
    again.finish(true).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let next = settings.tracker("03_fine_tuning.ipynb").unwrap();
    assert_ne!(next.journal_dir(), first.journal_dir());

    // A photo: a path stays a path, an address is downloaded once.
    assert_eq!(food101::notebook::photo("a/b.jpg").unwrap(), std::path::PathBuf::from("a/b.jpg"));
    let photo = std::fs::read(&sample.path).unwrap();
    let (url, server) = common::serve(photo.clone(), 1, None);
    let fetched = food101::notebook::photo(&format!("{url}/dinner.jpg")).unwrap();
    assert_eq!(std::fs::read(&fetched).unwrap(), photo);
    assert_eq!(food101::notebook::photo(&format!("{url}/dinner.jpg")).unwrap(), fetched, "downloaded once");
    assert_eq!(server.join().unwrap().len(), 1);

    // Connected: the ImageNet weights come from the hub (here a small one on 127.0.0.1).
    std::env::remove_var("HF_HUB_OFFLINE");
    let body = b"stand-in for the weights file".to_vec();
    let (url, server) = common::serve(body.clone(), 2, None);
    std::env::set_var("HF_ENDPOINT", &url);
    let settings = Settings::from_env().unwrap();
    let weights = settings.weights.clone().expect("downloaded weights, not a random base");
    assert_eq!(std::fs::read(&weights).unwrap(), body);
    assert_eq!(server.join().unwrap()[0].0, "/timm/mobilenetv2_100.ra_in1k/resolve/main/model.safetensors");
    assert_eq!(settings.stand_ins.len(), 1, "only the photos are stand-ins: {:?}", settings.stand_ins);

    // Food-101 in the cache: quick mode takes its first five classes.
    let spec = Spec { classes: 7, train_per_class: 2, validation_per_class: 1, ..Spec::default() };
    synthetic::generate(&cache.path().join("food-101"), Layout::Food101, &spec).unwrap();
    let settings = Settings::from_env().unwrap();
    assert!(settings.is_real(), "{settings}");
    assert_eq!(settings.data, cache.path().join("food-101"));
    assert_eq!(settings.classes, ClassSelection::First(5));
    assert_eq!(settings.dataset().unwrap().classes.len(), 5);
}
