//! Adam (Kingma & Ba, <https://arxiv.org/abs/1412.6980>) exactly as Keras 3 updates it, with its
//! state open for checkpoints: `m`, `v` and the step count are saved and restored with the weights.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{backprop::GradStore, CpuStorage, DType, Device, InplaceOp2, InplaceOp3, Layout, Tensor, Var};
use rayon::prelude::*;
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
                // Two tensors, not one shared: the moments are updated in place.
                Ok(Slot { name, m: var.zeros_like()?, v: var.zeros_like()?, var })
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
            let g = &g.detach().contiguous()?;
            let w = slot.var.as_tensor();
            if w.device().is_cpu() && w.dtype() == DType::F32 {
                // In place, three passes over the values instead of a dozen new tensors.
                slot.m.inplace_op2(g, &Moment { beta: beta_1 as f32, square: false })?;
                slot.v.inplace_op2(g, &Moment { beta: beta_2 as f32, square: true })?;
                w.inplace_op3(&slot.m, &slot.v, &Update { alpha: alpha as f32, epsilon: epsilon as f32 })?;
                continue;
            }
            slot.m = ((&slot.m * beta_1)? + (g * (1.0 - beta_1))?)?;
            slot.v = ((&slot.v * beta_2)? + (g.sqr()? * (1.0 - beta_2))?)?;
            let update = ((&slot.m * alpha)? / (slot.v.sqrt()? + epsilon)?)?;
            slot.var.set(&w.sub(&update)?)?;
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

/// Values per parallel task of the in-place updates.
const CHUNK: usize = 1 << 14;

/// The f32 values of a contiguous CPU tensor.
fn values<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let (start, end) = l.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("Adam needs contiguous tensors".into()))?;
    Ok(&s.as_slice::<f32>()?[start..end])
}

fn values_mut<'a>(s: &'a mut CpuStorage, l: &Layout) -> candle_core::Result<&'a mut [f32]> {
    let (start, end) = l.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("Adam needs contiguous tensors".into()))?;
    match s {
        CpuStorage::F32(v) => Ok(&mut v[start..end]),
        _ => Err(candle_core::Error::Msg("Adam's in-place update needs f32".into())),
    }
}

/// A moment, in place: `m = beta * m + (1 - beta) * g` (`g²` when `square`).
struct Moment {
    beta: f32,
    square: bool,
}

impl InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "adam-moment"
    }

    fn cpu_fwd(&self, dst: &mut CpuStorage, dst_l: &Layout, gs: &CpuStorage, gl: &Layout) -> candle_core::Result<()> {
        let (m, g) = (values_mut(dst, dst_l)?, values(gs, gl)?);
        let (beta, square) = (self.beta, self.square);
        m.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).for_each(|(m, g)| {
            for (m, &g) in m.iter_mut().zip(g) {
                *m = beta * *m + (1.0 - beta) * if square { g * g } else { g };
            }
        });
        Ok(())
    }
}

/// The step, in place: `w -= alpha * m / (sqrt(v) + epsilon)`.
struct Update {
    alpha: f32,
    epsilon: f32,
}

impl InplaceOp3 for Update {
    fn name(&self) -> &'static str {
        "adam-update"
    }

    fn cpu_fwd(&self, dst: &mut CpuStorage, dst_l: &Layout, ms: &CpuStorage, ml: &Layout, vs: &CpuStorage, vl: &Layout) -> candle_core::Result<()> {
        let (w, m, v) = (values_mut(dst, dst_l)?, values(ms, ml)?, values(vs, vl)?);
        w.par_chunks_mut(CHUNK).zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK))).for_each(|(w, (m, v))| {
            for ((w, &m), &v) in w.iter_mut().zip(m).zip(v) {
                *w -= self.alpha * m / (v.sqrt() + self.epsilon);
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_in_place_update_is_keras_formula() {
        // Loss `sum(w * c)`: the gradient is `c` at every step.
        let (c, lr) = ([3f64, -4.0, 0.5], 0.01);
        let w = Var::new(&[1f32, 2.0, -1.0], &Device::Cpu).unwrap();
        let cst = Tensor::new(&[3f32, -4.0, 0.5], &Device::Cpu).unwrap();
        let mut adam = Adam::new(vec![("w".into(), w.clone())], AdamConfig { learning_rate: lr, ..AdamConfig::default() }).unwrap();
        let (mut expected, mut m, mut v) = ([1f64, 2.0, -1.0], [0f64; 3], [0f64; 3]);
        for t in 1..=3 {
            adam.step(&(w.as_tensor() * &cst).unwrap().sum_all().unwrap().backward().unwrap()).unwrap();
            let alpha = lr * (1.0 - 0.999f64.powi(t)).sqrt() / (1.0 - 0.9f64.powi(t));
            for i in 0..3 {
                m[i] += (c[i] - m[i]) * (1.0 - 0.9);
                v[i] += (c[i] * c[i] - v[i]) * (1.0 - 0.999);
                expected[i] -= alpha * m[i] / (v[i].sqrt() + 1e-7);
            }
        }
        let got = w.as_tensor().to_vec1::<f32>().unwrap();
        for (g, e) in got.iter().zip(expected) {
            assert!((*g as f64 - e).abs() < 1e-6, "w = {got:?}, Keras' formula gives {expected:?}");
        }
    }

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
