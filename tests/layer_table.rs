//! The base's layer table equals `keras.applications.MobileNetV2(include_top=False)` row by row.
//! Fixtures: tests/fixtures/make_fixtures.py (Keras 3.15).

mod common;

use food101::candle_core::Device;
use food101::{MobileNetV2, MobileNetV2Config};
use serde_json::Value;

fn check_against_keras(fixture: &str, config: MobileNetV2Config) {
    let keras: Value = serde_json::from_str(&std::fs::read_to_string(common::fixture(fixture)).unwrap()).unwrap();
    let mut model = MobileNetV2::new(config, &Device::Cpu).unwrap();
    let rows = keras["layers"].as_array().unwrap();
    assert_eq!(model.layers().len(), rows.len(), "{fixture}: layer count");
    for (ours, theirs) in model.layers().iter().zip(rows) {
        assert_eq!(ours.name, theirs["name"].as_str().unwrap());
        assert_eq!(ours.kind.to_string(), theirs["class"].as_str().unwrap(), "{}", ours.name);
        let shape: Vec<usize> = serde_json::from_value(theirs["output_shape"].clone()).unwrap();
        assert_eq!(ours.output_shape.to_vec(), shape, "{}: output shape", ours.name);
        assert_eq!(ours.params as u64, theirs["params"].as_u64().unwrap(), "{}: params", ours.name);
        assert_eq!(ours.trainable_params() as u64, theirs["trainable_params"].as_u64().unwrap(), "{}", ours.name);
    }
    assert_eq!(model.count_params() as u64, keras["total_params"].as_u64().unwrap());
    assert_eq!(model.trainable_params() as u64, keras["trainable_params"].as_u64().unwrap());

    let unfreeze = &keras["unfreeze_last_50"];
    model.unfreeze_last(50);
    let per_layer: Vec<usize> = serde_json::from_value(unfreeze["per_layer_trainable_params"].clone()).unwrap();
    let ours: Vec<usize> = model.layers().iter().map(|l| l.trainable_params()).collect();
    assert_eq!(ours, per_layer, "{fixture}: trainable params per layer after unfreeze_last(50)");
    let first = model.layers().iter().find(|l| l.trainable).unwrap();
    assert_eq!(first.name, unfreeze["first_trainable_layer"].as_str().unwrap());
}

#[test]
fn width_1_0_at_224_matches_keras() {
    check_against_keras("keras_layers_a100_224.json", MobileNetV2Config::default());
}

#[test]
fn width_0_35_odd_input_matches_keras() {
    check_against_keras("keras_layers_a035_61x67.json", MobileNetV2Config::default().with_alpha(0.35).with_input_size(61, 67));
}

#[test]
fn width_1_4_at_96_matches_keras() {
    check_against_keras("keras_layers_a140_96.json", MobileNetV2Config::default().with_alpha(1.4).with_input_size(96, 96));
}

#[test]
fn the_recipe_numbers_hold() {
    let mut model = MobileNetV2::new(MobileNetV2Config::default(), &Device::Cpu).unwrap();
    assert_eq!(model.layers().len(), 154);
    assert_eq!(model.count_params(), 2_257_984);
    model.freeze_all();
    assert_eq!(model.trainable_params(), 0);
    assert!(model.trainable_variables().is_empty());
    model.unfreeze_last(50);
    assert_eq!(model.trainable_params(), 1_855_104);
    assert_eq!(model.layers()[104].name, "block_11_project");
    assert!(model.layers()[104].trainable && !model.layers()[103].trainable);
    // Conv kernels and BN gamma/beta of the 50 layers, never the moving statistics.
    let vars = model.trainable_variables();
    let values: usize = vars.iter().map(|(_, v)| v.elem_count()).sum();
    assert_eq!(values, 1_855_104);
    assert!(vars.iter().all(|(name, _)| !name.contains("moving")));
}

#[test]
fn summary_prints_the_table_and_totals() {
    let mut model = MobileNetV2::new(MobileNetV2Config::default(), &Device::Cpu).unwrap();
    model.unfreeze_last(50);
    let summary = model.summary();
    let text = summary.to_string();
    assert!(text.starts_with("Model: \"mobilenetv2_1.00_224\""));
    assert!(text.contains("block_11_project (Conv2D)"));
    assert!(text.contains("(None, 7, 7, 1280)"));
    assert!(text.contains("Total params: 2,257,984 (8.61 MB)"));
    assert!(text.contains("Trainable params: 1,855,104"));
    let html = summary.to_html();
    assert_eq!(html.matches("<tr").count(), 155, "a header row and 154 layers");
    let json = summary.to_json();
    assert_eq!(json["layers"].as_array().unwrap().len(), 154);
    assert_eq!(json["trainable_params"], 1_855_104);
    assert_eq!(json["layers"][104]["trainable"], true);
}

#[test]
fn out_of_range_configs_are_refused() {
    let too_small = MobileNetV2Config::default().with_input_size(31, 64);
    assert!(MobileNetV2::new(too_small, &Device::Cpu).unwrap_err().to_string().contains("32x32"));
    let too_wide = MobileNetV2Config::default().with_alpha(2.0);
    assert!(MobileNetV2::new(too_wide, &Device::Cpu).is_err());
}
