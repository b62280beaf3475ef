//! `food101 predict` with the real ImageNet weights reproduces TensorFlow's top-5 for the shared
//! photos (../shared/images/expected_top5.json): the same top-1 and probabilities within 0.02.

mod common;

use std::process::Command;

use food101::candle_core::Device;
use food101::predict::ImageClassifier;
use serde_json::Value;

const WEIGHTS: &str = "weights/mobilenet_v2_1.0_224_keras_imagenet.safetensors";

fn expected(shared: &std::path::Path) -> Vec<(String, Vec<(usize, f32)>)> {
    let json: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(shared.join("images/expected_top5.json")).unwrap()).unwrap();
    json.into_iter()
        .map(|(photo, top)| {
            let top = top.as_array().unwrap().iter().map(|e| (e[0].as_u64().unwrap() as usize, e[2].as_f64().unwrap() as f32));
            (photo, top.collect())
        })
        .collect()
}

#[test]
#[ignore = "needs ../shared (real ImageNet weights and photos)"]
fn every_photo_gets_tensorflows_top1_and_probabilities() {
    let shared = common::shared();
    let classifier = ImageClassifier::from_weights(&shared.join(WEIGHTS), None, &Device::Cpu).unwrap();
    assert_eq!(classifier.labels[934], "hotdog", "labels found beside the weights");
    let expected = expected(&shared);
    assert_eq!(expected.len(), 6);
    for (photo, top5) in expected {
        let all = classifier.predict_file(&shared.join("images").join(&photo), 1000).unwrap();
        assert_eq!(all[0].index, top5[0].0, "{photo}: top-1 {} vs TensorFlow's {}", all[0].label, top5[0].0);
        for (index, prob) in top5 {
            let ours = all.iter().find(|p| p.index == index).unwrap().prob;
            assert!((ours - prob).abs() < 0.02, "{photo}: class {index} p={ours}, TensorFlow {prob}");
        }
    }
}

#[test]
#[ignore = "needs ../shared (real ImageNet weights and photos)"]
fn cli_predict_json() {
    let shared = common::shared();
    let out = Command::new(env!("CARGO_BIN_EXE_food101"))
        .args(["predict", "--json", "--top", "3", "--weights"])
        .arg(shared.join(WEIGHTS))
        .arg(shared.join("images/hot_dog.jpg"))
        .arg(shared.join("images/parrot.jpg"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = json.as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert!(results[0]["image"].as_str().unwrap().ends_with("hot_dog.jpg"));
    let top = results[0]["top"].as_array().unwrap();
    assert_eq!(top.len(), 3);
    assert_eq!(top[0]["index"], 934);
    assert_eq!(top[0]["label"], "hotdog");
    assert!(top[0]["prob"].as_f64().unwrap() > top[1]["prob"].as_f64().unwrap());
    assert_eq!(results[1]["top"][0]["label"], "macaw");
}

#[test]
#[ignore = "needs ../shared (real ImageNet weights and photos)"]
fn cli_reports_unreadable_images() {
    let shared = common::shared();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.jpg");
    std::fs::write(&bad, b"not an image at all").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_food101"))
        .args(["predict", "--weights"])
        .arg(shared.join(WEIGHTS))
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.jpg"), "{stderr}");
}
