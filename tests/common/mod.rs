//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use food101::candle_core::{safetensors, Device, Tensor};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

pub fn read_fixture(name: &str) -> std::collections::HashMap<String, Tensor> {
    safetensors::load(fixture(name), &Device::Cpu).expect("fixture")
}

/// `../shared` beside the checkout (real weights and photos), or `None` with a visible skip note:
/// a user's fresh clone does not have it.
pub fn shared(test: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    if dir.join("weights").is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIPPED {test}: ../shared (real ImageNet weights and photos) is not beside this checkout");
        None
    }
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}
