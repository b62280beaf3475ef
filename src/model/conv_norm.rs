//! Convolution → BatchNorm → optional ReLU6, the unit MobileNetV2 is made of.

use candle_core::{Result, Tensor};

use super::layers::{BatchNorm, Conv2d, LayerBuilder, Trainability};
use crate::engine::{self, DataFormat};

/// Three Keras layers (`Conv1`, `bn_Conv1`, `Conv1_relu`), or two when `activation` is false
/// (the linear bottleneck `block_N_project`, `block_N_project_BN`).
#[derive(Debug, Clone)]
pub struct ConvNorm {
    pub(crate) conv: Conv2d,
    pub(crate) norm: BatchNorm,
    activation: bool,
}

impl ConvNorm {
    /// A full convolution: `{conv}`, `{bn}` and, when given, `{relu}`.
    pub fn conv(
        b: &mut LayerBuilder,
        (conv, bn, relu): (&str, &str, Option<&str>),
        filters: usize,
        k: usize,
        stride: usize,
    ) -> Result<Self> {
        let conv = b.conv2d(conv, filters, k, stride)?;
        Self::finish(b, conv, bn, relu)
    }

    /// A depthwise 3x3 convolution with its BatchNorm and ReLU6.
    pub fn depthwise(b: &mut LayerBuilder, (conv, bn, relu): (&str, &str, &str), stride: usize) -> Result<Self> {
        let conv = b.depthwise(conv, stride)?;
        Self::finish(b, conv, bn, Some(relu))
    }

    fn finish(b: &mut LayerBuilder, conv: Conv2d, bn: &str, relu: Option<&str>) -> Result<Self> {
        let norm = b.batch_norm(bn)?;
        if let Some(relu) = relu {
            b.relu6(relu);
        }
        Ok(Self { conv, norm, activation: relu.is_some() })
    }

    /// The convolution's weight with the BatchNorm folded in (`w * scale`), and its bias (`shift`).
    pub fn folded(&self, t: Trainability) -> Result<(Tensor, Tensor)> {
        let (scale, shift) = self.norm.scale_shift(t)?;
        let w = self.conv.weight(t).broadcast_mul(&scale.reshape((scale.dim(0)?, 1, 1, 1))?)?;
        Ok((w, shift))
    }

    /// The layers on `x` in `format`; channels last runs on the engine only.
    pub fn forward(&self, x: &Tensor, t: Trainability, format: DataFormat) -> Result<Tensor> {
        // On the engine, BatchNorm folds into the convolution: `w * scale` and `shift` as its
        // bias. Exact in inference mode, and gamma and beta still get their gradients through
        // these two small products.
        if engine::supports(x) {
            let (w, shift) = self.folded(t)?;
            if let Some(y) = self.conv.forward_fused(x, &w, &shift, self.activation, format)? {
                return Ok(y);
            }
        }
        if format == DataFormat::ChannelsLast {
            candle_core::bail!("channels-last activations need the CPU engine (f32 on the CPU, engine enabled)")
        }
        self.norm.forward(&self.conv.forward(x, t)?, t, self.activation)
    }
}
