//! Pixel normalisation, fixed by the framework that trained the weights.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalization {
    /// Keras `mobilenet_v2.preprocess_input`: `x / 127.5 - 1`.
    MinusOneToOne,
    /// torchvision/timm: `(x / 255 - mean) / std` per channel.
    MeanStd { mean: [f32; 3], std: [f32; 3] },
}

impl Normalization {
    /// ImageNet mean and standard deviation, as timm's MobileNetV2 was trained.
    pub fn imagenet() -> Self {
        Self::MeanStd { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] }
    }

    /// Per-channel `(scale, offset)` so that `value = pixel * scale + offset`.
    pub(super) fn affine(self) -> [(f32, f32); 3] {
        match self {
            Self::MinusOneToOne => [(1.0 / 127.5, -1.0); 3],
            Self::MeanStd { mean, std } => std::array::from_fn(|c| (1.0 / (255.0 * std[c]), -mean[c] / std[c])),
        }
    }

    /// Interleaved RGB bytes (`H x W x 3`) to planar floats (`3 x H x W`).
    pub fn normalize(self, rgb: &[u8]) -> Vec<f32> {
        let mut out = vec![0f32; rgb.len()];
        self.normalize_into(rgb, &mut out);
        out
    }

    /// [`Self::normalize`] into `out` (`rgb.len()` floats).
    pub fn normalize_into(self, rgb: &[u8], out: &mut [f32]) {
        let plane = rgb.len() / 3;
        for (c, (scale, offset)) in self.affine().into_iter().enumerate() {
            let dst = &mut out[c * plane..(c + 1) * plane];
            for (d, px) in dst.iter_mut().zip(rgb.chunks_exact(3)) {
                *d = px[c] as f32 * scale + offset;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisations_map_the_byte_range() {
        let px = [0u8, 255, 128];
        let keras = Normalization::MinusOneToOne.normalize(&px);
        assert_eq!(keras[0], -1.0);
        assert_eq!(keras[1], 1.0);
        let torch = Normalization::imagenet().normalize(&px);
        assert!((torch[0] - (-0.485 / 0.229)).abs() < 1e-6);
        assert!((torch[1] - (1.0 - 0.456) / 0.224).abs() < 1e-5);
    }
}
