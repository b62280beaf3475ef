//! Inference-mode BatchNorm as one per-channel affine map, fused with ReLU6, as a candle custom
//! op: one pass over the activations forward and one (per gradient) backward, where stock candle
//! runs five elementwise ops, each with its own buffer and backward node.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous_f32, dims4, uninit_output};

/// `y = x * scale[c] + shift[c]`, clamped to `[0, 6]` when `relu6`.
struct AffineAct {
    relu6: bool,
}

/// The ReLU6 gradient mask, read off the output: `0 < y < 6` exactly where the clamp was inactive.
#[inline]
fn passes(relu6: bool, y: f32) -> bool {
    !relu6 || (y > 0.0 && y < 6.0)
}

#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn affine_plane(out: &mut [f32], x: &[f32], a: f32, b: f32, relu6: bool) {
    if relu6 {
        out.iter_mut().zip(x).for_each(|(o, v)| *o = (v * a + b).max(0.0).min(6.0));
    } else {
        out.iter_mut().zip(x).for_each(|(o, v)| *o = v * a + b);
    }
}

impl CustomOp3 for AffineAct {
    fn name(&self) -> &'static str {
        "affine-relu6"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ss: &CpuStorage,
        sl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, c, h, w) = dims4(xl)?;
        let (x, scale, shift) = (contiguous_f32(xs, xl)?, contiguous_f32(ss, sl)?, contiguous_f32(bs, bl)?);
        let relu6 = self.relu6;
        let y = uninit_output(x.len(), |y| {
            y.par_chunks_mut(h * w).zip(x.par_chunks(h * w)).enumerate().for_each(|(plane, (out, inp))| {
                affine_plane(out, inp, scale[plane % c], shift[plane % c], relu6);
            })
        });
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        scale: &Tensor,
        _shift: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dx = grad.apply_op3_no_bwd(y, scale, &GradInput { relu6: self.relu6 })?;
        let dparams = grad.apply_op3_no_bwd(y, x, &GradParams { relu6: self.relu6 })?;
        Ok((Some(dx), Some(dparams.get(0)?), Some(dparams.get(1)?)))
    }
}

#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn grad_input_plane(out: &mut [f32], g: &[f32], y: &[f32], a: f32, relu6: bool) {
    for ((o, gv), yv) in out.iter_mut().zip(g).zip(y) {
        *o = if passes(relu6, *yv) { gv * a } else { 0.0 };
    }
}

/// `(sum g * x * mask, sum g * mask)` over one plane, in 16 lanes so that the sums vectorise.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn grad_params_plane(g: &[f32], y: &[f32], x: &[f32], relu6: bool) -> (f32, f32) {
    const LANES: usize = 16;
    let (mut ds, mut db) = ([0f32; LANES], [0f32; LANES]);
    let body = g.len() / LANES * LANES;
    for ((gc, yc), xc) in g[..body].chunks_exact(LANES).zip(y[..body].chunks_exact(LANES)).zip(x[..body].chunks_exact(LANES)) {
        for l in 0..LANES {
            let m = if passes(relu6, yc[l]) { gc[l] } else { 0.0 };
            ds[l] += m * xc[l];
            db[l] += m;
        }
    }
    let (mut s, mut b) = (ds.iter().sum::<f32>(), db.iter().sum::<f32>());
    for i in body..g.len() {
        if passes(relu6, y[i]) {
            s += g[i] * x[i];
            b += g[i];
        }
    }
    (s, b)
}

/// `dx = grad * scale[c] * mask`, from `(grad, y, scale)`.
struct GradInput {
    relu6: bool,
}

impl CustomOp3 for GradInput {
    fn name(&self) -> &'static str {
        "affine-relu6-grad-input"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        ys: &CpuStorage,
        yl: &Layout,
        ss: &CpuStorage,
        sl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, c, h, w) = dims4(gl)?;
        let (g, y, scale) = (contiguous_f32(gs, gl)?, contiguous_f32(ys, yl)?, contiguous_f32(ss, sl)?);
        let relu6 = self.relu6;
        let dx = uninit_output(g.len(), |dx| {
            dx.par_chunks_mut(h * w).enumerate().for_each(|(plane, out)| {
                let range = plane * h * w..(plane + 1) * h * w;
                grad_input_plane(out, &g[range.clone()], &y[range], scale[plane % c], relu6);
            })
        });
        Ok((CpuStorage::F32(dx), gl.shape().clone()))
    }
}

/// `[d scale, d shift]` as a `[2, C]` tensor, from `(grad, y, x)`, summed over batch and space.
struct GradParams {
    relu6: bool,
}

impl CustomOp3 for GradParams {
    fn name(&self) -> &'static str {
        "affine-relu6-grad-params"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        ys: &CpuStorage,
        yl: &Layout,
        xs: &CpuStorage,
        xl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = dims4(gl)?;
        let (g, y, x) = (contiguous_f32(gs, gl)?, contiguous_f32(ys, yl)?, contiguous_f32(xs, xl)?);
        let relu6 = self.relu6;
        let per_channel: Vec<(f32, f32)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let (mut ds, mut db) = (0f32, 0f32);
                for img in 0..n {
                    let range = (img * c + ch) * h * w..(img * c + ch + 1) * h * w;
                    let (s, b) = grad_params_plane(&g[range.clone()], &y[range.clone()], &x[range], relu6);
                    ds += s;
                    db += b;
                }
                (ds, db)
            })
            .collect();
        let mut out: Vec<f32> = per_channel.iter().map(|p| p.0).collect();
        out.extend(per_channel.iter().map(|p| p.1));
        Ok((CpuStorage::F32(out), Shape::from((2, c))))
    }
}

/// `x * scale[c] + shift[c]` over `[N, C, H, W]`, then ReLU6 when `relu6`; differentiable in all three.
pub fn affine_act(x: &Tensor, scale: &Tensor, shift: &Tensor, relu6: bool) -> Result<Tensor> {
    x.contiguous()?.apply_op3(&scale.contiguous()?, &shift.contiguous()?, AffineAct { relu6 })
}
