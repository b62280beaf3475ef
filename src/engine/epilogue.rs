//! What every convolution of the engine ends with: the folded BatchNorm's shift as a per-channel
//! bias, then ReLU6 or nothing, `y = act(conv(x, w) + bias)`; and its backward, shared by the
//! three convolutions: the activation's mask applied to the incoming gradient once (`dz`), and
//! the bias gradient as per-channel sums of `dz`.
//!
//! Folding BatchNorm into the convolution (`w * scale`, `bias = shift`) is exact in inference
//! mode, and it is differentiable: `scale` and `shift` are small candle tensors computed from
//! gamma and beta, so candle's autograd carries their gradients, while the big activations pass
//! through one op instead of three (convolution, affine map, clamp), each with its own buffer.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::matmul::sum_over_images;

use super::{assume_written, contiguous_f32, output_written_in_chunks, DataFormat};

/// Pixels per task of the channels-last channel sums.
const ROWS_PER_SUM: usize = 256;

/// `(v + bias).max(lo).min(hi)` for one channel.
#[derive(Debug, Clone, Copy)]
pub(super) struct Epilogue {
    pub(super) bias: f32,
    pub(super) lo: f32,
    pub(super) hi: f32,
}

impl Epilogue {
    pub(super) fn new(bias: f32, relu6: bool) -> Self {
        let (lo, hi) = if relu6 { (0.0, 6.0) } else { (f32::NEG_INFINITY, f32::INFINITY) };
        Self { bias, lo, hi }
    }

    /// Written as comparisons rather than `max`/`min`, whose NaN rules cost two instructions
    /// each: these are one (`maxps`/`minps`), and a NaN still comes out as NaN.
    #[inline(always)]
    pub(super) fn on(self, v: f32) -> f32 {
        let v = v + self.bias;
        let v = if self.lo > v { self.lo } else { v };
        if self.hi < v { self.hi } else { v }
    }

    /// Applies the epilogue to `values` in place.
    pub(super) fn apply(self, values: &mut [f32]) {
        apply_epilogue(values, self)
    }
}

#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn apply_epilogue(values: &mut [f32], e: Epilogue) {
    values.iter_mut().for_each(|v| *v = e.on(*v));
}

/// The epilogue on channels-last rows: `rows[r][c] = act(rows[r][c] + bias[c])`.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub(super) fn apply_rows(rows: &mut [f32], bias: &[f32], relu6: bool) {
    let e = Epilogue::new(0.0, relu6);
    for row in rows.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v = e.on(*v + b);
        }
    }
}

/// The gradient of the convolution's raw output and, with `bias_grad`, of the bias, from the
/// op's output `y` and its incoming gradient.
pub(super) fn epilogue_backward(relu6: bool, y: &Tensor, grad: &Tensor, bias_grad: bool, format: DataFormat) -> Result<(Tensor, Option<Tensor>)> {
    let grad = grad.contiguous()?;
    let dz = if relu6 { grad.apply_op2_no_bwd(y, &Relu6Mask)? } else { grad };
    let dbias = bias_grad.then(|| dz.apply_op1_no_bwd(&ChannelSums { format })).transpose()?;
    Ok((dz, dbias))
}

/// `dz = grad` where ReLU6 passed (`0 < y < 6`, read off the output), else 0.
pub(super) struct Relu6Mask;

/// Writes every element of `out` (which is as long as `g` and `y`).
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn mask_chunk(out: &mut [MaybeUninit<f32>], g: &[f32], y: &[f32]) {
    assert!(g.len() == out.len() && y.len() == out.len());
    for ((o, g), y) in out.iter_mut().zip(g).zip(y) {
        o.write(if *y > 0.0 && *y < 6.0 { *g } else { 0.0 });
    }
}

/// `values[i] = 0` where ReLU6 did not pass (`y[i]` is not strictly between 0 and 6): the mask
/// applied to a gradient while a kernel has it in cache.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub(super) fn mask_in_place(values: &mut [f32], y: &[f32]) {
    let y = &y[..values.len()];
    for (v, y) in values.iter_mut().zip(y) {
        *v = if *y > 0.0 && *y < 6.0 { *v } else { 0.0 };
    }
}

impl CustomOp2 for Relu6Mask {
    fn name(&self) -> &'static str {
        "relu6-mask"
    }

    fn cpu_fwd(&self, gs: &CpuStorage, gl: &Layout, ys: &CpuStorage, yl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (g, y) = (contiguous_f32(gs, gl)?, contiguous_f32(ys, yl)?);
        const CHUNK: usize = 1 << 14;
        let dz = output_written_in_chunks(g.len(), CHUNK, || (), |_, i, o| {
            let at = i * CHUNK..i * CHUNK + o.len();
            mask_chunk(o, &g[at.clone()], &y[at]);
            // SAFETY: `mask_chunk` wrote every element of `o`.
            unsafe { assume_written(o) }
        });
        Ok((CpuStorage::F32(dz), gl.shape().clone()))
    }
}

/// `[N, C, H, W] -> [C]` (or `[N, H, W, C] -> [C]`): sums over images and pixels.
pub(super) struct ChannelSums {
    pub(super) format: DataFormat,
}

/// `acc[c] += Σ_r rows[r][c]`.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn add_rows(acc: &mut [f32], rows: &[f32]) {
    for row in rows.chunks_exact(acc.len()) {
        acc.iter_mut().zip(row).for_each(|(a, v)| *a += v);
    }
}

/// The sum of a plane, in 16 lanes so that it vectorises.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn plane_sum(v: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let chunks = v.chunks_exact(16);
    let rest: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        lanes.iter_mut().zip(c).for_each(|(l, x)| *l += x);
    }
    lanes.iter().sum::<f32>() + rest
}

impl CustomOp1 for ChannelSums {
    fn name(&self) -> &'static str {
        "channel-sums"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = self.format.nchw(l)?;
        let v = contiguous_f32(s, l)?;
        let hw = h * w;
        if self.format == DataFormat::ChannelsLast {
            // Blocks of pixels, added up in a fixed grouping.
            let sums = sum_over_images(v.len().div_ceil(ROWS_PER_SUM * c), c, |b, acc, _: &mut ()| {
                add_rows(acc, &v[b * ROWS_PER_SUM * c..((b + 1) * ROWS_PER_SUM * c).min(v.len())])
            });
            return Ok((CpuStorage::F32(sums), Shape::from(c)));
        }
        let sums: Vec<f32> = (0..c)
            .into_par_iter()
            .map(|ch| (0..n).map(|i| plane_sum(&v[(i * c + ch) * hw..(i * c + ch + 1) * hw])).sum())
            .collect();
        Ok((CpuStorage::F32(sums), Shape::from(c)))
    }
}
