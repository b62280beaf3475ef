//! How the learning rate moves within a phase: constant (the original recipe, Keras' default) or
//! a linear warm-up followed by a cosine decay (Loshchilov & Hutter, SGDR,
//! <https://arxiv.org/abs/1608.03983>; the warm-up as in Goyal et al., <https://arxiv.org/abs/1706.02677>).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub enum Schedule {
    /// The optimizer's rate at every step.
    #[default]
    Constant,
    /// From near 0 up to the optimizer's rate over the first `warmup_epochs` (the first steps
    /// then cannot undo the pretrained weights while Adam's moments are still noisy), then down
    /// towards 0 along a half cosine over the rest of the phase (small last steps settle the weights).
    Cosine { warmup_epochs: f64 },
}

impl Schedule {
    /// The multiplier of the optimizer's rate for update `step` (0-based) of a phase of `epochs`
    /// epochs of `steps_per_epoch` updates.
    pub fn factor(&self, step: u64, steps_per_epoch: u64, epochs: usize) -> f64 {
        match *self {
            Schedule::Constant => 1.0,
            Schedule::Cosine { warmup_epochs } => {
                let total = (steps_per_epoch.max(1) * epochs.max(1) as u64) as f64;
                let warmup = (warmup_epochs.max(0.0) * steps_per_epoch as f64).round().min(total);
                let step = step as f64;
                if step < warmup {
                    (step + 1.0) / warmup
                } else {
                    // As PyTorch's CosineAnnealingLR: 1 at the first step after the warm-up, never
                    // quite 0 (a step at rate 0 would be wasted).
                    let progress = ((step - warmup) / (total - warmup).max(1.0)).min(1.0);
                    0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_warms_up_then_decays_to_zero() {
        let s = Schedule::Cosine { warmup_epochs: 1.0 };
        // 10 steps per epoch, 5 epochs: 10 warm-up steps, 40 of decay.
        assert!((s.factor(0, 10, 5) - 0.1).abs() < 1e-12);
        assert_eq!(s.factor(9, 10, 5), 1.0);
        assert_eq!(s.factor(10, 10, 5), 1.0);
        assert!((s.factor(30, 10, 5) - 0.5).abs() < 1e-12, "half way through the decay: {}", s.factor(30, 10, 5));
        let last = s.factor(49, 10, 5);
        assert!(last > 0.0 && last < 0.01, "the last step is small but not wasted: {last}");
        let rates: Vec<f64> = (10..50).map(|t| s.factor(t, 10, 5)).collect();
        assert!(rates.windows(2).all(|w| w[1] < w[0]), "the decay never rises");
        assert_eq!(Schedule::Constant.factor(7, 10, 5), 1.0);
    }
}
