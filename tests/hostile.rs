//! Hostile but fair input: files and situations that must end in a clear error (or a clear skip),
//! lose nothing and produce no result that is not one. Each case builds its hostile file here.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use food101::candle_core::{safetensors, Device, Tensor};
use food101::data::synthetic::Spec;
use food101::data::{decode_rgb, load_sample, ClassSelection, Dataset, DecodeError, PipelineConfig, MAX_PIXELS};
use food101::train::{Phase, TrainConfig, Trainer};
use food101::{Error, MobileNetV2};

const FOOD101: &str = env!("CARGO_BIN_EXE_food101");

/// A JPEG of a real size with its last 40 bytes missing, as an interrupted download leaves it.
fn truncated_jpeg() -> Vec<u8> {
    let img = image::RgbImage::from_fn(160, 120, |x, y| image::Rgb([(x * 3 % 256) as u8, (y * 2) as u8, ((x + y) % 256) as u8]));
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Jpeg).unwrap();
    let bytes = bytes.into_inner();
    bytes[..bytes.len() - 40].to_vec()
}

/// Replaces every image of `split` (or of both splits) with `bytes`.
fn overwrite(dataset: &Dataset, train: bool, validation: bool, bytes: &[u8]) {
    let chosen = [(train, &dataset.train), (validation, &dataset.validation)];
    for sample in chosen.into_iter().filter(|(on, _)| *on).flat_map(|(_, s)| s.iter()) {
        std::fs::write(&sample.path, bytes).unwrap();
    }
}

fn train_cli(s: &common::Setup, data: &Path, out: &Path) -> std::process::Output {
    Command::new(FOOD101)
        .args(["train", "--image-size", "48", "--epochs1", "1", "--epochs2", "0", "--batch", "8", "--no-mlflow"])
        .arg("--data")
        .arg(data)
        .arg("--weights")
        .arg(&s.weights)
        .arg("--out")
        .arg(out)
        .env("FOOD101_CACHE", s.dir.path().join("cache"))
        .output()
        .unwrap()
}

fn text(output: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn training_on_images_none_of_which_can_be_read_is_refused_and_exports_nothing() {
    let s = common::setup(Spec::default());
    overwrite(&s.dataset, true, true, b"not a photo at all");
    let out = s.dir.path().join("out");
    let output = train_cli(&s, &s.dataset.root, &out);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("none of the training images could be read"), "{}", text(&output));
    assert!(!out.join("model").exists(), "nothing exported");
}

#[test]
fn a_validation_split_that_cannot_be_read_is_refused() {
    let s = common::setup(Spec::default());
    overwrite(&s.dataset, false, true, &truncated_jpeg());
    let mut trainer = s.trainer(s.train_config("no-validation"));
    match trainer.fit(Phase::feature_extraction(1)) {
        Err(Error::Dataset { message, .. }) => assert!(message.contains("none of the validation images"), "{message}"),
        other => panic!("expected a refusal, got {:?}", other.err()),
    }
}

#[test]
fn one_class_is_not_a_classification() {
    let s = common::setup(Spec { classes: 1, ..Spec::default() });
    match Trainer::new(s.model(), s.dataset.clone(), s.train_config("one")) {
        Err(Error::Dataset { message, .. }) => assert!(message.contains("at least two"), "{message}"),
        other => panic!("expected a refusal, got {:?}", other.err().map(|e| e.to_string())),
    }
}

#[test]
fn a_truncated_jpeg_is_refused_on_every_road() {
    let bytes = truncated_jpeg();
    assert_eq!(decode_rgb(&bytes, MAX_PIXELS).err(), Some(DecodeError::Truncated));
    let s = common::setup(Spec::default());
    let mut trainer = s.trainer(s.train_config("truncated"));
    trainer.fit(Phase::feature_extraction(1)).unwrap();
    let model = trainer.export(s.dir.path().join("model")).unwrap();
    let victim = s.dataset.validation[0].path.clone();
    std::fs::write(&victim, &bytes).unwrap();
    // The pipeline skips it with the reason, `data check` lists it, `predict` refuses it.
    let reason = load_sample(&victim, &PipelineConfig::default(), None).unwrap_err();
    assert!(reason.contains("truncated"), "{reason}");
    let unreadable = s.dataset.unreadable();
    assert!(unreadable.iter().any(|u| u.path == victim && u.reason.contains("truncated")), "{unreadable:?}");
    let output = Command::new(FOOD101).args(["predict", "--model"]).arg(&model).arg(&victim).output().unwrap();
    assert!(!output.status.success() && text(&output).contains("truncated"), "{}", text(&output));
}

#[test]
fn formats_this_crate_does_not_read_are_not_images_to_it() {
    // TIFF, ICO and PNM headers that `image` recognises but this build does not decode.
    for bytes in [&b"II*\0\x08\0\0\0\0\0\0\0"[..], &[0, 0, 1, 0, 1, 0, 16, 16, 0, 0, 1, 0, 32, 0, 0, 0, 0, 0, 22, 0, 0, 0], b"P6\n4 4\n255\n"] {
        assert_eq!(decode_rgb(bytes, MAX_PIXELS).err(), Some(DecodeError::NotAnImage), "{:?}", &bytes[..4]);
    }
}

#[test]
fn weights_holding_nan_are_refused_by_name() {
    let s = common::setup(Spec::default());
    let mut tensors = safetensors::load(&s.weights, &Device::Cpu).unwrap();
    let kernel = &tensors["Conv1/kernel"];
    let mut values = kernel.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    values[3] = f32::NAN;
    let broken = Tensor::from_vec(values, kernel.shape(), &Device::Cpu).unwrap();
    tensors.insert("Conv1/kernel".into(), broken);
    let path = s.dir.path().join("broken.safetensors");
    safetensors::save(&tensors, &path).unwrap();
    let message = MobileNetV2::load(&path, &Device::Cpu).expect_err("refused").to_string();
    assert!(message.contains("Conv1/kernel") && message.contains("NaN"), "{message}");
}

