//! Datasets and the input pipeline on synthetic data in both layouts (with broken files of every
//! kind), and on the real cats-vs-dogs photos in ../shared when present.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use food101::candle_core::Device;
use food101::data::synthetic::{self, Layout, Spec};
use food101::data::{Augment, ClassSelection, DataLoader, Dataset, JpegDecoding, Normalization, PipelineConfig, Preprocessor, Resize};

fn broken_spec() -> Spec {
    Spec { classes: 3, train_per_class: 6, validation_per_class: 2, broken: true, ..Spec::default() }
}

/// Keras' preprocessing at `size`.
fn keras(size: (usize, usize)) -> Preprocessor {
    Preprocessor::new(size, Normalization::MinusOneToOne)
}

fn config(batch_size: usize, shuffle: bool) -> PipelineConfig {
    PipelineConfig { preprocessor: keras((32, 40)), batch_size, shuffle, seed: 7, ..PipelineConfig::default() }
}

#[test]
fn both_layouts_read_the_same_classes_and_counts() {
    for layout in [Layout::Food101, Layout::ClassFolders] {
        let dir = tempfile::tempdir().unwrap();
        let generated = synthetic::generate(dir.path(), layout, &broken_spec()).unwrap();
        let ds = Dataset::open(dir.path()).unwrap();
        assert_eq!(ds.classes, ["apple_pie", "bibimbap", "churros"], "{layout:?}");
        let extra = if layout == Layout::Food101 { 7 } else { 6 }; // + the listed-but-missing entry
        assert_eq!(ds.train.len(), 18 + extra, "{layout:?}");
        assert_eq!(ds.validation.len(), 6);
        assert_eq!(Dataset::class_counts(&ds.validation, 3), [2, 2, 2]);
        let unreadable: BTreeSet<_> = ds.unreadable().into_iter().map(|s| s.path).collect();
        let expected: BTreeSet<_> = generated.unreadable.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(unreadable, expected, "{layout:?}");
    }
}

#[test]
fn an_epoch_skips_and_counts_bad_files_and_decodes_odd_ones() {
    let dir = tempfile::tempdir().unwrap();
    let generated = synthetic::generate(dir.path(), Layout::Food101, &broken_spec()).unwrap();
    let ds = Dataset::open(dir.path()).unwrap();
    let loader = DataLoader::new(ds.train.clone(), config(5, true), &Device::Cpu);
    let mut epoch = loader.epoch(0);
    let mut seen = Vec::new();
    for batch in &mut epoch {
        let batch = batch.unwrap();
        let n = batch.indices.len();
        assert_eq!(batch.images.dims(), &[n, 3, 32, 40]);
        assert_eq!(batch.labels.dims(), &[n]);
        let values = batch.images.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(values.iter().all(|v| (-1.0..=1.0).contains(v)), "Keras preprocessing keeps [-1, 1]");
        seen.extend(batch.indices);
    }
    let stats = epoch.stats();
    assert_eq!(stats.total, ds.train.len());
    assert_eq!(stats.skipped.len(), generated.unreadable.len());
    assert_eq!(seen.len() + stats.skipped.len(), ds.train.len(), "every sample is either batched or skipped");
    let text = stats.to_string();
    assert!(text.starts_with(&format!("skipped 5 of {} images: ", ds.train.len())), "{text}");
    for odd in &generated.odd_but_readable {
        let index = ds.train.iter().position(|s| &s.path == odd).unwrap();
        assert!(seen.contains(&index), "{} should decode", odd.display());
    }
}

#[test]
fn same_seed_same_batches_and_epochs_reshuffle() {
    let dir = tempfile::tempdir().unwrap();
    synthetic::generate(dir.path(), Layout::ClassFolders, &Spec::default()).unwrap();
    let ds = Dataset::open(dir.path()).unwrap();
    let mut cfg = config(8, true);
    cfg.augment = Some(Augment::default());
    let run = |epoch: u64| -> Vec<(Vec<usize>, Vec<f32>)> {
        let loader = DataLoader::new(ds.train.clone(), cfg.clone(), &Device::Cpu);
        loader
            .epoch(epoch)
            .map(|b| {
                let b = b.unwrap();
                (b.indices, b.images.flatten_all().unwrap().to_vec1::<f32>().unwrap())
            })
            .collect()
    };
    let (a, b, c) = (run(0), run(0), run(1));
    assert_eq!(a, b, "same seed and epoch, same batches (augmentation included)");
    assert_ne!(a.iter().map(|x| &x.0).collect::<Vec<_>>(), c.iter().map(|x| &x.0).collect::<Vec<_>>());
    let no_shuffle = DataLoader::new(ds.validation.clone(), config(4, false), &Device::Cpu);
    assert_eq!(no_shuffle.order(3), (0..ds.validation.len()).collect::<Vec<_>>());
}

