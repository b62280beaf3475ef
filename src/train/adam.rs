//! Adam (Kingma & Ba, <https://arxiv.org/abs/1412.6980>) exactly as Keras 3 updates it, with its
//! state open for checkpoints: `m`, `v` and the step count are saved and restored with the weights.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{backprop::GradStore, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Hyper-parameters, with Keras' defaults (`keras.optimizers.Adam()`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    pub learning_rate: f64,
    pub beta_1: f64,
    pub beta_2: f64,
    pub epsilon: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self { learning_rate: 1e-3, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 }
    }
}

struct Slot {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
}

/// The optimizer over a fixed list of named variables.
pub struct Adam {
    pub config: AdamConfig,
    /// Updates applied so far (Keras `optimizer.iterations`).
    pub iterations: u64,
    slots: Vec<Slot>,
}

impl Adam {
    pub fn new(variables: Vec<(String, Var)>, config: AdamConfig) -> Result<Self> {
        let slots = variables
            .into_iter()
            .map(|(name, var)| {
                let zeros = var.zeros_like()?;
                Ok(Slot { name, m: zeros.clone(), v: zeros, var })
            })
            .collect::<Result<_>>()?;
        Ok(Self { config, iterations: 0, slots })
    }

    /// One update from the gradients of a backward pass (variables without one are left alone).
    ///
    /// Keras: `alpha = lr * sqrt(1 - b2^t) / (1 - b1^t)`, `m += (g - m)(1 - b1)`,
    /// `v += (g² - v)(1 - b2)`, `w -= alpha * m / (sqrt(v) + eps)`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        let AdamConfig { learning_rate, beta_1, beta_2, epsilon } = self.config;
        let t = (self.iterations + 1) as i32;
        let alpha = learning_rate * (1.0 - beta_2.powi(t)).sqrt() / (1.0 - beta_1.powi(t));
        for slot in &mut self.slots {
            let Some(g) = grads.get(slot.var.as_tensor()) else { continue };
            // A gradient can still hold candle's graph (a kernel folded with a trainable
            // BatchNorm scale): detached, the moments do not chain every step to the last.
            let g = &g.detach();
            slot.m = ((&slot.m * beta_1)? + (g * (1.0 - beta_1))?)?;
            slot.v = ((&slot.v * beta_2)? + (g.sqr()? * (1.0 - beta_2))?)?;
            let update = ((&slot.m * alpha)? / (slot.v.sqrt()? + epsilon)?)?;
            slot.var.set(&slot.var.as_tensor().sub(&update)?)?;
        }
        self.iterations += 1;
        Ok(())
    }

    /// Writes `m/<name>` and `v/<name>` for every variable.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = HashMap::new();
        for slot in &self.slots {
            tensors.insert(format!("m/{}", slot.name), slot.m.clone());
            tensors.insert(format!("v/{}", slot.name), slot.v.clone());
        }
        candle_core::safetensors::save(&tensors, path)?;
        Ok(())
    }

    /// Restores the moments written by [`Adam::save`]; every variable must be there.
    pub fn load(&mut self, path: &Path, iterations: u64, device: &Device) -> Result<()> {
        let tensors = candle_core::safetensors::load(path, device)?;
        for slot in &mut self.slots {
            let get = |key: String| {
                tensors.get(&key).cloned().ok_or_else(|| Error::Weights {
                    path: path.to_path_buf(),
                    message: format!("optimizer state has no `{key}`"),
                })
            };
            slot.m = get(format!("m/{}", slot.name))?;
            slot.v = get(format!("v/{}", slot.name))?;
        }
        self.iterations = iterations;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_never_hold_the_graph_of_a_gradient() {
        // `w`'s gradient is `scale`, itself a variable: candle returns it with its graph attached.
        let device = Device::Cpu;
        let w = Var::new(&[1f32, 2.0], &device).unwrap();
        let scale = Var::new(&[3f32, 4.0], &device).unwrap();
        let mut adam = Adam::new(vec![("w".into(), w.clone())], AdamConfig::default()).unwrap();
        for _ in 0..3 {
            let loss = (w.as_tensor() * scale.as_tensor()).unwrap().sum_all().unwrap();
            adam.step(&loss.backward().unwrap()).unwrap();
        }
        let slot = &adam.slots[0];
        assert!(!slot.m.track_op() && !slot.v.track_op(), "the moments chain to earlier steps' graphs");
    }
}
