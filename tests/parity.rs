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

/// One phase-2 step on the real weights: the loss and every trainable variable's gradient (the
/// kernels, the unfrozen BatchNorm gammas and betas, the head) equal Keras' to 1e-4 relative.
/// Fixture: tests/fixtures/make_phase2_gradients.py (its docstring has the input formulas).
#[test]
#[ignore = "needs ../shared (real ImageNet weights and photos)"]
fn phase2_gradients_match_keras_on_real_weights() {
    use food101::candle_core::{Var, D};
    use food101::candle_nn::ops::log_softmax;
    let shared = common::shared();
    let keras: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(common::fixture("keras_phase2_gradients.json")).unwrap()).unwrap();
    let (size, batch, classes) = (96, 4, 5);
    let mut model = MobileNetV2::load_with_input_size(shared.join("weights/mobilenet_v2_1.0_224_keras_imagenet.safetensors"), (size, size), &Device::Cpu).unwrap();
    model.unfreeze_last(50);
    let x: Vec<f32> = (0..batch * size * size * 3).map(|i| ((0.37 * i as f64).sin() * 0.9) as f32).collect();
    let x = Tensor::from_vec(x, (batch, size, size, 3), &Device::Cpu).unwrap().permute((0, 3, 1, 2)).unwrap().contiguous().unwrap();
    let kernel: Vec<f32> = (0..1280 * classes).map(|j| ((0.11 * j as f64).cos() * 0.05) as f32).collect();
    let kernel = Var::from_vec(kernel, (1280, classes), &Device::Cpu).unwrap();
    let bias = Var::from_vec((0..classes).map(|k| 0.1 * (k as f32 - 2.0)).collect(), classes, &Device::Cpu).unwrap();
    let pooled = model.forward_units(&x, 0..model.num_units()).unwrap().mean((2, 3)).unwrap();
    let logits = pooled.matmul(kernel.as_tensor()).unwrap().broadcast_add(bias.as_tensor()).unwrap();
    let labels = Tensor::new(&[0u32, 1, 2, 3], &Device::Cpu).unwrap();
    let loss = food101::train::cross_entropy(&log_softmax(&logits, D::Minus1).unwrap(), &labels, 0.0).unwrap();
    let value = loss.to_scalar::<f32>().unwrap() as f64;
    assert!((value - keras["loss"].as_f64().unwrap()).abs() < 1e-4, "loss {value} vs Keras {}", keras["loss"]);
    let grads = loss.backward().unwrap();
    let mut variables = model.trainable_variables();
    variables.extend([("dense/kernel".to_string(), kernel), ("dense/bias".to_string(), bias)]);
    let expected = keras["gradients"].as_object().unwrap();
    assert_eq!(variables.len(), expected.len(), "the same variables train: 50 Keras layers and the head");
    let mut worst = 0f64;
    for (name, var) in &variables {
        let want = &expected[name.as_str()];
        let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{name} got no gradient"));
        let g: Vec<f64> = g.flatten_all().unwrap().to_vec1::<f32>().unwrap().into_iter().map(f64::from).collect();
        assert_eq!(g.len() as u64, want["size"].as_u64().unwrap(), "{name}");
        let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
        let relative = (norm / want["norm"].as_f64().unwrap() - 1.0).abs();
        // A sum can cancel to near 0 (the head's bias): compare it against the norm's scale.
        let sum_off = (g.iter().sum::<f64>() - want["sum"].as_f64().unwrap()).abs() / norm.max(1e-12);
        worst = worst.max(relative).max(sum_off);
        assert!(relative < 1e-4 && sum_off < 1e-4, "{name}: norm {norm} vs {}, sum off by {sum_off} of the norm", want["norm"]);
    }
    eprintln!("phase-2 gradients: {} variables, largest relative difference from Keras {worst:e}", variables.len());
}