#[test]
fn subsets_are_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Spec { classes: 4, train_per_class: 10, validation_per_class: 4, ..Spec::default() };
    synthetic::generate(dir.path(), Layout::Food101, &spec).unwrap();
    let ds = Dataset::open(dir.path()).unwrap();
    let sub = ds.subset(&ClassSelection::First(2), 0.5, 1).unwrap();
    assert_eq!(sub.classes, ["apple_pie", "bibimbap"]);
    assert_eq!(Dataset::class_counts(&sub.train, 2), [5, 5]);
    assert_eq!(Dataset::class_counts(&sub.validation, 2), [2, 2]);
    assert_eq!(sub.train, ds.subset(&ClassSelection::First(2), 0.5, 1).unwrap().train);
    assert_ne!(sub.train, ds.subset(&ClassSelection::First(2), 0.5, 2).unwrap().train);
    let named = ds.subset(&"donuts,bibimbap".parse().unwrap(), 1.0, 0).unwrap();
    assert_eq!(named.classes, ["donuts", "bibimbap"]);
    assert!(named.train.iter().all(|s| s.label < 2) && named.train.len() == 20);
    let err = ds.subset(&ClassSelection::Names(vec!["pizza".into()]), 1.0, 0).unwrap_err().to_string();
    assert!(err.contains("no class `pizza`"), "{err}");
}

#[test]
fn a_class_missing_from_classes_txt_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    synthetic::generate(dir.path(), Layout::Food101, &Spec::default()).unwrap();
    let test = dir.path().join("meta/test.txt");
    std::fs::write(&test, std::fs::read_to_string(&test).unwrap() + "pizza/123\n").unwrap();
    let err = Dataset::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("test.txt") && err.contains("`pizza/123` names class `pizza`"), "{err}");
}

#[test]
fn cmyk_jpegs_decode_to_rgb() {
    let img = food101::data::load_rgb(&common::fixture("cmyk.jpg")).unwrap();
    assert_eq!(img.dimensions(), (8, 6));
    let px = img.get_pixel(0, 0).0;
    assert!(px[0] > 150 && px[2] < 100, "the fixture is orange-red, got {px:?}");
}

