//! A run's random draws written down, so that another framework can train with the very same
//! ones: the head's initial kernel, each epoch's order of the training samples, and dropout's
//! masks. Two frameworks never share random generators; given the same draws, the same recipe
//! should give the same curves epoch by epoch, which is the sharp test of parity
//! (`bench/keras_recipe.py --draws DIR` is the Keras side).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde::Serialize;

use super::Trainer;
use crate::error::Result;

/// `draws.json`: what the tensors in `draws.safetensors` refer to.
#[derive(Serialize)]
struct Index<'a> {
    seed: u64,
    batch_size: usize,
    dropout: f32,
    epochs: usize,
    classes: &'a [String],
    /// Training samples as paths relative to the dataset's root (the indices of `order`), with labels.
    train: Vec<(String, usize)>,
}

/// Writes the draws of epochs `1..=epochs` into `dir`: `draws.safetensors` with `dense/kernel`
/// (the head's kernel as it is now, `[classes, features]`), `epoch_E/order` (u32 sample indices)
/// and `epoch_E/keep` (u8, `[samples, features]`, the batches' masks one after the other), and
/// `draws.json`, which names the samples.
pub fn save(trainer: &Trainer, epochs: usize, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let head = trainer.head();
    let mut tensors = HashMap::new();
    tensors.insert("dense/kernel".to_string(), head.dense().weight().to_device(&Device::Cpu)?);
    for epoch in 1..=epochs {
        let draws = trainer.draws(epoch);
        let order: Vec<u32> = draws.order.iter().map(|&i| i as u32).collect();
        let keep: Vec<u8> = draws.keeps.concat().into_iter().map(u8::from).collect();
        tensors.insert(format!("epoch_{epoch}/order"), Tensor::new(order, &Device::Cpu)?);
        tensors.insert(format!("epoch_{epoch}/keep"), Tensor::from_vec(keep, (draws.order.len(), head.features()), &Device::Cpu)?);
    }
    candle_core::safetensors::save(&tensors, dir.join("draws.safetensors"))?;
    let dataset = trainer.dataset();
    let relative = |p: &Path| p.strip_prefix(&dataset.root).unwrap_or(p).to_string_lossy().into_owned();
    let index = Index {
        seed: trainer.config().seed,
        batch_size: trainer.config().batch_size,
        dropout: head.dropout(),
        epochs,
        classes: &dataset.classes,
        train: dataset.train.iter().map(|s| (relative(&s.path), s.label)).collect(),
    };
    std::fs::write(dir.join("draws.json"), serde_json::to_string_pretty(&index)?)?;
    Ok(())
}
