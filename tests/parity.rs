//! Our forward pass equals Keras' and timm's on the same random weights and inputs (1e-4).
//! Fixtures: tests/fixtures/make_fixtures.py and make_photo_fixture.py.

mod common;

use common::{max_abs_diff, read_fixture};
use food101::candle_core::{DType, Device, Tensor};
use food101::model::{Padding, WeightFormat};
use food101::MobileNetV2;

fn check(weights: &str, io: &str, format: WeightFormat, padding: Padding) {
    let mut model = MobileNetV2::load(common::fixture(weights), &Device::Cpu).unwrap();
    assert_eq!(model.config().padding, padding);
    assert_eq!(model.config().alpha, 0.35);
    assert_eq!(model.config().classes, Some(7));
    let io = read_fixture(io);
    // Trainable layers run with gradients tracked through the folded BatchNorm; frozen ones without.
    // A frozen inverted-residual block runs in one pass when the batch has at least one image per
    // thread, else layer by layer: the batch of two takes the first road in a one-thread pool and
    // the second in a three-thread pool, and both must agree with the reference and each other.
    let pool = |threads| rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let mut frozen_logits = Vec::new();
    for (frozen, threads) in [(false, 1), (true, 1), (true, 3)] {
        if frozen {
            model.freeze_all();
        }
        let (features, logits) = pool(threads).install(|| (model.features(&io["input"]).unwrap(), model.logits(&io["input"]).unwrap()));
        let (df, dl) = (max_abs_diff(&features, &io["features"]), max_abs_diff(&logits, &io["logits"]));
        eprintln!("{format:?} (frozen: {frozen}, {threads} threads): max |diff| features {df:e}, logits {dl:e}");
        assert!(df < 1e-4 && dl < 1e-4, "{format:?} (frozen: {frozen}, {threads} threads) parity: features {df}, logits {dl}");
        if frozen {
            frozen_logits.push(logits);
        }
    }
    let roads = max_abs_diff(&frozen_logits[0], &frozen_logits[1]);
    assert!(roads < 1e-5, "{format:?}: one pass and layer by layer differ by {roads}");
}

#[test]
fn keras_random_weights_odd_input() {
    check("keras_a035_61x67.safetensors", "keras_a035_61x67.io.safetensors", WeightFormat::Keras, Padding::Same);
}

#[test]
fn timm_random_weights_odd_input() {
    check(
        "timm_mobilenetv2_035_61x67.safetensors",
        "timm_mobilenetv2_035_61x67.io.safetensors",
        WeightFormat::Timm,
        Padding::Symmetric,
    );
}

/// The padding convention matters: the same Keras weights with PyTorch padding give other numbers.
#[test]
fn symmetric_padding_would_not_match_keras() {
    let io = read_fixture("keras_a035_61x67.io.safetensors");
    let x = io["input"].pad_with_zeros(2, 0, 1).unwrap().pad_with_zeros(3, 0, 1).unwrap(); // 62x68: even sizes
    let keras = MobileNetV2::load(common::fixture("keras_a035_61x67.safetensors"), &Device::Cpu).unwrap();
    let mut config = keras.config().clone();
    config.padding = Padding::Symmetric;
    let symmetric = MobileNetV2::new(config, &Device::Cpu).unwrap();
    for (name, var) in keras.varmap().data().lock().unwrap().iter() {
        symmetric.varmap().data().lock().unwrap()[name].set(var.as_tensor()).unwrap();
    }
    let diff = max_abs_diff(&keras.logits(&x).unwrap(), &symmetric.logits(&x).unwrap());
    assert!(diff > 1e-3, "padding made no difference ({diff})");
}

/// With the real ImageNet weights, the same Pillow-resized photo gives Keras' probabilities.
#[test]
#[ignore = "needs ../shared (real ImageNet weights and photos)"]
fn real_imagenet_weights_match_keras_on_a_photo() {
    let shared = common::shared();
    let mut model = MobileNetV2::load(shared.join("weights/mobilenet_v2_1.0_224_keras_imagenet.safetensors"), &Device::Cpu).unwrap();
    model.freeze_all();
    let io = read_fixture("cat_224_keras_probs.safetensors");
    let x = ((io["resized"].to_dtype(DType::F32).unwrap() / 127.5).unwrap() - 1.0).unwrap();
    let x: Tensor = x.permute((2, 0, 1)).unwrap().unsqueeze(0).unwrap();
    let diff = max_abs_diff(&model.predict(&x).unwrap(), &io["probs"]);
    eprintln!("real weights: max |diff| of probabilities {diff:e}");
    assert!(diff < 1e-4, "probabilities differ by {diff}");
}