#[test]
fn a_resumed_phase_counts_the_epochs_before_the_interruption() {
    let s = common::setup(Spec::default());
    let config = || TrainConfig { resume: true, ..s.train_config("interrupted") };
    let mut trainer = Trainer::new(s.model(), s.dataset.clone(), config()).unwrap();
    trainer.fit(Phase::feature_extraction(1)).unwrap();
    drop(trainer);
    // What a kill after that epoch leaves: the epoch in the checkpoint, the phase never closed.
    let state_path = s.dir.path().join("interrupted/last/state.json");
    let mut state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    state["history"]["phases"] = serde_json::json!([]);
    std::fs::write(&state_path, state.to_string()).unwrap();
    let mut trainer = Trainer::new(s.model(), s.dataset.clone(), config()).unwrap();
    trainer.fit(Phase::feature_extraction(3)).unwrap();
    let phases = &trainer.history().phases;
    assert_eq!((phases.len(), phases[0].epochs, phases[0].first_epoch), (1, 3, 1), "{phases:?}");
}

#[test]
fn resuming_on_other_data_with_the_same_classes_is_refused() {
    let s = common::setup(Spec::default());
    let mut trainer = s.trainer(s.train_config("resume"));
    trainer.fit(Phase::feature_extraction(1)).unwrap();
    let fewer = s.dataset.subset(&ClassSelection::All, 0.5, 1).unwrap();
    let config = TrainConfig { resume: true, ..s.train_config("resume") };
    match Trainer::new(s.model(), fewer, config) {
        Err(Error::Checkpoint { message, .. }) => assert!(message.contains("made on"), "{message}"),
        other => panic!("expected a refusal, got {:?}", other.err().map(|e| e.to_string())),
    }
}

#[test]
fn a_checkpoint_file_cut_short_is_named_in_the_error() {
    let s = common::setup(Spec::default());
    let mut trainer = s.trainer(s.train_config("cut"));
    trainer.fit(Phase::feature_extraction(1)).unwrap();
    let head = s.dir.path().join("cut/last/head.safetensors");
    let bytes = std::fs::read(&head).unwrap();
    std::fs::write(&head, &bytes[..bytes.len() / 2]).unwrap();
    let config = TrainConfig { resume: true, ..s.train_config("cut") };
    let message = Trainer::new(s.model(), s.dataset.clone(), config).err().expect("refused").to_string();
    assert!(message.contains("head.safetensors"), "{message}");
}

#[test]
fn syncing_a_folder_that_is_no_journal_fails_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage");
    std::fs::create_dir_all(&garbage).unwrap();
    std::fs::write(garbage.join("events.jsonl"), "{not json\n").unwrap();
    let missing: PathBuf = dir.path().join("missing");
    let output = Command::new(FOOD101).args(["mlflow", "sync", "--uri", "http://127.0.0.1:9"]).arg(&missing).arg(&garbage).output().unwrap();
    assert!(!output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("not a run journal") && text(&output).contains("no readable event"), "{}", text(&output));
    assert!(!missing.exists(), "a missing folder is not created");
}

#[test]
fn serve_refuses_a_limit_it_cannot_hold_and_names_a_missing_examples_folder() {
    let s = common::setup(Spec::default());
    let huge = Command::new(FOOD101).args(["serve", "--max-mb", "18446744073709551615", "--weights"]).arg(&s.weights).output().unwrap();
    assert!(!huge.status.success(), "{}", text(&huge));
    let missing = s.dir.path().join("no-such-folder");
    let output = Command::new(FOOD101).args(["serve", "--port", "0", "--weights"]).arg(&s.weights).arg("--examples").arg(&missing).output().unwrap();
    assert!(!output.status.success());
    assert!(text(&output).contains("no-such-folder"), "{}", text(&output));
}

#[test]
fn serve_names_a_port_in_use_and_offers_only_photos_as_examples() {
    use std::io::{BufRead, Read, Write};
    let s = common::setup(Spec::default());
    let mut trainer = s.trainer(s.train_config("serve"));
    trainer.fit(Phase::feature_extraction(1)).unwrap();
    let model = trainer.export(s.dir.path().join("model")).unwrap();

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = Command::new(FOOD101).args(["serve", "--port", &port, "--model"]).arg(&model).output().unwrap();
    assert!(!output.status.success());
    assert!(text(&output).contains(&format!("127.0.0.1:{port}")), "{}", text(&output));

    let examples = s.dir.path().join("examples");
    std::fs::create_dir_all(&examples).unwrap();
    std::fs::copy(&s.dataset.validation[0].path, examples.join("pizza.jpg")).unwrap();
    std::fs::write(examples.join("README.md"), "not a photo").unwrap();
    std::fs::write(examples.join("COPYRIGHT"), "not a photo").unwrap();
    let mut server = Command::new(FOOD101)
        .args(["serve", "--port", "0", "--model"])
        .arg(&model)
        .arg("--examples")
        .arg(&examples)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let address = line.split("http://").nth(1).and_then(|rest| rest.split_whitespace().next()).expect("the address it serves on").to_string();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut page = String::new();
    stream.read_to_string(&mut page).unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(page.contains("pizza.jpg"), "the photo is offered");
    assert!(!page.contains("README.md") && !page.contains("COPYRIGHT"), "only photos are offered");
}
