//! 1x1 convolution (+ bias and ReLU6) as matrix multiplies on NCHW data, straight into the output
//! buffer (no im2col, no zero fill), one per image; the weight gradient is summed over the batch
//! inside the multiplies instead of materialising one gradient per image.

use std::ops::Range;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use super::matmul::{matmul, matmul_strided, sum_over_images, Mat};
use super::epilogue::{epilogue_backward, Epilogue};
use super::{contiguous_f32, dims4, uninit_output, Grads3};

/// Output floats per multiply: about a quarter of a core's L2 cache.
const BLOCK_FLOATS: usize = 1 << 17;

/// `out[i] = a · x[i]` for every image `i` of `x` (`[N, K, HW]`), `a` being `M x K`; `out` is
/// `[N, M, HW]`. Images in parallel, each multiply on one core: with AVX-512 even the 7x7 planes
/// multiply as fast this way as regrouped into one whole-batch multiply, without the copies.
/// Large planes are multiplied a block of columns at a time, and `finish(out[i], columns)` runs
/// on each block while it is still in cache: on the 112x112 layers a whole image's output is
/// larger than the cache, and a separate pass for the epilogue read it all from memory again.
fn matmul_images(out: &mut [f32], a: &Mat, x: &[f32], hw: usize, finish: impl Fn(&mut [f32], Range<usize>) + Sync) {
    let (m, k) = (a.rows, a.cols);
    let block = (BLOCK_FLOATS / m.max(1)).next_multiple_of(64).min(hw).max(1);
    out.par_chunks_mut(m * hw).enumerate().for_each(|(i, o)| {
        let xi = Mat::new(&x[i * k * hw..(i + 1) * k * hw], k, hw);
        for start in (0..hw).step_by(block) {
            let columns = start..(start + block).min(hw);
            matmul_strided(&mut o[start..], hw, a, &xi.columns(columns.clone()), false, Parallelism::None);
            finish(o, columns);
        }
    });
}

/// `(x [N, Cin, H, W], w [Cout, Cin, 1, 1], bias [Cout]) -> y [N, Cout, H, W]`, then ReLU6.
struct Forward {
    relu6: bool,
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
        let (n, c_in, h, w) = dims4(xl)?;
        let c_out = wl.shape().dims()[0];
        let (x, wt, bias) = (contiguous_f32(xs, xl)?, contiguous_f32(ws, wl)?, contiguous_f32(bs, bl)?);
        let hw = h * w;
        let y = uninit_output(n * c_out * hw, |y| {
            matmul_images(y, &Mat::new(wt, c_out, c_in), x, hw, |image, columns| {
                for (plane, &b) in image.chunks_exact_mut(hw).zip(bias) {
                    Epilogue::new(b, self.relu6).apply(&mut plane[columns.clone()]);
                }
            });
        });
        Ok((CpuStorage::F32(y), Shape::from((n, c_out, h, w))))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, bias: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Grads3> {
        let (dz, dbias) = epilogue_backward(self.relu6, y, grad, bias)?;
        // Only what the graph needs: the first trainable layer's input is frozen activations.
        let dx = if x.track_op() { Some(dz.apply_op2_no_bwd(w, &BackwardData)?) } else { None };
        let dw = if w.track_op() { Some(dz.apply_op2_no_bwd(x, &BackwardFilter)?) } else { None };
        Ok((dx, dw, dbias))
    }
}

/// `dX[n] = Wᵀ · G[n]`, from `(grad, w)`.
struct BackwardData;

impl CustomOp2 for BackwardData {
    fn name(&self) -> &'static str {
        "pointwise-backward-data"
    }

    fn cpu_fwd(&self, gs: &CpuStorage, gl: &Layout, ws: &CpuStorage, wl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c_out, h, w) = dims4(gl)?;
        let c_in = wl.shape().dims()[1];
        let (g, wt) = (contiguous_f32(gs, gl)?, contiguous_f32(ws, wl)?);
        let hw = h * w;
        let dx = uninit_output(n * c_in * hw, |dx| matmul_images(dx, &Mat::t(wt, c_in, c_out), g, hw, |_, _| ()));
        Ok((CpuStorage::F32(dx), Shape::from((n, c_in, h, w))))
    }
}

/// `dW = Σ_n G[n] · X[n]ᵀ`, from `(grad, x)`, accumulated inside the multiplies.
struct BackwardFilter;

impl CustomOp2 for BackwardFilter {
    fn name(&self) -> &'static str {
        "pointwise-backward-filter"
    }

    fn cpu_fwd(&self, gs: &CpuStorage, gl: &Layout, xs: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c_out, h, w) = dims4(gl)?;
        let c_in = xl.shape().dims()[1];
        let (g, x) = (contiguous_f32(gs, gl)?, contiguous_f32(xs, xl)?);
        let hw = h * w;
        let dw = sum_over_images(n, c_out * c_in, |i, dw, _: &mut ()| {
            let gi = Mat::new(&g[i * c_out * hw..(i + 1) * c_out * hw], c_out, hw);
            let xi = Mat::t(&x[i * c_in * hw..(i + 1) * c_in * hw], hw, c_in);
            matmul(dw, &gi, &xi, true, Parallelism::None);
        });
        Ok((CpuStorage::F32(dw), Shape::from((c_out, c_in, 1, 1))))
    }
}

/// `act(conv1x1(x, w) + bias)` for `x [N, Cin, H, W]`, `w [Cout, Cin, 1, 1]` and `bias [Cout]`,
/// with ReLU6 as `act` when `relu6` (else none); differentiable in all three.
pub fn pointwise_conv(x: &Tensor, w: &Tensor, bias: &Tensor, relu6: bool) -> Result<Tensor> {
    x.contiguous()?.apply_op3(&w.contiguous()?, &bias.contiguous()?, Forward { relu6 })
}
