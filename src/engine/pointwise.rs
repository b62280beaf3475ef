//! 1x1 convolution (+ bias and ReLU6) as matrix multiplies, straight into the output buffer (no
//! im2col, no zero fill). Channels first, one multiply per image (`W · X[n]`); channels last, the
//! whole batch is one `pixels x channels` matrix, multiplied a block of pixels at a time
//! (`X · Wᵀ`). Weight gradients are summed inside the multiplies instead of materialising one
//! gradient per image.


use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use gemm::Parallelism;

use super::matmul::{matmul, matmul_strided_uninit, matmul_uninit, sum_over_images, Mat, PARTIALS};
use super::epilogue::{apply_rows, epilogue_backward, mask_in_place, Epilogue};
use super::{assume_written, contiguous_f32, output_written_in_chunks, DataFormat, Grads3};

/// Output floats per multiply: about a quarter of a core's L2 cache.
const BLOCK_FLOATS: usize = 1 << 17;

/// `out[i] = a · x[i]` for every image `i` of `x` (`[N, K, HW]`), `a` being `M x K`; `out` is
/// `[N, M, HW]`. Images in parallel, each multiply on one core: with AVX-512 even the 7x7 planes
/// multiply as fast this way as regrouped into one whole-batch multiply, without the copies.
/// Large planes are multiplied a block of columns at a time, and `finish(row, offset, values)`
/// runs on each row's piece of a block (`offset`: where it starts in `out`) while it is in cache: on the 112x112 layers a whole image's
/// output is larger than the cache, and a separate pass for the epilogue read it all from memory
/// again. The multiplies write the output without reading it, so it is never zeroed first.
fn matmul_images(a: &Mat, x: &[f32], hw: usize, finish: impl Fn(usize, usize, &mut [f32]) + Sync) -> Vec<f32> {
    let (m, k) = (a.rows, a.cols);
    let block = (BLOCK_FLOATS / m.max(1)).next_multiple_of(64).min(hw).max(1);
    let n = x.len() / (k * hw).max(1);
    output_written_in_chunks(n * m * hw, m * hw, || (), |_, i, o| {
        let xi = Mat::new(&x[i * k * hw..(i + 1) * k * hw], k, hw);
        for start in (0..hw).step_by(block) {
            let columns = start..(start + block).min(hw);
            matmul_strided_uninit(&mut o[start..], hw, a, &xi.columns(columns.clone()), Parallelism::None);
            for (row, values) in o.chunks_exact_mut(hw).enumerate() {
                // SAFETY: the multiply just wrote these columns of every row.
                finish(row, (i * m + row) * hw + start, unsafe { assume_written(&mut values[columns.clone()]) });
            }
        }
        // SAFETY: the blocks of columns cover every column of every row.
        unsafe { assume_written(o) }
    })
}

/// `out = x · b` for channels-last `x` (`pixels x k`), a block of pixels per task, each multiply
/// on one core, and `finish(offset, block)` on each block of `out` (starting at `offset`) while
/// it is in cache.
fn matmul_rows(x: &[f32], k: usize, b: &Mat, finish: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    let rows = x.len() / k;
    let block = (BLOCK_FLOATS / b.cols.max(k)).max(16).min(rows.max(1));
    // One image's 7x7 pixels make a single block: gemm then splits that one multiply instead.
    let parallelism = if rows.div_ceil(block) < rayon::current_num_threads() { Parallelism::Rayon(0) } else { Parallelism::None };
    output_written_in_chunks(rows * b.cols, block * b.cols, || (), |_, i, o| {
        let xb = &x[i * block * k..(i * block * k + block * k).min(x.len())];
        let o = matmul_uninit(o, &Mat::new(xb, xb.len() / k, k), b, parallelism);
        finish(i * block * b.cols, o);
        o
    })
}

/// `Σ_blocks a_bᵀ · x_b` over blocks of pixels of channels-last `a` (`pixels x m`) and `x`
/// (`pixels x k`): the `m x k` weight gradient, a partial sum per block.
fn matmul_rows_transposed(a: &[f32], m: usize, x: &[f32], k: usize) -> Vec<f32> {
    let rows = a.len() / m;
    let block = rows.div_ceil(PARTIALS).max(64);
    sum_over_images(rows.div_ceil(block), m * k, |b, acc, _: &mut ()| {
        let r = b * block..((b + 1) * block).min(rows);
        let (ab, xb) = (&a[r.start * m..r.end * m], &x[r.start * k..r.end * k]);
        matmul(acc, &Mat::t(ab, m, r.len()), &Mat::new(xb, r.len(), k), true, Parallelism::None);
    })
}

/// `(x [N, Cin, H, W], w [Cout, Cin, 1, 1], bias [Cout]) -> y [N, Cout, H, W]`, then ReLU6
/// (`[N, H, W, C]` in and out when channels last).
pub(super) struct Forward {
    pub(super) relu6: bool,
    pub(super) format: DataFormat,
}

