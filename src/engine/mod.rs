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
//! rows at a time, so that their large expanded activations never leave the cache. Trainable
//! blocks run as one op of the graph too ([`trainable_inverted_residual`]), so that the
//! gradients of their expanded activations never pass through candle's gradient store.

/// Whether the CPU version of a `#[multiversion]` kernel being compiled has fused multiply-adds
/// (every x86 target the kernels name, and every aarch64); only inside such a kernel.
macro_rules! has_fma {
    () => {
        multiversion::target::target_cfg_f!(any(target_feature = "fma", target_arch = "aarch64"))
    };
}

mod block;
mod conv;
mod depthwise;
mod depthwise_nchw;
mod depthwise_nhwc;
mod epilogue;
mod geometry;
mod matmul;
mod pointwise;
mod trainable_block;

pub use block::{inverted_residual, runs_in_one_pass, Folded, InvertedResidualWeights};
pub use conv::conv2d_dense;
pub use depthwise::depthwise_conv3x3;
pub use geometry::Pad;
pub use pointwise::pointwise_conv;
pub use trainable_block::{trainable_inverted_residual, BlockLayout};

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

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

/// What a fresh output buffer holds before its kernel writes it: zero, or NaN in this crate's
/// unit tests, which thereby prove that every kernel writes every element of its output.
const FRESH: f32 = if cfg!(test) { f32::NAN } else { 0.0 };

/// A new `len`-element output, written `chunk` elements at a time by `fill(scratch, index,
/// piece)` on the rayon pool. Each piece is initialised by the task that then fills it, while it
/// is in that core's cache: one pass over memory instead of a serial zeroing pass before the work.
fn output_in_chunks<S>(len: usize, chunk: usize, scratch: impl Fn() -> S + Sync + Send, fill: impl Fn(&mut S, usize, &mut [f32]) + Sync) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len].par_chunks_mut(chunk.max(1)).enumerate().for_each_init(scratch, |s, (i, piece)| fill(s, i, initialised(piece)));
    // SAFETY: the pieces cover the first `len` elements, and `initialised` wrote every one.
    unsafe { out.set_len(len) };
    out
}

/// [`output_in_chunks`] for kernels that write every element of their piece themselves (a matrix
/// multiply, a stencil that covers every channel of every pixel): `write` gets the piece
/// uninitialised and returns it initialised, so memory is touched once. In unit tests the
/// piece starts as NaN all the same, to catch a kernel that misses an element.
fn output_written_in_chunks<S>(
    len: usize,
    chunk: usize,
    scratch: impl Fn() -> S + Sync + Send,
    write: impl for<'p> Fn(&mut S, usize, &'p mut [MaybeUninit<f32>]) -> &'p mut [f32] + Sync,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len].par_chunks_mut(chunk.max(1)).enumerate().for_each_init(scratch, |s, (i, piece)| {
        if cfg!(test) {
            piece.fill(MaybeUninit::new(FRESH));
        }
        let (start, n) = (piece.as_ptr() as usize, piece.len());
        let written = write(s, i, piece);
        // The only way to that memory as `&mut [f32]` is through code that initialised it.
        assert!(written.as_ptr() as usize == start && written.len() == n, "a kernel must hand back the piece it was given");
    });
    // SAFETY: the pieces cover the first `len` elements, and each came back initialised.
    unsafe { out.set_len(len) };
    out
}

/// `piece` set to [`FRESH`], as the `f32`s it now holds.
fn initialised(piece: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    piece.fill(MaybeUninit::new(FRESH));
    // SAFETY: every element was just written.
    unsafe { assume_written(piece) }
}

/// `a * b + c`, in one instruction and one rounding when `FUSED` (a kernel passes [`has_fma!`]);
/// otherwise a multiply and an add, as without the instruction `mul_add` is a library call.
#[inline(always)]
fn madd<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FUSED {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `piece` as the `f32`s it holds.
///
/// # Safety
/// Every element of `piece` has been written.
unsafe fn assume_written(piece: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: initialised, as the caller promises, and `MaybeUninit<f32>` has the layout of `f32`.
    unsafe { &mut *(piece as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// The f32 data behind a contiguous layout.
fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("engine kernels need contiguous input, got strides {:?}", l.stride()),
    }
}

#[cfg(test)]
mod tests;
