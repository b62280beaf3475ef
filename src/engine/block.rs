//! A frozen inverted-residual block (expand 1x1 → depthwise 3x3 → project 1x1, + input) in one
//! pass over each image, a band of rows at a time, channels first.
//!
//! Run layer by layer, the early blocks are bound by memory, not arithmetic: block 1's expanded
//! activation is 96 planes of 112x112, 4.8 MB per image, written by the expand multiply, read
//! back by the depthwise stencil, whose output is read again by the projection (the three ran at
//! about 22 GFLOP/s of a core's 127). Here each band's expanded rows (a few hundred KB) go through
//! all three layers while they are in the core's L2 cache, and only the block's input and output
//! touch memory. Consecutive bands overlap by the stencil's halo: those expanded rows are moved
//! to the front of the buffer instead of being recomputed.
//!
//! Inference only (no backward): for the blocks in front of the first trainable layer, and for
//! prediction.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::ops::Range;

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use gemm::Parallelism;

use super::depthwise_nchw::stencil_forward;
use super::geometry::{Geometry, Pad};
use super::epilogue::Epilogue;
use super::matmul::{matmul_strided, matmul_strided_uninit, Mat};
use super::{assume_written, contiguous_f32, output_written_in_chunks};

/// Expanded floats per band: a quarter of a core's L2 cache, leaving room for the band's
/// depthwise output and the rows of input and output it reads and writes.
const BAND_FLOATS: usize = 1 << 17;

/// A convolution with its BatchNorm folded in: `weight * scale` (row-major, `[out, in]` for a
/// 1x1, `[channels, 9]` for a depthwise 3x3) and the shift as its bias.
#[derive(Debug, Clone)]
pub struct Folded {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

impl Folded {
    /// From candle tensors: any weight shape whose first axis is the output channels.
    pub fn new(weight: &Tensor, bias: &Tensor) -> Result<Self> {
        Ok(Self { weight: weight.flatten_all()?.to_vec1()?, bias: bias.to_vec1()? })
    }

    fn outputs(&self) -> usize {
        self.bias.len()
    }
}

/// The folded layers of one block and its depthwise geometry.
#[derive(Debug, Clone)]
pub struct InvertedResidualWeights {
    /// `None` for block 0, which has no expansion.
    pub expand: Option<Folded>,
    pub depthwise: Folded,
    pub stride: usize,
    pub pad: Pad,
    pub project: Folded,
    /// Add the block's input to its output (stride 1, as many channels out as in).
    pub residual: bool,
}

/// Whether [`inverted_residual`] suits `x`: engine data without gradients, and at least one image
/// per thread (the pass runs one image per core; for fewer, the layer-by-layer ops, each parallel
/// inside, are faster).
pub fn runs_in_one_pass(x: &Tensor) -> Result<bool> {
    Ok(super::supports(x) && !x.track_op() && x.dim(0)? >= rayon::current_num_threads())
}

/// `project(depthwise(expand(x))) (+ x)` for channels-first `x [N, C, H, W]`, without gradients.
pub fn inverted_residual(x: &Tensor, weights: &InvertedResidualWeights) -> Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(weights)
}

