//! The fast CPU engine: MobileNetV2's hot layers as candle custom ops with their own backward
//! passes (depthwise 3x3, fused BatchNorm + ReLU6) and 1x1 convolutions as plain matrix multiplies.
//! The model calls these on CPU f32 tensors and falls back to stock candle ops elsewhere (CUDA).

mod affine;
mod conv;
mod depthwise;
mod matmul;
mod pointwise;

pub use affine::affine_act;
pub use conv::{conv2d_dense, conv2d_dense_bn};
pub use depthwise::{depthwise_conv3x3, depthwise_conv3x3_bn, Pad};
pub use pointwise::{pointwise_conv, pointwise_conv_bn};

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
        KEEP_FREED_MEMORY.call_once(keep_freed_memory);
    }
    yes
}

static KEEP_FREED_MEMORY: std::sync::Once = std::sync::Once::new();

/// Every op allocates its output; glibc serves large blocks with fresh `mmap`s and unmaps them on
/// free, so each step page-faults its activations in again (a fifth of inference time, and a
/// tenth of a training step for the blocks over 32 MB, such as a batch of 112x112 activations).
/// Serving every block from the heap and never trimming it lets steps reuse freed memory, as the
/// arena allocators of TensorFlow and PyTorch do. Process-wide, once, and only on glibc.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tunables; it is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 512 << 20);
    }
}

fn dims4(l: &Layout) -> Result<(usize, usize, usize, usize)> {
    l.shape().dims4()
}

/// A frozen inference-mode BatchNorm (`x * scale + shift`, per channel) and whether ReLU6
/// follows, to be folded into the convolution before it.
#[derive(Debug, Clone)]
pub struct FoldedBn {
    pub scale: Vec<f32>,
    pub shift: Vec<f32>,
    pub relu6: bool,
}

impl FoldedBn {
    fn epilogue(&self, channel: usize) -> Epilogue {
        let (lo, hi) = if self.relu6 { (0.0, 6.0) } else { (f32::NEG_INFINITY, f32::INFINITY) };
        Epilogue { bias: self.shift[channel], lo, hi }
    }
}

/// What a kernel does to each output before storing it: `(v + bias).max(lo).min(hi)`.
#[derive(Debug, Clone, Copy)]
struct Epilogue {
    bias: f32,
    lo: f32,
    hi: f32,
}

impl Epilogue {
    const IDENTITY: Self = Self { bias: 0.0, lo: f32::NEG_INFINITY, hi: f32::INFINITY };

    /// Applies the epilogue to `values` in place.
    fn apply(self, values: &mut [f32]) {
        apply_epilogue(values, self)
    }
}

#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn apply_epilogue(values: &mut [f32], e: Epilogue) {
    values.iter_mut().for_each(|v| *v = (*v + e.bias).max(e.lo).min(e.hi));
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
