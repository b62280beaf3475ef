//! Checkpoint loading: formats are recognised, every tensor is accounted for, and a problem names
//! the tensor and both shapes. Saving round-trips in both formats.

mod common;

use std::collections::HashMap;

use food101::candle_core::{safetensors, Device, Tensor};
use food101::model::WeightFormat;
use food101::{Error, MobileNetV2};

const KERAS: &str = "keras_a035_61x67.safetensors";
const TIMM: &str = "timm_mobilenetv2_035_61x67.safetensors";

/// Writes the Keras fixture with `edit` applied, and returns the error of loading it.
fn load_edited(edit: impl FnOnce(&mut HashMap<String, Tensor>)) -> Error {
    let mut tensors = common::read_fixture(KERAS);
    edit(&mut tensors);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edited.safetensors");
    safetensors::save(&tensors, &path).unwrap();
    match MobileNetV2::load(&path, &Device::Cpu) {
        Ok(_) => panic!("the edited checkpoint loaded"),
        Err(e) => e,
    }
}

#[test]
fn a_missing_tensor_is_named_with_its_shape() {
    let err = load_edited(|t| {
        t.remove("block_5_expand_BN/moving_variance");
    })
    .to_string();
    assert!(err.contains("missing tensor `block_5_expand_BN/moving_variance` (the model expects shape [96])"), "{err}");
}

#[test]
fn a_misshaped_tensor_names_both_shapes() {
    let err = load_edited(|t| {
        t.insert("block_3_project/kernel".into(), Tensor::zeros((1, 1, 48, 15), food101::candle_core::DType::F32, &Device::Cpu).unwrap());
    })
    .to_string();
    assert_eq!(err.matches("block_3_project/kernel").count(), 1, "{err}");
    assert!(err.contains("tensor `block_3_project/kernel` has shape [1, 1, 48, 15], the model expects [1, 1, 48, 16]"), "{err}");
}

#[test]
fn an_extra_tensor_is_an_error() {
    let err = load_edited(|t| {
        t.insert("block_99_expand/kernel".into(), Tensor::zeros(3, food101::candle_core::DType::F32, &Device::Cpu).unwrap());
    });
    match err {
        Error::TensorMismatch { problems, .. } => {
            assert_eq!(problems.len(), 1);
            assert_eq!(problems[0].key(), "block_99_expand/kernel");
            assert!(problems[0].to_string().contains("unexpected tensor"));
        }
        other => panic!("unexpected error {other}"),
    }
}

#[test]
fn unknown_names_and_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.safetensors");
    let tensors = HashMap::from([("encoder.weight".to_string(), Tensor::zeros(2, food101::candle_core::DType::F32, &Device::Cpu).unwrap())]);
    safetensors::save(&tensors, &path).unwrap();
    let err = MobileNetV2::load(&path, &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("neither Keras") && err.contains("other.safetensors"), "{err}");
    let err = MobileNetV2::load(dir.path().join("absent.safetensors"), &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("absent.safetensors: file not found"), "{err}");
    std::fs::write(&path, b"garbage").unwrap();
    let err = MobileNetV2::load(&path, &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("not a readable safetensors file"), "{err}");
}

#[test]
fn keras_weights_cannot_go_into_a_pytorch_padded_model() {
    let timm = MobileNetV2::load(common::fixture(TIMM), &Device::Cpu).unwrap();
    let err = timm.load_weights(common::fixture(KERAS)).err().unwrap().to_string();
    assert!(err.contains("Keras weights need Same padding"), "{err}");
}

#[test]
fn save_and_load_round_trip_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let x = common::read_fixture("keras_a035_61x67.io.safetensors")["input"].clone();
    for (fixture, format) in [(KERAS, WeightFormat::Keras), (TIMM, WeightFormat::Timm)] {
        let model = MobileNetV2::load(common::fixture(fixture), &Device::Cpu).unwrap();
        let path = dir.path().join(format!("{format:?}.safetensors"));
        model.save(&path, format).unwrap();
        let original = safetensors::load(common::fixture(fixture), &Device::Cpu).unwrap();
        let saved = safetensors::load(&path, &Device::Cpu).unwrap();
        let mut names: Vec<_> = saved.keys().collect();
        names.sort();
        for name in names {
            assert_eq!(common::max_abs_diff(&saved[name], &original[name]), 0.0, "{name}");
        }
        let again = MobileNetV2::load(&path, &Device::Cpu).unwrap();
        assert_eq!(common::max_abs_diff(&model.logits(&x).unwrap(), &again.logits(&x).unwrap()), 0.0);
    }
}
