//! The fast CPU engine: MobileNetV2's convolutions (depthwise 3x3, 1x1 as matrix multiplies, the
//! dense stem) as candle custom ops with their own backward passes, each with its BatchNorm
//! folded in and ReLU6 fused (`y = act(conv(x, w * scale) + shift)`, see [`epilogue`]). The model
//! calls these on CPU f32 tensors and falls back to stock candle ops elsewhere (CUDA).
//!
//! The 1x1 and depthwise convolutions take either [`DataFormat`]: channels first suits the large
//! planes at the start of the network, channels last the small ones of its tail, where a whole
//! batch's 1x1 convolution is one matrix multiply and the depthwise stencil runs across channels.
//!
//! Frozen inverted-residual blocks on channels-first planes (everything in front of phase 2's
//! trainable layers, and prediction) run as one op per block ([`inverted_residual`]), a band of
//! rows at a time, so that their large expanded activations never leave the cache.

mod block;
mod conv;
mod depthwise;
mod depthwise_nhwc;
mod epilogue;
mod matmul;
mod pointwise;

pub use block::{inverted_residual, runs_in_one_pass, Folded, InvertedResidualWeights};
pub use conv::conv2d_dense;
pub use depthwise::{depthwise_conv3x3, Pad};
pub use pointwise::pointwise_conv;

use candle_core::{CpuStorage, Layout, Result, Shape, Tensor};

/// Whether the custom kernels run on `device`: the CPU (elsewhere, stock candle ops).
pub fn runs_on(device: &candle_core::Device) -> bool {
    device.is_cpu()
}

/// Whether the custom kernels apply to this tensor: on the CPU, in f32.
pub fn supports(x: &Tensor) -> bool {
    runs_on(x.device()) && x.dtype() == candle_core::DType::F32
}

/// Where the channels are in a 4-D activation (Keras' `data_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum DataFormat {
    /// `[N, C, H, W]`, candle's and PyTorch's order: each channel's plane is contiguous.
    ChannelsFirst,
    /// `[N, H, W, C]`, TensorFlow's order: each pixel's channels are contiguous.
    ChannelsLast,
}

impl DataFormat {
    /// `(n, c, h, w)` of a tensor in this format.
    fn nchw(self, l: &Layout) -> Result<(usize, usize, usize, usize)> {
        let (a, b, c, d) = l.shape().dims4()?;
        Ok(match self {
            DataFormat::ChannelsFirst => (a, b, c, d),
            DataFormat::ChannelsLast => (a, d, b, c),
        })
    }

    /// The shape of `n` images of `c` channels, `h x w`, in this format.
    fn shape(self, n: usize, c: usize, h: usize, w: usize) -> Shape {
        match self {
            DataFormat::ChannelsFirst => Shape::from((n, c, h, w)),
            DataFormat::ChannelsLast => Shape::from((n, h, w, c)),
        }
    }

    /// `x`, in this format, rewritten in format `to` (differentiable).
    pub fn convert(self, x: &Tensor, to: DataFormat) -> Result<Tensor> {
        match (self, to) {
            (DataFormat::ChannelsFirst, DataFormat::ChannelsLast) => x.permute((0, 2, 3, 1))?.contiguous(),
            (DataFormat::ChannelsLast, DataFormat::ChannelsFirst) => x.permute((0, 3, 1, 2))?.contiguous(),
            _ => Ok(x.clone()),
        }
    }
}

/// The gradients of a three-input op: input, weight, bias.
type Grads3 = (Option<Tensor>, Option<Tensor>, Option<Tensor>);

fn dims4(l: &Layout) -> Result<(usize, usize, usize, usize)> {
    l.shape().dims4()
}

/// A `len`-element output that `fill` writes completely, without zeroing it first: the kernels
/// overwrite every element, and zero-filling cost a tenth of a training step.
fn uninit_output(len: usize, fill: impl FnOnce(&mut [f32])) -> Vec<f32> {
    let mut out: Vec<f32> = Vec::with_capacity(len);
    // SAFETY: the slice covers the allocated capacity; every f32 bit pattern is valid, `fill`
    // writes each element before anything reads it, and the length is set only after it returns
    // (candle's own CPU kernels allocate their outputs the same way).
    fill(unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr(), len) });
    unsafe { out.set_len(len) };
    out
}

/// The f32 data behind a contiguous layout.
fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("engine kernels need contiguous input, got strides {:?}", l.stride()),
    }
}