#[test]
fn data_check_cli_reports_json() {
    let dir = tempfile::tempdir().unwrap();
    let generated = synthetic::generate(dir.path(), Layout::ClassFolders, &broken_spec()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_food101")).args(["data", "check", "--json", "--data"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["classes"], 3);
    assert_eq!(json["train"], 24);
    assert_eq!(json["validation"], 6);
    let skipped = json["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), generated.unreadable.len());
    assert!(skipped.iter().any(|s| s["reason"] == "empty file"));
}

#[test]
#[ignore = "needs ../shared (real ImageNet weights and photos)"]
fn cats_and_dogs_from_shared() {
    let shared = common::shared();
    let ds = Dataset::open(shared.join("datasets/cats_and_dogs_filtered")).unwrap();
    assert_eq!(ds.classes, ["cats", "dogs"]);
    assert_eq!((ds.train.len(), ds.validation.len()), (2000, 1000));
    let cfg = PipelineConfig { preprocessor: Preprocessor::new((160, 160), Normalization::imagenet()), batch_size: 16, ..PipelineConfig::default() };
    let loader = DataLoader::new(ds.validation[..40].to_vec(), cfg, &Device::Cpu);
    let mut epoch = loader.epoch(0);
    let sizes: Vec<usize> = (&mut epoch).map(|b| b.unwrap().indices.len()).collect();
    assert_eq!(sizes, [16, 16, 8]);
    assert!(epoch.stats().skipped.is_empty());
}

/// Mean and largest difference, in byte levels, between the pipeline's input for `path` (the
/// raw-plane JPEG road) and the general one (decode to RGB, resize, normalise).
fn raw_road_against_general(path: &std::path::Path, size: (usize, usize), resize: Resize) -> (f32, f32) {
    let cfg = PipelineConfig { preprocessor: keras(size).with_resize(resize), ..PipelineConfig::default() };
    let fast = food101::data::load_sample(path, &cfg, None).unwrap();
    let general = cfg.preprocessor.normalization.normalize(resize.apply(&food101::data::load_rgb(path).unwrap(), size.0, size.1).as_raw());
    assert_eq!(fast.len(), general.len());
    let diffs: Vec<f32> = fast.iter().zip(&general).map(|(a, b)| (a - b).abs() * 127.5).collect();
    (diffs.iter().sum::<f32>() / diffs.len() as f32, diffs.iter().cloned().fold(0.0, f32::max))
}

#[test]
fn the_raw_plane_jpeg_road_matches_decoding_to_rgb_first() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic::generate(tmp.path(), Layout::ClassFolders, &Spec { classes: 1, train_per_class: 2, validation_per_class: 1, ..Spec::default() }).unwrap();
    let ds = Dataset::open(tmp.path()).unwrap();
    for resize in [Resize::Antialiased, Resize::Bilinear] {
        let (mean, _) = raw_road_against_general(&ds.train[0].path, (32, 40), resize);
        assert!(mean < 1.5, "synthetic JPEG, {resize:?}: mean difference {mean} levels");
    }
}

#[test]
#[ignore = "needs ../shared (real ImageNet weights and photos)"]
fn the_raw_plane_jpeg_road_matches_decoding_to_rgb_first_on_real_photos() {
    let shared = common::shared();
    for name in ["cats/cat.2000.jpg", "dogs/dog.2001.jpg", "cats/cat.2250.jpg"] {
        for resize in [Resize::Antialiased, Resize::Bilinear] {
            let (mean, max) = raw_road_against_general(&shared.join("datasets/cats_and_dogs_filtered/validation").join(name), (224, 224), resize);
            // Chroma is filtered once instead of upsampled then filtered: small, local differences.
            assert!(mean < 1.0 && max < 16.0, "{name}, {resize:?}: mean {mean}, max {max} levels");
        }
    }
}

#[test]
fn a_decompression_bomb_is_skipped_by_training_and_data_check_alike() {
    let dir = tempfile::tempdir().unwrap();
    synthetic::generate(dir.path(), Layout::ClassFolders, &Spec::default()).unwrap();
    let bomb = dir.path().join("validation").join(synthetic::class_name(0)).join("bomb.jpg");
    std::fs::write(&bomb, synthetic::jpeg_bomb(65_500, 65_500)).unwrap();
    let ds = Dataset::open(dir.path()).unwrap();

    let config = PipelineConfig { preprocessor: keras((32, 32)), batch_size: 4, ..PipelineConfig::default() };
    let loader = DataLoader::new(ds.validation.clone(), config, &Device::Cpu);
    let mut epoch = loader.epoch(0);
    let images: usize = (&mut epoch).map(|b| b.unwrap().indices.len()).sum();
    assert_eq!(images, ds.validation.len() - 1, "every image but the bomb");
    let stats = epoch.stats();
    assert_eq!(stats.skipped.len(), 1);
    assert!(stats.skipped[0].reason.contains("65500x65500") && stats.skipped[0].reason.contains("over the budget"), "{stats}");

    let out = Command::new(env!("CARGO_BIN_EXE_food101")).args(["data", "check", "--json", "--data"]).arg(dir.path()).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let skipped = json["skipped"].as_array().unwrap();
    assert!(skipped.iter().any(|s| s["path"].as_str().unwrap().ends_with("bomb.jpg")), "{json}");
}

#[test]
#[ignore = "needs ../shared (real ImageNet weights and photos)"]
fn the_tensorflow_jpeg_road_gives_tensorflows_pixels_on_real_photos() {
    use md5::{Digest, Md5};
    let shared = common::shared();
    let fixture: serde_json::Value = serde_json::from_str(&std::fs::read_to_string("tests/fixtures/tensorflow_pixels.json").unwrap()).unwrap();
    let photos = fixture["photos"].as_object().unwrap();
    assert!(photos.len() >= 5);
    let tensorflow = keras((224, 224)).with_jpeg(JpegDecoding::TensorFlow);
    for (name, want) in photos {
        let path = shared.join(name);
        let img = tensorflow.decode_file(&path).unwrap();
        let shape = [img.height() as u64, img.width() as u64, 3];
        assert_eq!(want["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect::<Vec<_>>(), shape, "{name}");
        let md5: String = Md5::digest(img.as_raw()).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(md5, want["md5"].as_str().unwrap(), "{name}: not TensorFlow's decode_image pixels");
        // The model inputs of the two roads differ, a little: the option changes what it says.
        let input = |p: Preprocessor| food101::data::load_sample(&path, &PipelineConfig { preprocessor: p, ..PipelineConfig::default() }, None).unwrap();
        let (ours, theirs) = (input(keras((224, 224))), input(tensorflow));
        let mean = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs() * 127.5).sum::<f32>() / ours.len() as f32;
        assert!(mean > 0.05 && mean < 2.0, "{name}: mean difference {mean} levels");
    }
}
