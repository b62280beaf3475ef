//! The fast CPU engine: MobileNetV2's convolutions (depthwise 3x3, 1x1 as matrix multiplies, the
//! dense stem) as candle custom ops with their own backward passes, each with its BatchNorm
//! folded in and ReLU6 fused (`y = act(conv(x, w * scale) + shift)`, see [`epilogue`]). The model
//! calls these on CPU f32 tensors and falls back to stock candle ops elsewhere (CUDA).

mod conv;
mod depthwise;
mod epilogue;
mod matmul;
mod pointwise;

pub use conv::conv2d_dense;
pub use depthwise::{depthwise_conv3x3, Pad};
pub use pointwise::pointwise_conv;

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{CpuStorage, Layout, Result, Tensor};

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns the custom kernels off (stock candle ops everywhere) or back on, for comparisons.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether the custom kernels apply to this tensor: enabled, CPU, f32.
pub fn supports(x: &Tensor) -> bool {
    let yes = ENABLED.load(Ordering::Relaxed) && x.device().is_cpu() && x.dtype() == candle_core::DType::F32;
    if yes {
        crate::memory::keep_freed_memory();
    }
    yes
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
