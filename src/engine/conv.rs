//! Dense KxK convolution (MobileNetV2's stem: 3x3, stride 2, over the RGB image) as im2col and one
//! matrix multiply per image, then bias and ReLU6. Candle's direct
//! convolution took a sixteenth of a phase-2 step on this one layer.
//!
//! Its input is the image, which needs no gradient: the backward pass is the weight (and bias)
//! gradient alone, `dW = Σ_n G[n] · cols(X[n])ᵀ`.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use gemm::Parallelism;

use super::matmul::{matmul, matmul_uninit, sum_over_images, Mat};
use super::epilogue::{epilogue_backward, Epilogue};
use super::depthwise_nchw::deinterleave;
use super::geometry::Pad;
use super::{contiguous_f32, dims4, output_written_in_chunks, DataFormat, Grads3};

/// Geometry of one convolution over `c x h x w` images with a `k x k` kernel.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    top: usize,
    left: usize,
    ho: usize,
    wo: usize,
}

impl Geometry {
    fn new((c, h, w): (usize, usize, usize), k: usize, stride: usize, pad: Pad) -> Result<Self> {
        let (hp, wp) = (h + pad[0] + pad[1], w + pad[2] + pad[3]);
        if hp < k || wp < k {
            candle_core::bail!("conv: padded input {hp}x{wp} is smaller than the {k}x{k} kernel")
        }
        let (ho, wo) = ((hp - k) / stride + 1, (wp - k) / stride + 1);
        Ok(Self { c, h, w, k, stride, top: pad[0], left: pad[2], ho, wo })
    }

    /// Rows of the patch matrix: one per kernel tap `(channel, ky, kx)`.
    fn taps(&self) -> usize {
        self.c * self.k * self.k
    }

    fn pixels(&self) -> usize {
        self.ho * self.wo
    }

    /// One image's patches as a `taps x pixels` matrix (zero where a window reaches the padding).
    /// Each input row is padded once; at stride 2 it is also split into its even and odd
    /// columns, so that the row of every kernel column is a contiguous copy.
    fn im2col(&self, x: &[f32], cols: &mut [f32]) {
        let (k, s, wo, pixels) = (self.k, self.stride, self.wo, self.pixels());
        // The padded columns the windows read (an even number, for the two phases at stride 2).
        let width = ((wo - 1) * s + k).next_multiple_of(2);
        let (mut padded, mut even, mut odd) = (vec![0f32; width], vec![0f32; width / 2], vec![0f32; width / 2]);
        for ch in 0..self.c {
            for ky in 0..k {
                let first_tap = (ch * k + ky) * k;
                for oy in 0..self.ho {
                    // Where kernel column `kx`'s values for output row `oy` go.
                    let dst = |kx: usize| (first_tap + kx) * pixels + oy * wo..(first_tap + kx) * pixels + (oy + 1) * wo;
                    let Some(iy) = (oy * s + ky).checked_sub(self.top).filter(|&iy| iy < self.h) else {
                        (0..k).for_each(|kx| cols[dst(kx)].fill(0.0));
                        continue;
                    };
                    let src = &x[(ch * self.h + iy) * self.w..(ch * self.h + iy + 1) * self.w];
                    let inside = self.w.min(width.saturating_sub(self.left));
                    padded.fill(0.0);
                    padded[self.left..self.left + inside].copy_from_slice(&src[..inside]);
                    if s == 2 {
                        deinterleave(&padded, &mut even, &mut odd);
                    }
                    for kx in 0..k {
                        let d = &mut cols[dst(kx)];
                        match s {
                            1 => d.copy_from_slice(&padded[kx..kx + wo]),
                            2 => d.copy_from_slice(&if kx % 2 == 0 { &even } else { &odd }[kx / 2..kx / 2 + wo]),
                            _ => d.iter_mut().enumerate().for_each(|(ox, v)| *v = padded[ox * s + kx]),
                        }
                    }
                }
            }
        }
    }
}