impl CustomOp3 for Forward {
    fn name(&self) -> &'static str {
        "pointwise"
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
        let (n, c_in, h, w) = self.format.nchw(xl)?;
        let c_out = wl.shape().dims()[0];
        let (x, wt, bias) = (contiguous_f32(xs, xl)?, contiguous_f32(ws, wl)?, contiguous_f32(bs, bl)?);
        let hw = h * w;
        let y = match self.format {
            DataFormat::ChannelsLast => {
                // `Wᵀ` stored as such: gemm packs the weights for every block of pixels, and
                // packing reads columns of a stored `W` with a stride, of a stored `Wᵀ` in runs.
                let wt_t: Vec<f32> = (0..c_in).flat_map(|i| (0..c_out).map(move |o| wt[o * c_in + i])).collect();
                matmul_rows(x, c_in, &Mat::new(&wt_t, c_in, c_out), |_, block| apply_rows(block, bias, self.relu6))
            }
            DataFormat::ChannelsFirst => {
                matmul_images(&Mat::new(wt, c_out, c_in), x, hw, |channel, _, values| Epilogue::new(bias[channel], self.relu6).apply(values))
            }
        };
        Ok((CpuStorage::F32(y), self.format.shape(n, c_out, h, w)))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, bias: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Grads3> {
        let (dz, dbias) = epilogue_backward(self.relu6, y, grad, bias.track_op(), self.format)?;
        // Only what the graph needs: the first trainable layer's input is frozen activations.
        let dx = x.track_op().then(|| dz.apply_op2_no_bwd(w, &BackwardData { format: self.format })).transpose()?;
        let dw = w.track_op().then(|| dz.apply_op2_no_bwd(x, &BackwardFilter { format: self.format })).transpose()?;
        Ok((dx, dw, dbias))
    }
}

/// `dX[n] = Wᵀ · G[n]` (channels last: `dX = G · W`), from `(grad, w)`.
pub(super) struct BackwardData {
    pub(super) format: DataFormat,
}

impl CustomOp2 for BackwardData {
    fn name(&self) -> &'static str {
        "pointwise-backward-data"
    }

    fn cpu_fwd(&self, gs: &CpuStorage, gl: &Layout, ws: &CpuStorage, wl: &Layout) -> Result<(CpuStorage, Shape)> {
        self.input_gradient(gs, gl, ws, wl, None)
    }
}

impl BackwardData {
    /// `dX`, zeroed where ReLU6 did not pass for the layer in front's output `mask` (if any).
    fn input_gradient(&self, gs: &CpuStorage, gl: &Layout, ws: &CpuStorage, wl: &Layout, mask: Option<&[f32]>) -> Result<(CpuStorage, Shape)> {
        let (n, c_out, h, w) = self.format.nchw(gl)?;
        let c_in = wl.shape().dims()[1];
        let (g, wt) = (contiguous_f32(gs, gl)?, contiguous_f32(ws, wl)?);
        if mask.is_some_and(|y| y.len() != n * c_in * h * w) {
            candle_core::bail!("pointwise-backward-data: a mask of another shape than the input gradient")
        }
        let masked = |offset: usize, values: &mut [f32]| {
            if let Some(y) = mask {
                mask_in_place(values, &y[offset..offset + values.len()]);
            }
        };
        let hw = h * w;
        let dx = match self.format {
            DataFormat::ChannelsLast => matmul_rows(g, c_out, &Mat::new(wt, c_out, c_in), masked),
            DataFormat::ChannelsFirst => matmul_images(&Mat::t(wt, c_in, c_out), g, hw, |_, offset, values| masked(offset, values)),
        };
        Ok((CpuStorage::F32(dx), self.format.shape(n, c_in, h, w)))
    }
}

/// [`BackwardData`] through the ReLU6 of the layer in front: `(grad, w, y)`, `y` being that
/// layer's output, to `dX` zeroed where the ReLU6 did not pass, in one pass.
pub(super) struct BackwardDataMasked {
    pub(super) format: DataFormat,
}

impl CustomOp3 for BackwardDataMasked {
    fn name(&self) -> &'static str {
        "pointwise-backward-data-masked"
    }

    fn cpu_fwd(&self, gs: &CpuStorage, gl: &Layout, ws: &CpuStorage, wl: &Layout, ys: &CpuStorage, yl: &Layout) -> Result<(CpuStorage, Shape)> {
        BackwardData { format: self.format }.input_gradient(gs, gl, ws, wl, Some(contiguous_f32(ys, yl)?))
    }
}

/// `dW = Σ_n G[n] · X[n]ᵀ` (channels last: `Gᵀ · X`), from `(grad, x)`, accumulated inside the
/// multiplies.
pub(super) struct BackwardFilter {
    pub(super) format: DataFormat,
}

impl CustomOp2 for BackwardFilter {
    fn name(&self) -> &'static str {
        "pointwise-backward-filter"
    }

    fn cpu_fwd(&self, gs: &CpuStorage, gl: &Layout, xs: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c_out, h, w) = self.format.nchw(gl)?;
        let c_in = self.format.nchw(xl)?.1;
        let (g, x) = (contiguous_f32(gs, gl)?, contiguous_f32(xs, xl)?);
        let hw = h * w;
        let dw = match self.format {
            DataFormat::ChannelsLast => matmul_rows_transposed(g, c_out, x, c_in),
            DataFormat::ChannelsFirst => sum_over_images(n, c_out * c_in, |i, dw, _: &mut ()| {
                let gi = Mat::new(&g[i * c_out * hw..(i + 1) * c_out * hw], c_out, hw);
                let xi = Mat::t(&x[i * c_in * hw..(i + 1) * c_in * hw], hw, c_in);
                matmul(dw, &gi, &xi, true, Parallelism::None);
            }),
        };
        Ok((CpuStorage::F32(dw), Shape::from((c_out, c_in, 1, 1))))
    }
}

/// `act(conv1x1(x, w) + bias)` for `x [N, Cin, H, W]` (`[N, H, W, Cin]` when `format` is
/// channels last), `w [Cout, Cin, 1, 1]` and `bias [Cout]`, with ReLU6 as `act` when `relu6`
/// (else none); differentiable in all three.
pub fn pointwise_conv(x: &Tensor, w: &Tensor, bias: &Tensor, relu6: bool, format: DataFormat) -> Result<Tensor> {
    x.contiguous()?.apply_op3(&w.contiguous()?, &bias.contiguous()?, Forward { relu6, format })
}