thread_local! {
    /// A band of expanded rows, `[channels, rows, w]`.
    static EXPANDED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// The band's depthwise output, `[channels, rows * wo]`.
    static FILTERED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl InvertedResidualWeights {
    fn expanded_channels(&self) -> usize {
        self.depthwise.outputs()
    }

    /// One image: `x` is `[c_in, h, w]`, `out` is `[c_out, ho, wo]`, returned written.
    fn image<'o>(&self, g: &Geometry, x: &[f32], out: &'o mut [MaybeUninit<f32>]) -> &'o mut [f32] {
        let c = self.expanded_channels();
        // Expanded rows one band of output rows needs: `(band - 1) * stride + 3`.
        let cap = (BAND_FLOATS / (c * g.w)).max(3);
        let band = ((cap - 3) / g.stride + 1).min(g.ho);
        EXPANDED.with_borrow_mut(|expanded| {
            FILTERED.with_borrow_mut(|filtered| {
                if self.expand.is_some() {
                    expanded.resize(c * cap * g.w, 0.0);
                }
                filtered.resize(c * band * g.wo, 0.0);
                // The input rows whose expansion `expanded` holds.
                let mut rows = 0..0;
                for o0 in (0..g.ho).step_by(band) {
                    let outputs = o0..(o0 + band).min(g.ho);
                    let (needed, pad) = self.input_rows(g, &outputs);
                    let planes = match &self.expand {
                        Some(expand) => {
                            expand_rows(expand, x, g.w, expanded, cap, &rows, &needed);
                            rows = needed.clone();
                            Planes { data: expanded, stride: cap * g.w, offset: 0 }
                        }
                        None => Planes { data: x, stride: g.h * g.w, offset: needed.start * g.w },
                    };
                    let local = Geometry::new(needed.len(), g.w, g.stride, pad).expect("a band covers its stencil");
                    debug_assert_eq!(local.ho, outputs.len());
                    let filtered = &mut filtered[..c * outputs.len() * g.wo];
                    for (ch, dst) in filtered.chunks_exact_mut(outputs.len() * g.wo).enumerate() {
                        let e = Epilogue::new(self.depthwise.bias[ch], true);
                        let src = planes.rows(ch, needed.len() * g.w);
                        stencil_forward(&local, pad, src, &self.depthwise.weight[ch * 9..ch * 9 + 9], e, dst);
                    }
                    self.project(g, x, filtered, outputs, out);
                }
            })
        });
        // SAFETY: the bands cover output rows `0..ho`, and `project` wrote those rows' pixels
        // in every channel of `out`.
        unsafe { assume_written(out) }
    }

    /// The input rows output rows `outputs` read (clipped to the image), and the padding the
    /// band needs where they fall outside it.
    fn input_rows(&self, g: &Geometry, outputs: &Range<usize>) -> (Range<usize>, Pad) {
        let first = (outputs.start * g.stride) as isize - g.top as isize;
        let end = ((outputs.end - 1) * g.stride + 3) as isize - g.top as isize;
        let rows = first.max(0) as usize..end.min(g.h as isize) as usize;
        let pad = [(rows.start as isize - first) as usize, (end - rows.end as isize) as usize, g.left, self.pad[3]];
        (rows, pad)
    }

    /// `out[:, outputs] = project · filtered + bias (+ x[:, outputs])`, written without being read.
    fn project(&self, g: &Geometry, x: &[f32], filtered: &[f32], outputs: Range<usize>, out: &mut [MaybeUninit<f32>]) {
        let (c, plane) = (self.expanded_channels(), g.ho * g.wo);
        let pixels = outputs.start * g.wo..outputs.end * g.wo;
        let a = Mat::new(&self.project.weight, self.project.outputs(), c);
        matmul_strided_uninit(&mut out[pixels.start..], plane, &a, &Mat::new(filtered, c, pixels.len()), Parallelism::None);
        for (co, dst) in out.chunks_exact_mut(plane).enumerate() {
            // SAFETY: the multiply just wrote these pixels of every channel.
            let dst = unsafe { assume_written(&mut dst[pixels.clone()]) };
            Epilogue::new(self.project.bias[co], false).apply(dst);
            if self.residual {
                add(dst, &x[co * plane + pixels.start..co * plane + pixels.end]);
            }
        }
    }
}

/// Channel planes of some rows: channel `ch`'s rows start at `offset + ch * stride`.
struct Planes<'a> {
    data: &'a [f32],
    stride: usize,
    offset: usize,
}

impl Planes<'_> {
    fn rows(&self, ch: usize, len: usize) -> &[f32] {
        let start = self.offset + ch * self.stride;
        &self.data[start..start + len]
    }
}

/// Fills `expanded` (`[channels, cap, w]`) with the expanded input rows `needed`, given that it
/// holds rows `held`: rows in both move to the front, the rest are multiplied.
fn expand_rows(expand: &Folded, x: &[f32], w: usize, expanded: &mut [f32], cap: usize, held: &Range<usize>, needed: &Range<usize>) {
    let c = expand.outputs();
    let c_in = expand.weight.len() / c;
    debug_assert!(needed.len() <= cap);
    let kept = if held.contains(&needed.start) { held.end.min(needed.end) - needed.start } else { 0 };
    if kept > 0 {
        for ch in 0..c {
            let base = ch * cap * w;
            expanded.copy_within(base + (needed.start - held.start) * w..base + (needed.start - held.start + kept) * w, base);
        }
    }
    let new = (needed.start + kept) * w..needed.end * w;
    let xs = Mat::new(x, c_in, x.len() / c_in).columns(new.clone());
    matmul_strided(&mut expanded[kept * w..], cap * w, &Mat::new(&expand.weight, c, c_in), &xs, false, Parallelism::None);
    for (ch, &b) in expand.bias.iter().enumerate() {
        let base = ch * cap * w;
        Epilogue::new(b, true).apply(&mut expanded[base + kept * w..base + kept * w + new.len()]);
    }
}

/// `dst += src`.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn add(dst: &mut [f32], src: &[f32]) {
    dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
}

impl CustomOp1 for InvertedResidualWeights {
    fn name(&self) -> &'static str {
        "inverted-residual"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c_in, h, w) = xl.shape().dims4()?;
        let c = self.expanded_channels();
        let expects = self.expand.as_ref().map_or(c, |e| e.weight.len() / c);
        if c_in != expects || self.depthwise.weight.len() != 9 * c || self.project.weight.len() != self.project.outputs() * c {
            candle_core::bail!("inverted residual: {c_in} input channels, weights for {expects}")
        }
        let x = contiguous_f32(xs, xl)?;
        let g = Geometry::new(h, w, self.stride, self.pad)?;
        let c_out = self.project.outputs();
        if self.residual && (g.ho, g.wo, c_out) != (h, w, c_in) {
            candle_core::bail!("inverted residual: cannot add a {c_in}x{h}x{w} input to a {c_out}x{}x{} output", g.ho, g.wo)
        }
        let (image_in, image_out) = (c_in * h * w, c_out * g.ho * g.wo);
        let y = output_written_in_chunks(n * image_out, image_out, || (), |_, i, out| self.image(&g, &x[i * image_in..(i + 1) * image_in], out));
        Ok((CpuStorage::F32(y), Shape::from((n, c_out, g.ho, g.wo))))
    }
}
