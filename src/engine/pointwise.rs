//! 1x1 convolution (+ bias and ReLU6) as matrix multiplies on NCHW data, straight into the output
//! buffer (no im2col, no zero fill): one multiply per image for large planes, one for the whole batch (regrouped
//! channel-major) for small ones; the weight gradient is summed over the batch inside the multiply
//! instead of materialising one gradient per image.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use super::matmul::{matmul, Mat};
use super::epilogue::{epilogue_backward, Epilogue};
use super::{contiguous_f32, dims4, uninit_output, Grads3};

/// Below this many pixels per image (the 14x14 and 7x7 layers), per-image multiplies are too thin
/// to be efficient: the batch is regrouped channel-major (`[C, N * H * W]`) so that one multiply
/// covers every image.
const SMALL_PLANE: usize = 256;

/// `[N, C, HW]` → `[C, N * HW]`.
fn to_channel_major(src: &[f32], n: usize, c: usize, hw: usize) -> Vec<f32> {
    uninit_output(n * c * hw, |out| {
        out.par_chunks_mut(n * hw).enumerate().for_each(|(ch, row)| {
            for (i, dst) in row.chunks_exact_mut(hw).enumerate() {
                dst.copy_from_slice(&src[(i * c + ch) * hw..(i * c + ch + 1) * hw]);
            }
        })
    })
}

/// `out[i] = a · x[i]` for every image `i` of `x` (`[N, K, HW]`), `a` being `M x K`; `out` is
/// `[N, M, HW]`.
fn matmul_images(out: &mut [f32], a: &Mat, x: &[f32], n: usize, hw: usize) {
    let (m, k) = (a.rows, a.cols);
    if hw >= SMALL_PLANE {
        // Plenty of work per image: images in parallel, each multiply single-threaded.
        out.par_chunks_mut(m * hw).enumerate().for_each(|(i, o)| {
            matmul(o, a, &Mat::new(&x[i * k * hw..(i + 1) * k * hw], k, hw), false, Parallelism::None);
        });
        return;
    }
    let xs = to_channel_major(x, n, k, hw);
    let mut ys = uninit_output(m * n * hw, |ys| {
        matmul(ys, a, &Mat::new(&xs, k, n * hw), false, Parallelism::Rayon(rayon::current_num_threads()))
    });
    out.par_chunks_mut(m * hw).enumerate().for_each(|(i, img)| {
        for (ch, dst) in img.chunks_exact_mut(hw).enumerate() {
            dst.copy_from_slice(&ys[ch * n * hw + i * hw..ch * n * hw + (i + 1) * hw]);
        }
    });
    ys.clear();
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
            matmul_images(y, &Mat::new(wt, c_out, c_in), x, n, hw);
            y.par_chunks_mut(hw).enumerate().for_each(|(plane, row)| Epilogue::new(bias[plane % c_out], self.relu6).apply(row));
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
        let dx = uninit_output(n * c_in * hw, |dx| matmul_images(dx, &Mat::t(wt, c_in, c_out), g, n, hw));
        Ok((CpuStorage::F32(dx), Shape::from((n, c_in, h, w))))
    }
}

/// `dW = Σ_n G[n] · X[n]ᵀ`, from `(grad, x)`, accumulated inside the multiply.
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
        let mut dw = vec![0f32; c_out * c_in];
        let threads = Parallelism::Rayon(rayon::current_num_threads());
        if hw >= SMALL_PLANE {
            for i in 0..n {
                let gi = Mat::new(&g[i * c_out * hw..(i + 1) * c_out * hw], c_out, hw);
                let xi = Mat::t(&x[i * c_in * hw..(i + 1) * c_in * hw], hw, c_in);
                matmul(&mut dw, &gi, &xi, i > 0, threads);
            }
        } else {
            // One multiply with depth N * HW instead of N thin ones that each rewrite dW.
            let (gs, xs) = (to_channel_major(g, n, c_out, hw), to_channel_major(x, n, c_in, hw));
            matmul(&mut dw, &Mat::new(&gs, c_out, n * hw), &Mat::t(&xs, n * hw, c_in), false, threads);
        }
        Ok((CpuStorage::F32(dw), Shape::from((c_out, c_in, 1, 1))))
    }
}

/// `act(conv1x1(x, w) + bias)` for `x [N, Cin, H, W]`, `w [Cout, Cin, 1, 1]` and `bias [Cout]`,
/// with ReLU6 as `act` when `relu6` (else none); differentiable in all three.
pub fn pointwise_conv(x: &Tensor, w: &Tensor, bias: &Tensor, relu6: bool) -> Result<Tensor> {
    x.contiguous()?.apply_op3(&w.contiguous()?, &bias.contiguous()?, Forward { relu6 })
}
