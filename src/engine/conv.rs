//! Dense KxK convolution (MobileNetV2's stem: 3x3, stride 2, over the RGB image) as im2col and one
//! matrix multiply per image, with a frozen BatchNorm (+ ReLU6) folded in. Candle's direct
//! convolution took a sixteenth of a phase-2 step on this one layer.
//!
//! Its input is the image, which needs no gradient: the backward pass is the weight gradient
//! alone, `dW = Σ_n G[n] · cols(X[n])ᵀ`.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use super::matmul::{matmul, Mat};
use super::{contiguous_f32, dims4, uninit_output, FoldedBn, Pad};

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
    fn im2col(&self, x: &[f32], cols: &mut [f32]) {
        let (k, s, wo) = (self.k, self.stride, self.wo);
        for (tap, row) in cols.chunks_exact_mut(self.pixels()).enumerate() {
            let (ch, ky, kx) = (tap / (k * k), tap / k % k, tap % k);
            for (oy, dst) in row.chunks_exact_mut(wo).enumerate() {
                let Some(iy) = (oy * s + ky).checked_sub(self.top).filter(|&iy| iy < self.h) else {
                    dst.fill(0.0);
                    continue;
                };
                let src = &x[(ch * self.h + iy) * self.w..(ch * self.h + iy + 1) * self.w];
                for (ox, d) in dst.iter_mut().enumerate() {
                    *d = (ox * s + kx).checked_sub(self.left).and_then(|ix| src.get(ix)).copied().unwrap_or(0.0);
                }
            }
        }
    }
}

/// `(x [N, C, H, W], w [Cout, C, k, k]) -> y [N, Cout, Ho, Wo]`.
struct Forward {
    stride: usize,
    pad: Pad,
    bn: Option<FoldedBn>,
}

impl CustomOp2 for Forward {
    fn name(&self) -> &'static str {
        "conv-dense"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ws: &CpuStorage, wl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = dims4(xl)?;
        let (c_out, _, k, _) = dims4(wl)?;
        let g = Geometry::new((c, h, w), k, self.stride, self.pad)?;
        let (x, wt) = (contiguous_f32(xs, xl)?, contiguous_f32(ws, wl)?);
        let (taps, pixels) = (g.taps(), g.pixels());
        let folded: Vec<f32> = match &self.bn {
            Some(bn) => wt.iter().enumerate().map(|(i, v)| v * bn.scale[i / taps]).collect(),
            None => wt.to_vec(),
        };
        let a = Mat::new(&folded, c_out, taps);
        let y = uninit_output(n * c_out * pixels, |y| {
            // One image per task: its patch matrix and its output stay in this core's cache.
            y.par_chunks_mut(c_out * pixels).enumerate().for_each_init(Vec::new, |cols, (i, out)| {
                cols.resize(taps * pixels, 0.0);
                g.im2col(&x[i * c * h * w..(i + 1) * c * h * w], cols);
                matmul(out, &a, &Mat::new(cols, taps, pixels), false, Parallelism::None);
                if let Some(bn) = &self.bn {
                    out.chunks_exact_mut(pixels).enumerate().for_each(|(ch, plane)| bn.epilogue(ch).apply(plane));
                }
            })
        });
        Ok((CpuStorage::F32(y), Shape::from((n, c_out, g.ho, g.wo))))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        if x.track_op() {
            candle_core::bail!("the dense convolution kernel has no input gradient (its input is meant to be the image)")
        }
        let dw = grad.contiguous()?.apply_op2_no_bwd(x, &BackwardFilter { stride: self.stride, pad: self.pad, k: w.dim(2)? })?;
        Ok((None, Some(dw)))
    }
}

/// `dW = Σ_n G[n] · cols(X[n])ᵀ`, from `(grad, x)`: partial sums per worker, then added up.
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
        let dw = (0..n)
            .into_par_iter()
            .fold(
                || (vec![0f32; c_out * taps], Vec::new()),
                |(mut dw, mut cols), i| {
                    cols.resize(taps * pixels, 0.0);
                    g.im2col(&x[i * c * h * w..(i + 1) * c * h * w], &mut cols);
                    let gi = Mat::new(&grad[i * c_out * pixels..(i + 1) * c_out * pixels], c_out, pixels);
                    matmul(&mut dw, &gi, &Mat::t(&cols, pixels, taps), true, Parallelism::None);
                    (dw, cols)
                },
            )
            .map(|(dw, _)| dw)
            .reduce(
                || vec![0f32; c_out * taps],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                    a
                },
            );
        Ok((CpuStorage::F32(dw), Shape::from((c_out, c, self.k, self.k))))
    }
}

/// `x [N, C, H, W]` (data: no gradient flows into it) with `w [Cout, C, k, k]`, differentiable in `w`.
pub fn conv2d_dense(x: &Tensor, w: &Tensor, stride: usize, pad: Pad) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&w.contiguous()?, Forward { stride, pad, bn: None })
}

/// The dense convolution with a frozen BatchNorm (and ReLU6) folded in; inference only.
pub fn conv2d_dense_bn(x: &Tensor, w: &Tensor, stride: usize, pad: Pad, bn: FoldedBn) -> Result<Tensor> {
    x.contiguous()?.apply_op2_no_bwd(&w.contiguous()?, &Forward { stride, pad, bn: Some(bn) })
}