/// `(x [N, C, H, W], w [Cout, C, k, k], bias [Cout]) -> y [N, Cout, Ho, Wo]`, then ReLU6.
struct Forward {
    stride: usize,
    pad: Pad,
    relu6: bool,
}

impl CustomOp3 for Forward {
    fn name(&self) -> &'static str {
        "conv-dense"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = dims4(xl)?;
        let (c_out, _, k, _) = dims4(wl)?;
        let g = Geometry::new((c, h, w), k, self.stride, self.pad)?;
        let (x, wt, bias) = (contiguous_f32(xs, xl)?, contiguous_f32(ws, wl)?, contiguous_f32(bs, bl)?);
        let (taps, pixels) = (g.taps(), g.pixels());
        let a = Mat::new(wt, c_out, taps);
        // One image per task: its patch matrix and its output stay in this core's cache.
        let y = output_written_in_chunks(n * c_out * pixels, c_out * pixels, Vec::new, |cols, i, out| {
            cols.resize(taps * pixels, 0.0);
            g.im2col(&x[i * c * h * w..(i + 1) * c * h * w], cols);
            let out = matmul_uninit(out, &a, &Mat::new(cols, taps, pixels), Parallelism::None);
            out.chunks_exact_mut(pixels).zip(bias).for_each(|(plane, &b)| Epilogue::new(b, self.relu6).apply(plane));
            out
        });
        Ok((CpuStorage::F32(y), Shape::from((n, c_out, g.ho, g.wo))))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, bias: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Grads3> {
        if x.track_op() {
            candle_core::bail!("the dense convolution kernel has no input gradient (its input is meant to be the image)")
        }
        let (dz, dbias) = epilogue_backward(self.relu6, y, grad, bias.track_op(), DataFormat::ChannelsFirst)?;
        let filter = BackwardFilter { stride: self.stride, pad: self.pad, k: w.dim(2)? };
        let dw = if w.track_op() { Some(dz.apply_op2_no_bwd(x, &filter)?) } else { None };
        Ok((None, dw, dbias))
    }
}

/// `dW = Σ_n G[n] · cols(X[n])ᵀ`, from `(grad, x)`.
struct BackwardFilter {
    stride: usize,
    pad: Pad,
    k: usize,
}

impl CustomOp2 for BackwardFilter {
    fn name(&self) -> &'static str {
        "conv-dense-backward-filter"
    }

    fn cpu_fwd(&self, gs: &CpuStorage, gl: &Layout, xs: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c_out, _, _) = dims4(gl)?;
        let (_, c, h, w) = dims4(xl)?;
        let g = Geometry::new((c, h, w), self.k, self.stride, self.pad)?;
        let (grad, x) = (contiguous_f32(gs, gl)?, contiguous_f32(xs, xl)?);
        let (taps, pixels) = (g.taps(), g.pixels());
        let dw = sum_over_images(n, c_out * taps, |i, dw, cols: &mut Vec<f32>| {
            cols.resize(taps * pixels, 0.0);
            g.im2col(&x[i * c * h * w..(i + 1) * c * h * w], cols);
            let gi = Mat::new(&grad[i * c_out * pixels..(i + 1) * c_out * pixels], c_out, pixels);
            matmul(dw, &gi, &Mat::t(cols, pixels, taps), true, Parallelism::None);
        });
        Ok((CpuStorage::F32(dw), Shape::from((c_out, c, self.k, self.k))))
    }
}

/// `act(conv(x, w) + bias)` for `x [N, C, H, W]` (data: no gradient flows into it), `w [Cout, C,
/// k, k]` and `bias [Cout]`, with ReLU6 as `act` when `relu6`; differentiable in `w` and `bias`.
pub fn conv2d_dense(x: &Tensor, w: &Tensor, bias: &Tensor, stride: usize, pad: Pad, relu6: bool) -> Result<Tensor> {
    x.contiguous()?.apply_op3(&w.contiguous()?, &bias.contiguous()?, Forward { stride, pad, relu6 })
}
