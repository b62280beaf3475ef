//! A trainable inverted-residual block as one op of candle's graph, with its own backward pass.
//!
//! Layer by layer, every activation's gradient passes through candle's gradient store, which
//! allocates a zero tensor for it and adds the gradient into that: two more passes over memory
//! per activation, and the block's expanded activations are its largest (six times its input).
//! As one op, the block runs the same kernels as its layers (the 1x1 and depthwise ops of this
//! engine, forward and backward), but the gradients of its expanded activations stay inside the
//! op, the residual's add is done in place, and each ReLU6's mask is applied by the kernel that
//! computes the gradient going through it, while that is in cache, instead of in a pass of its own. Its weights come packed in one tensor and its
//! biases in another (candle's custom ops take at most three inputs); packing and unpacking
//! them are small copies that candle differentiates.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::geometry::{Pad, K};
use super::epilogue::ChannelSums;
use super::{contiguous_f32, depthwise, pointwise, DataFormat, Grads3};

/// What a trainable block is made of, beside its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockLayout {
    /// Whether the block starts with a 1x1 expansion (all but MobileNetV2's block 0).
    pub expand: bool,
    /// Channels of the depthwise layer: the expansion's output, or the block's input.
    pub expanded: usize,
    /// Channels of the projection's output.
    pub outputs: usize,
    /// The depthwise layer's stride and padding.
    pub stride: usize,
    pub pad: Pad,
    /// Whether the input is added to the projection's output.
    pub residual: bool,
    pub format: DataFormat,
}

/// Where one layer's weight and bias lie in the packed tensors, and the weight's shape.
struct Piece {
    weight: std::ops::Range<usize>,
    shape: Shape,
    bias: std::ops::Range<usize>,
}

impl BlockLayout {
    /// The layers' pieces of the packed weights and biases, for `inputs` input channels: the
    /// expansion (if any), the depthwise layer, the projection, each flattened, in that order.
    fn pieces(&self, inputs: usize) -> Vec<Piece> {
        let c = self.expanded;
        let mut shapes = Vec::new();
        if self.expand {
            shapes.push(Shape::from((c, inputs, 1, 1)));
        }
        shapes.push(Shape::from((c, 1, K, K)));
        shapes.push(Shape::from((self.outputs, c, 1, 1)));
        let (mut w, mut b) = (0, 0);
        shapes
            .into_iter()
            .map(|shape| {
                let (len, outputs) = (shape.elem_count(), shape.dims()[0]);
                let piece = Piece { weight: w..w + len, shape, bias: b..b + outputs };
                (w, b) = (w + len, b + outputs);
                piece
            })
            .collect()
    }

    fn depthwise(&self) -> depthwise::Forward {
        depthwise::Forward { conv: depthwise::Conv { stride: self.stride, pad: self.pad, format: self.format }, relu6: true }
    }
}

/// The block's op: the layout, and the activations its backward pass needs.
struct Block {
    layout: BlockLayout,
    /// The expansion's output (none without one) and the depthwise layer's output.
    saved: Mutex<Option<(Option<Tensor>, Tensor)>>,
}

fn f32_vec(s: CpuStorage) -> Result<Vec<f32>> {
    match s {
        CpuStorage::F32(v) => Ok(v),
        _ => candle_core::bail!("trainable block: the kernels give f32"),
    }
}

