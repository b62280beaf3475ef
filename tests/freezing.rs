//! Keras freezing semantics: gradients reach exactly the trainable variables, BatchNorm moving
//! statistics never train, and a frozen base costs no gradient work.

use std::collections::BTreeSet;

use food101::candle_core::{Device, Tensor};
use food101::candle_nn::VarMap;
use rand::SeedableRng;
use food101::{ClassifierHead, MobileNetV2, MobileNetV2Config};

fn small_model() -> MobileNetV2 {
    MobileNetV2::new(MobileNetV2Config::default().with_alpha(0.35).with_input_size(64, 64), &Device::Cpu).unwrap()
}

fn input() -> Tensor {
    Tensor::randn(0f32, 1.0, (2, 3, 64, 64), &Device::Cpu).unwrap()
}

/// Names of the model's variables that received a gradient from `loss`.
fn with_gradient(model: &MobileNetV2, loss: &Tensor) -> BTreeSet<String> {
    let grads = loss.backward().unwrap();
    let vars = model.varmap().data().lock().unwrap();
    vars.iter().filter(|(_, v)| grads.get(v.as_tensor()).is_some()).map(|(n, _)| n.clone()).collect()
}

#[test]
fn unfreeze_last_50_gives_gradients_to_exactly_the_trainable_variables() {
    let mut model = small_model();
    model.unfreeze_last(50);
    let trainable: BTreeSet<String> = model.trainable_variables().into_iter().map(|(n, _)| n).collect();
    assert!(trainable.contains("block_11_project/kernel"));
    assert!(trainable.contains("block_11_project_BN/gamma"));
    assert!(!trainable.contains("block_11_depthwise/depthwise_kernel"));
    assert!(!trainable.contains("block_11_project_BN/moving_mean"));
    let loss = model.features(&input()).unwrap().sqr().unwrap().sum_all().unwrap();
    assert_eq!(with_gradient(&model, &loss), trainable);
}

#[test]
fn a_fully_trainable_base_trains_everything_but_moving_statistics() {
    let mut model = small_model();
    model.unfreeze_all();
    let loss = model.features(&input()).unwrap().sum_all().unwrap();
    let got = with_gradient(&model, &loss);
    let all = model.varmap().data().lock().unwrap().keys().cloned().collect::<BTreeSet<_>>();
    let expected: BTreeSet<String> =
        all.into_iter().filter(|n| !n.contains("moving_") && !n.starts_with("predictions/")).collect();
    assert_eq!(got, expected);
}

#[test]
fn a_frozen_base_is_outside_the_graph_and_only_the_head_learns() {
    let mut model = small_model();
    model.freeze_all();
    let features = model.features(&input()).unwrap();
    // Nothing before the head is tracked, so backward never walks the base.
    assert!(!features.track_op(), "frozen features must not carry a backward graph");
    let varmap = VarMap::new();
    let head = ClassifierHead::new(&varmap, &Device::Cpu, model.feature_dim(), 5, 0.3, 0).unwrap();
    let loss = head.forward_train(&features, &mut rand::rngs::StdRng::seed_from_u64(1)).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    for (name, var) in head.trainable_variables() {
        assert!(grads.get(var.as_tensor()).is_some(), "{name} has no gradient");
    }
    assert!(with_gradient(&model, &loss).is_empty());
}

#[test]
fn the_head_pools_maps_and_accepts_pooled_features() {
    let varmap = VarMap::new();
    let head = ClassifierHead::new(&varmap, &Device::Cpu, 16, 4, 0.3, 0).unwrap();
    let maps = Tensor::randn(0f32, 1.0, (3, 16, 2, 2), &Device::Cpu).unwrap();
    let from_maps = head.forward(&maps).unwrap();
    let from_pooled = head.forward(&maps.mean((2, 3)).unwrap()).unwrap();
    assert_eq!(from_maps.dims(), &[3, 4]);
    assert!((from_maps - from_pooled).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() < 1e-6);
    let probs = head.predict(&maps).unwrap().sum(1).unwrap().to_vec1::<f32>().unwrap();
    assert!(probs.iter().all(|p| (p - 1.0).abs() < 1e-5));
}
