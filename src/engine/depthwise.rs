//! Depthwise 3x3 convolution (+ bias and ReLU6), forward and all gradients, as candle custom ops:
//! channels-first planes go to [`super::depthwise_nchw`], channels-last data to
//! [`super::depthwise_nhwc`].

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::depthwise_nchw::{stencil_backward_data, stencil_backward_filter, stencil_forward};
use super::epilogue::{epilogue_backward, mask_in_place, Epilogue};
use super::geometry::{Geometry, Pad, K};
use super::{assume_written, contiguous_f32, depthwise_nhwc, output_in_chunks, output_written_in_chunks, DataFormat, Grads3};

/// The settings every pass of one depthwise convolution shares.
#[derive(Debug, Clone, Copy)]
pub(super) struct Conv {
    pub(super) stride: usize,
    pub(super) pad: Pad,
    pub(super) format: DataFormat,
}

impl Conv {
    pub(super) fn geometry(&self, h: usize, w: usize) -> Result<Geometry> {
        Geometry::new(h, w, self.stride, self.pad)
    }
}

/// Forward: `(x [N, C, H, W], w [C, 1, 3, 3], bias [C]) -> y [N, C, Ho, Wo]`, then ReLU6
/// (`[N, H, W, C]` in and out when channels last).
pub(super) struct Forward {
    pub(super) conv: Conv,
    pub(super) relu6: bool,
}

impl CustomOp3 for Forward {
    fn name(&self) -> &'static str {
        "depthwise3x3"
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
        let format = self.conv.format;
        let (n, c, h, w) = format.nchw(xl)?;
        let (x, wt, bias) = (contiguous_f32(xs, xl)?, contiguous_f32(ws, wl)?, contiguous_f32(bs, bl)?);
        if wt.len() != c * K * K {
            candle_core::bail!("depthwise3x3: weight {:?} for {c} channels", wl.shape())
        }
        let g = self.conv.geometry(h, w)?;
        let len = n * c * g.ho * g.wo;
        let y = match format {
            DataFormat::ChannelsLast => depthwise_nhwc::forward(&g, c, x, wt, bias, self.relu6),
            DataFormat::ChannelsFirst => output_in_chunks(len, g.ho * g.wo, || (), |_, plane, out| {
                let ch = plane % c;
                let e = Epilogue::new(bias[ch], self.relu6);
                stencil_forward(&g, self.conv.pad, &x[plane * h * w..(plane + 1) * h * w], &wt[ch * 9..ch * 9 + 9], e, out);
            }),
        };
        Ok((CpuStorage::F32(y), format.shape(n, c, g.ho, g.wo)))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, bias: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Grads3> {
        let (dz, dbias) = epilogue_backward(self.relu6, y, grad, bias.track_op(), self.conv.format)?;
        let (_, _, h, wd) = self.conv.format.nchw(x.layout())?;
        let dx = x.track_op().then(|| dz.apply_op2_no_bwd(w, &BackwardData { conv: self.conv, h, w: wd })).transpose()?;
        let dw = w.track_op().then(|| x.apply_op2_no_bwd(&dz, &BackwardFilter { conv: self.conv })).transpose()?;
        Ok((dx, dw, dbias))
    }
}

/// Input gradient: `(grad [N, C, Ho, Wo], w) -> dx [N, C, H, W]` (or channels last).
pub(super) struct BackwardData {
    pub(super) conv: Conv,
    pub(super) h: usize,
    pub(super) w: usize,
}

impl CustomOp2 for BackwardData {
    fn name(&self) -> &'static str {
        "depthwise3x3-backward-data"
    }

    fn cpu_fwd(&self, gs: &CpuStorage, gl: &Layout, ws: &CpuStorage, wl: &Layout) -> Result<(CpuStorage, Shape)> {
        self.input_gradient(gs, gl, ws, wl, None)
    }
}

/// [`BackwardData`] through the ReLU6 of the layer in front: `(grad, w, y)`, `y` being that
/// layer's output, to `dx` zeroed where the ReLU6 did not pass, in one pass.
pub(super) struct BackwardDataMasked(pub(super) BackwardData);