impl CustomOp3 for Block {
    fn name(&self) -> &'static str {
        "inverted-residual"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ws: &CpuStorage, wl: &Layout, bs: &CpuStorage, bl: &Layout) -> Result<(CpuStorage, Shape)> {
        let b = &self.layout;
        let (_, c_in, _, _) = b.format.nchw(xl)?;
        let (weights, biases) = (contiguous_f32(ws, wl)?, contiguous_f32(bs, bl)?);
        let pieces = b.pieces(c_in);
        let last = pieces.last().expect("a block has layers");
        if weights.len() != last.weight.end || biases.len() != last.bias.end {
            candle_core::bail!("trainable block: {} weights and {} biases for a block that has {} and {}", weights.len(), biases.len(), last.weight.end, last.bias.end)
        }
        // Each layer's weight and bias as storages of their own (small copies).
        let layer = |p: &Piece| {
            let w = (CpuStorage::F32(weights[p.weight.clone()].to_vec()), Layout::contiguous(p.shape.clone()));
            (w, (CpuStorage::F32(biases[p.bias.clone()].to_vec()), Layout::contiguous(p.bias.len())))
        };
        let mut layers = pieces.iter().map(layer);
        let expanded = match b.expand {
            true => {
                let ((w, wl), (bias, bl)) = layers.next().expect("the expansion");
                let (h, shape) = pointwise::Forward { relu6: true, format: b.format }.cpu_fwd(xs, xl, &w, &wl, &bias, &bl)?;
                Some((h, Layout::contiguous(shape)))
            }
            false => None,
        };
        let (hs, hl) = expanded.as_ref().map_or((xs, xl), |(s, l)| (s, l));
        let ((w, wl), (bias, bl)) = layers.next().expect("the depthwise layer");
        let (d, d_shape) = b.depthwise().cpu_fwd(hs, hl, &w, &wl, &bias, &bl)?;
        let d_layout = Layout::contiguous(d_shape.clone());
        let ((w, wl), (bias, bl)) = layers.next().expect("the projection");
        let (y, shape) = pointwise::Forward { relu6: false, format: b.format }.cpu_fwd(&d, &d_layout, &w, &wl, &bias, &bl)?;
        let mut y = f32_vec(y)?;
        if b.residual {
            let x = contiguous_f32(xs, xl)?;
            const CHUNK: usize = 1 << 14;
            y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(y, x)| y.iter_mut().zip(x).for_each(|(y, x)| *y += x));
        }
        let h = expanded.map(|(h, l)| Tensor::from_vec(f32_vec(h)?, l.shape(), &Device::Cpu)).transpose()?;
        *self.saved.lock().expect("saved activations") = Some((h, Tensor::from_vec(f32_vec(d)?, d_shape, &Device::Cpu)?));
        Ok((CpuStorage::F32(y), shape))
    }

    fn bwd(&self, x: &Tensor, weights: &Tensor, biases: &Tensor, _: &Tensor, grad: &Tensor) -> Result<Grads3> {
        let b = &self.layout;
        let Some((h, d)) = self.saved.lock().expect("saved activations").clone() else {
            candle_core::bail!("trainable block: backward before forward")
        };
        let (_, c_in, _, _) = b.format.nchw(x.layout())?;
        let pieces = b.pieces(c_in);
        let unpack = |p: &Piece| weights.narrow(0, p.weight.start, p.weight.len())?.reshape(p.shape.clone());
        let (need_x, need_w, need_b) = (x.track_op(), weights.track_op(), biases.track_op());
        let format = b.format;
        let grad = grad.contiguous()?;
        let sums = |dz: &Tensor| need_b.then(|| dz.apply_op1_no_bwd(&ChannelSums { format })).transpose();
        let filter = |dz: &Tensor, input: &Tensor| need_w.then(|| dz.apply_op2_no_bwd(input, &pointwise::BackwardFilter { format })).transpose();
        // The projection (linear); its input gradient comes out through the depthwise ReLU6's mask.
        let wp = unpack(&pieces[pieces.len() - 1])?;
        let (dwp, dbp) = (filter(&grad, &d)?, sums(&grad)?);
        let dz2 = grad.apply_op3_no_bwd(&wp, &d, &pointwise::BackwardDataMasked { format })?;
        // The depthwise layer; its input gradient through the expansion's mask, if there is one.
        let wd = unpack(&pieces[pieces.len() - 2])?;
        let conv = b.depthwise().conv;
        let h_in = h.as_ref().unwrap_or(x);
        let dwd = need_w.then(|| h_in.apply_op2_no_bwd(&dz2, &depthwise::BackwardFilter { conv })).transpose()?;
        let dbd = sums(&dz2)?;
        let (_, _, rows, cols) = format.nchw(h_in.layout())?;
        let data = depthwise::BackwardData { conv, h: rows, w: cols };
        let (dx, dwe, dbe) = match &h {
            Some(h) => {
                let dz1 = dz2.apply_op3_no_bwd(&wd, h, &depthwise::BackwardDataMasked(data))?;
                let we = unpack(&pieces[0])?;
                let dx = need_x.then(|| dz1.apply_op2_no_bwd(&we, &pointwise::BackwardData { format })).transpose()?;
                (dx, filter(&dz1, x)?, sums(&dz1)?)
            }
            None => (need_x.then(|| dz2.apply_op2_no_bwd(&wd, &data)).transpose()?, None, None),
        };
        let dx = match (dx, b.residual) {
            (Some(dx), true) => Some((dx + &grad)?),
            (dx, _) => dx,
        };
        let pack = |parts: [Option<Tensor>; 3]| -> Result<Option<Tensor>> {
            let flat = parts.into_iter().flatten().map(|t| t.flatten_all()).collect::<Result<Vec<_>>>()?;
            if flat.is_empty() {
                return Ok(None);
            }
            Tensor::cat(&flat, 0).map(Some)
        };
        Ok((dx, pack([dwe, dwd, dwp])?, pack([dbe, dbd, dbp])?))
    }
}

/// The inverted-residual block `layout` on `x` (`[N, C, H, W]`, or `[N, H, W, C]` channels
/// last): `weights` are its layers' folded weights flattened and concatenated (expansion if
/// any, depthwise, projection), `biases` their biases likewise. Differentiable in all three.
pub fn trainable_inverted_residual(x: &Tensor, weights: &Tensor, biases: &Tensor, layout: BlockLayout) -> Result<Tensor> {
    if !(1..=2).contains(&layout.stride) {
        candle_core::bail!("trainable block: strides 1 and 2, got {}", layout.stride)
    }
    let op = Block { layout, saved: Mutex::new(None) };
    x.contiguous()?.apply_op3(&weights.contiguous()?, &biases.contiguous()?, op)
}
