//! The inverted residual block with linear bottleneck (Sandler et al. 2018, Figure 3b).

use candle_core::{Result, Tensor};

use super::conv_norm::ConvNorm;
use super::layers::{spatial, LayerBuilder, Trainability};
use crate::engine::{self, BlockLayout, DataFormat, Folded, InvertedResidualWeights};

/// `expand` (1x1, ReLU6) → `depthwise` (3x3, ReLU6) → `project` (1x1, linear), plus the input
/// when shapes allow. Keras names: `block_{id}_expand`, ..., `block_{id}_add`; block 0 is
/// `expanded_conv` and has no expansion.
#[derive(Debug, Clone)]
pub struct InvertedResidual {
    pub(crate) expand: Option<ConvNorm>,
    pub(crate) depthwise: ConvNorm,
    pub(crate) project: ConvNorm,
    residual: bool,
}

impl InvertedResidual {
    pub fn new(b: &mut LayerBuilder, block_id: usize, filters: usize, expansion: usize, stride: usize) -> Result<Self> {
        let in_channels = b.channels();
        let p = if block_id == 0 { "expanded_conv_".to_string() } else { format!("block_{block_id}_") };
        let n = |suffix: &str| format!("{p}{suffix}");
        let expand = if block_id == 0 {
            None
        } else {
            let names = (n("expand"), n("expand_BN"), n("expand_relu"));
            let names = (names.0.as_str(), names.1.as_str(), Some(names.2.as_str()));
            Some(ConvNorm::conv(b, names, expansion * in_channels, 1, 1)?)
        };
        if stride == 2 {
            b.zero_pad(&n("pad"));
        }
        let depthwise = ConvNorm::depthwise(b, (&n("depthwise"), &n("depthwise_BN"), &n("depthwise_relu")), stride)?;
        let project = ConvNorm::conv(b, (&n("project"), &n("project_BN"), None), filters, 1, 1)?;
        let residual = stride == 1 && in_channels == filters;
        if residual {
            b.add(&n("add"));
        }
        Ok(Self { expand, depthwise, project, residual })
    }

    pub fn forward(&self, x: &Tensor, t: Trainability, format: DataFormat) -> Result<Tensor> {
        // A frozen block on frozen input needs no graph: the engine runs it in one pass.
        if format == DataFormat::ChannelsFirst && !t.trains(self.project.norm.index) && engine::runs_in_one_pass(x)? {
            return engine::inverted_residual(x, &self.folded(x, t)?);
        }
        // A block that trains whole is one op of the graph on the engine, its own backward inside.
        let first = self.expand.as_ref().unwrap_or(&self.depthwise);
        if engine::supports(x) && t.trains(first.conv.index) {
            return self.forward_trainable(x, t, format);
        }
        let h = match &self.expand {
            Some(expand) => expand.forward(x, t, format)?,
            None => x.clone(),
        };
        let y = self.project.forward(&self.depthwise.forward(&h, t, format)?, t, format)?;
        if self.residual {
            y + x
        } else {
            Ok(y)
        }
    }

    /// The block as the engine's trainable op: the folded layers packed into one weight and one
    /// bias tensor, which candle differentiates back to each layer's kernel, gamma and beta.
    fn forward_trainable(&self, x: &Tensor, t: Trainability, format: DataFormat) -> Result<Tensor> {
        let (mut weights, mut biases) = (Vec::new(), Vec::new());
        for layer in self.expand.iter().chain([&self.depthwise, &self.project]) {
            let (w, b) = layer.folded(t)?;
            weights.push(w.flatten_all()?);
            biases.push(b);
        }
        let layout = BlockLayout {
            expand: self.expand.is_some(),
            expanded: self.depthwise.norm.gamma.dim(0)?,
            outputs: self.project.norm.gamma.dim(0)?,
            stride: self.depthwise.conv.stride(),
            pad: self.depthwise.conv.pad(spatial(x, format)?),
            residual: self.residual,
            format,
        };
        engine::trainable_inverted_residual(x, &Tensor::cat(&weights, 0)?, &Tensor::cat(&biases, 0)?, layout)
    }

    /// The block's folded layers for the engine, for input `x` (channels first).
    fn folded(&self, x: &Tensor, t: Trainability) -> Result<InvertedResidualWeights> {
        let fold = |layer: &ConvNorm| -> Result<Folded> {
            let (w, b) = layer.folded(t)?;
            Folded::new(&w, &b)
        };
        let (_, _, h, w) = x.dims4()?;
        Ok(InvertedResidualWeights {
            expand: self.expand.as_ref().map(fold).transpose()?,
            depthwise: fold(&self.depthwise)?,
            stride: self.depthwise.conv.stride(),
            pad: self.depthwise.conv.pad((h, w)),
            project: fold(&self.project)?,
            residual: self.residual,
        })
    }
}
