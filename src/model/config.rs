//! Hyper-parameters of MobileNetV2 and the channel arithmetic Keras uses for the width multiplier.

use serde::{Deserialize, Serialize};

/// How stride-2 convolutions are padded; the framework that trained the weights decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Padding {
    /// TensorFlow "SAME": the extra row/column goes at the bottom/right (Keras weights).
    Same,
    /// PyTorch: `k / 2` on every side (timm weights).
    Symmetric,
}

impl Padding {
    /// `(before, after)` padding of one spatial axis of length `size` for a `k`-wide kernel.
    pub fn amounts(self, size: usize, k: usize, stride: usize) -> (usize, usize) {
        match self {
            Padding::Same => {
                let out = size.div_ceil(stride);
                let total = ((out - 1) * stride + k).saturating_sub(size);
                (total / 2, total - total / 2)
            }
            Padding::Symmetric => (k / 2, k / 2),
        }
    }
}

/// One row of the paper's Table 2: expansion `t`, output channels `c`, repeats `n`, first stride `s`.
#[derive(Debug, Clone, Copy)]
pub struct StageSpec {
    pub expansion: usize,
    pub channels: usize,
    pub repeats: usize,
    pub stride: usize,
}

const fn stage(expansion: usize, channels: usize, repeats: usize, stride: usize) -> StageSpec {
    StageSpec { expansion, channels, repeats, stride }
}

/// The inverted-residual stages after the stem (Sandler et al. 2018, Table 2). Stage 0 is Keras'
/// `expanded_conv`; the 16 blocks after it are `block_1` .. `block_16`.
pub const STAGES: [StageSpec; 7] = [
    stage(1, 16, 1, 1),
    stage(6, 24, 2, 2),
    stage(6, 32, 3, 2),
    stage(6, 64, 4, 2),
    stage(6, 96, 3, 1),
    stage(6, 160, 3, 2),
    stage(6, 320, 1, 1),
];

/// MobileNetV2 configuration, with Keras' defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MobileNetV2Config {
    /// Width multiplier (Keras `alpha`).
    pub alpha: f64,
    /// Input height and width (any size from 32 px).
    pub input_size: (usize, usize),
    /// Classes of the ImageNet-style classifier on top of the base (`None`: no classifier).
    pub classes: Option<usize>,
    pub padding: Padding,
    /// BatchNorm epsilon: Keras uses 1e-3, PyTorch 1e-5.
    pub bn_eps: f64,
}

impl Default for MobileNetV2Config {
    fn default() -> Self {
        Self { alpha: 1.0, input_size: (224, 224), classes: None, padding: Padding::Same, bn_eps: 1e-3 }
    }
}

impl MobileNetV2Config {
    pub fn with_alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }

    pub fn with_input_size(mut self, height: usize, width: usize) -> Self {
        self.input_size = (height, width);
        self
    }

    pub fn with_classes(mut self, classes: Option<usize>) -> Self {
        self.classes = classes;
        self
    }

    /// Output channels of `Conv1`.
    pub fn stem_channels(&self) -> usize {
        make_divisible(32.0 * self.alpha, 8)
    }

    /// Output channels of the blocks of `stage` (Keras truncates before rounding).
    pub fn stage_channels(&self, stage: usize) -> usize {
        make_divisible((STAGES[stage].channels as f64 * self.alpha).trunc(), 8)
    }

    /// Output channels of `Conv_1`, the length of the pooled feature vector.
    pub fn last_channels(&self) -> usize {
        if self.alpha > 1.0 {
            make_divisible(1280.0 * self.alpha, 8)
        } else {
            1280
        }
    }
}

/// Keras' `_make_divisible`: round to a multiple of `divisor`, never going down by more than 10%.
pub fn make_divisible(value: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let rounded = (((value + d / 2.0) / d).floor() * d).max(d);
    let rounded = if rounded < 0.9 * value { rounded + d } else { rounded };
    rounded as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_puts_the_extra_pixel_after() {
        assert_eq!(Padding::Same.amounts(224, 3, 2), (0, 1));
        assert_eq!(Padding::Same.amounts(61, 3, 2), (1, 1));
        assert_eq!(Padding::Same.amounts(56, 3, 1), (1, 1));
        assert_eq!(Padding::Same.amounts(56, 1, 1), (0, 0));
        assert_eq!(Padding::Symmetric.amounts(224, 3, 2), (1, 1));
    }

    #[test]
    fn width_multiplier_rounds_like_keras() {
        let c = MobileNetV2Config::default().with_alpha(0.35);
        assert_eq!(c.stem_channels(), 16);
        let per_stage: Vec<_> = (0..7).map(|s| c.stage_channels(s)).collect();
        assert_eq!(per_stage, [8, 8, 16, 24, 32, 56, 112]);
        assert_eq!(c.last_channels(), 1280);
        assert_eq!(MobileNetV2Config::default().with_alpha(1.4).last_channels(), 1792);
    }
}