impl CustomOp3 for BackwardDataMasked {
    fn name(&self) -> &'static str {
        "depthwise3x3-backward-data-masked"
    }

    fn cpu_fwd(&self, gs: &CpuStorage, gl: &Layout, ws: &CpuStorage, wl: &Layout, ys: &CpuStorage, yl: &Layout) -> Result<(CpuStorage, Shape)> {
        self.0.input_gradient(gs, gl, ws, wl, Some(contiguous_f32(ys, yl)?))
    }
}

impl BackwardData {
    /// `dx`, zeroed where ReLU6 did not pass for the layer in front's output `mask` (if any).
    fn input_gradient(&self, gs: &CpuStorage, gl: &Layout, ws: &CpuStorage, wl: &Layout, mask: Option<&[f32]>) -> Result<(CpuStorage, Shape)> {
        let format = self.conv.format;
        let (n, c, _, _) = format.nchw(gl)?;
        let (grad, wt) = (contiguous_f32(gs, gl)?, contiguous_f32(ws, wl)?);
        let g = self.conv.geometry(self.h, self.w)?;
        let len = n * c * self.h * self.w;
        if mask.is_some_and(|y| y.len() != len) {
            candle_core::bail!("depthwise3x3-backward-data: a mask of another shape than the input gradient")
        }
        let dx = match format {
            DataFormat::ChannelsLast => depthwise_nhwc::backward_data(&g, c, grad, wt, mask),
            // Each plane zeroed by the task that then adds its taps into it, while it is in cache.
            DataFormat::ChannelsFirst => output_written_in_chunks(len, self.h * self.w, || (), |_, plane, out| {
                out.fill(MaybeUninit::new(0.0));
                // SAFETY: every element was just written.
                let out = unsafe { assume_written(out) };
                let ch = plane % c;
                let src = &grad[plane * g.ho * g.wo..(plane + 1) * g.ho * g.wo];
                stencil_backward_data(&g, self.conv.pad, src, &wt[ch * 9..ch * 9 + 9], out);
                if let Some(y) = mask {
                    mask_in_place(out, &y[plane * self.h * self.w..(plane + 1) * self.h * self.w]);
                }
                out
            }),
        };
        Ok((CpuStorage::F32(dx), format.shape(n, c, self.h, self.w)))
    }
}

/// Weight gradient: `(x, grad) -> dw [C, 1, 3, 3]`, summed over the batch.
pub(super) struct BackwardFilter {
    pub(super) conv: Conv,
}

impl CustomOp2 for BackwardFilter {
    fn name(&self) -> &'static str {
        "depthwise3x3-backward-filter"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, gs: &CpuStorage, gl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = self.conv.format.nchw(xl)?;
        let (x, grad) = (contiguous_f32(xs, xl)?, contiguous_f32(gs, gl)?);
        let g = self.conv.geometry(h, w)?;
        if self.conv.format == DataFormat::ChannelsLast {
            return Ok((CpuStorage::F32(depthwise_nhwc::backward_filter(&g, n, c, x, grad)), Shape::from((c, 1, K, K))));
        }
        let dw: Vec<[f32; 9]> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let mut acc = [0f32; 9];
                for img in 0..n {
                    let plane = img * c + ch;
                    let xp = &x[plane * h * w..(plane + 1) * h * w];
                    stencil_backward_filter(&g, self.conv.pad, xp, &grad[plane * g.ho * g.wo..(plane + 1) * g.ho * g.wo], &mut acc);
                }
                acc
            })
            .collect();
        Ok((CpuStorage::F32(dw.concat()), Shape::from((c, 1, K, K))))
    }
}

/// `act(depthwise3x3(x, w) + bias)` for `x [N, C, H, W]` (`[N, H, W, C]` when `format` is
/// channels last), `w [C, 1, 3, 3]` and `bias [C]`, with ReLU6 as `act` when `relu6`;
/// differentiable in all three.
pub fn depthwise_conv3x3(x: &Tensor, w: &Tensor, bias: &Tensor, stride: usize, pad: Pad, relu6: bool, format: DataFormat) -> Result<Tensor> {
    if !(1..=2).contains(&stride) {
        candle_core::bail!("depthwise3x3 supports strides 1 and 2, got {stride}")
    }
    let op = Forward { conv: Conv { stride, pad, format }, relu6 };
    x.contiguous()?.apply_op3(&w.contiguous()?, &bias.contiguous()?, op)
}
