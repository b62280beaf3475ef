//! Depthwise 3x3 convolution on channels-last data (`[N, H, W, C]`), forward and gradients.
//!
//! On the 14x14 and 7x7 planes of the network's tail a plane is a few dozen values: walked a
//! plane at a time (channels first), the stencil is mostly edges and set-up. Channels last, each
//! tap of each pixel is a run of `C` contiguous values, multiplied 64 channels at a time, and the
//! padding is simply the taps that a [`Stencil`] leaves out.


use std::mem::MaybeUninit;

use super::epilogue::{mask_in_place, Epilogue};
use super::geometry::Geometry;
use super::madd;
use super::matmul::sum_over_images;
use super::output_written_in_chunks;

const K: usize = 3;
/// Channels summed together: four AVX-512 registers (eight AVX2 ones), independent chains, so
/// that the adds of consecutive taps do not wait on each other.
const V: usize = 64;
/// Channels of one AVX-512 register, for what is left of `C` after the 64s.
const V1: usize = 16;

/// For each pixel on one side of the convolution, the `(pixel on the other side, tap)` pairs that
/// it meets inside the image, stored back to back (`starts[p]..starts[p + 1]`).
struct Stencil {
    pairs: Vec<(usize, usize)>,
    starts: Vec<usize>,
}

impl Stencil {
    /// Per output pixel: the input pixels it reads, and through which tap.
    fn by_output(g: &Geometry) -> Self {
        Self::build(g.ho * g.wo, |p| {
            let (oh, ow) = (p / g.wo, p % g.wo);
            taps_of(g, oh, ow).collect()
        })
    }

    /// Per input pixel: the output pixels that read it, and through which tap.
    fn by_input(g: &Geometry) -> Self {
        let mut lists = vec![Vec::new(); g.h * g.w];
        for o in 0..g.ho * g.wo {
            for (i, tap) in taps_of(g, o / g.wo, o % g.wo) {
                lists[i].push((o, tap));
            }
        }
        Self::build(g.h * g.w, |p| std::mem::take(&mut lists[p]))
    }

    fn build(pixels: usize, mut pairs_of: impl FnMut(usize) -> Vec<(usize, usize)>) -> Self {
        let (mut pairs, mut starts) = (Vec::new(), vec![0]);
        for p in 0..pixels {
            pairs.extend(pairs_of(p));
            starts.push(pairs.len());
        }
        Self { pairs, starts }
    }

    fn of(&self, p: usize) -> &[(usize, usize)] {
        &self.pairs[self.starts[p]..self.starts[p + 1]]
    }
}

/// The `(input pixel, tap)` pairs of output pixel `(oh, ow)` that fall inside the image.
fn taps_of(g: &Geometry, oh: usize, ow: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    (0..K * K).filter_map(move |tap| {
        let ih = g.in_row(oh, tap / K)?;
        let iw = g.in_col_checked(ow, tap % K)?;
        Some((ih * g.w + iw, tap))
    })
}

/// The kernel `[C, 1, 3, 3]` as nine rows of `C` (one per tap), the order the vectors read.
fn tap_major(wt: &[f32], c: usize) -> Vec<f32> {
    (0..K * K).flat_map(|tap| (0..c).map(move |ch| wt[ch * K * K + tap])).collect()
}

/// What every pixel of a row sums: `e(init + Σ src[pixel] * taps[tap])`, `c` channels each.
#[derive(Clone, Copy)]
struct Sums<'a> {
    c: usize,
    src: &'a [f32],
    taps: &'a [f32],
    init: &'a [f32],
    e: Epilogue,
}

/// Channels `c0..c0 + W` of one pixel, over its stencil `pairs`, written into `out`.
#[inline(always)]
fn pixel<const W: usize, const FMA: bool>(s: Sums, c0: usize, pairs: &[(usize, usize)], out: &mut [MaybeUninit<f32>]) {
    let Sums { c, src, taps, init, e } = s;
    let mut acc = [0f32; W];
    acc.copy_from_slice(&init[c0..c0 + W]);
    for &(p, tap) in pairs {
        let (s, t) = (&src[p * c + c0..p * c + c0 + W], &taps[tap * c + c0..tap * c + c0 + W]);
        for l in 0..W {
            acc[l] = madd::<FMA>(s[l], t[l], acc[l]);
        }
    }
    let out = &mut out[c0..c0 + W];
    for l in 0..W {
        out[l].write(e.on(acc[l]));
    }
}

/// Calls `f::<W>(c0)` over channels `0..c` in chunks of 64, then 16, then 1.
macro_rules! by_chunks {
    ($c:expr, |$c0:ident, $w:ident| $body:expr) => {{
        let (c, mut $c0) = ($c, 0);
        while $c0 + V <= c {
            const $w: usize = V;
            $body;
            $c0 += V;
        }
        while $c0 + V1 <= c {
            const $w: usize = V1;
            $body;
            $c0 += V1;
        }
        while $c0 < c {
            const $w: usize = 1;
            $body;
            $c0 += 1;
        }
    }};
}

/// A row of pixels `first..` (`out` holds `C` values each), each summing its stencil pairs of
/// `src` (one image) through `taps`, from `init`, then the epilogue; returns `out`, written.
fn gather_row<'a>(st: &Stencil, first: usize, sums: Sums, out: &'a mut [MaybeUninit<f32>]) -> &'a mut [f32] {
    assert_eq!(out.len() % sums.c, 0, "whole pixels");
    gather_pixels(st, first, sums, out);
    // SAFETY: `by_chunks!` runs `pixel` over channels 0..c of every pixel of `out` (whole pixels,
    // asserted above), and each writes its channels, so every element is initialised; and
    // `MaybeUninit<f32>` has the layout of `f32`.
    unsafe { &mut *(out as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn gather_pixels(st: &Stencil, first: usize, sums: Sums, out: &mut [MaybeUninit<f32>]) {
    const FMA: bool = has_fma!();
    for (j, o) in out.chunks_exact_mut(sums.c).enumerate() {
        let pairs = st.of(first + j);
        by_chunks!(sums.c, |c0, W| pixel::<W, FMA>(sums, c0, pairs, o));
    }
}

/// `y [N, Ho, Wo, C] = act(depthwise(x [N, H, W, C]) + bias)`, parallel over output rows.
pub(super) fn forward(g: &Geometry, c: usize, x: &[f32], wt: &[f32], bias: &[f32], relu6: bool) -> Vec<f32> {
    let (st, taps, e) = (Stencil::by_output(g), tap_major(wt, c), Epilogue::new(0.0, relu6));
    let image = g.h * g.w * c;
    let n = x.len() / image;
    output_written_in_chunks(n * g.ho * g.wo * c, g.wo * c, || (), |_, r, row| {
        let (img, oh) = (r / g.ho, r % g.ho);
        let sums = Sums { c, src: &x[img * image..(img + 1) * image], taps: &taps, init: bias, e };
        gather_row(&st, oh * g.wo, sums, row)
    })
}

/// `dx [N, H, W, C]` from `grad [N, Ho, Wo, C]`: each input pixel gathers the output pixels
/// that read it (no scatter, so rows run in parallel and nothing is zeroed first); with `mask`
/// (the output of the layer in front, `[N, H, W, C]`), zero where its ReLU6 did not pass.
pub(super) fn backward_data(g: &Geometry, c: usize, grad: &[f32], wt: &[f32], mask: Option<&[f32]>) -> Vec<f32> {
    let (st, taps, zeros) = (Stencil::by_input(g), tap_major(wt, c), vec![0f32; c]);
    let image = g.ho * g.wo * c;
    let n = grad.len() / image;
    output_written_in_chunks(n * g.h * g.w * c, g.w * c, || (), |_, r, row| {
        let (img, ih) = (r / g.h, r % g.h);
        let sums = Sums { c, src: &grad[img * image..(img + 1) * image], taps: &taps, init: &zeros, e: Epilogue::new(0.0, false) };
        let row = gather_row(&st, ih * g.w, sums, row);
        if let Some(y) = mask {
            mask_in_place(row, &y[r * row.len()..(r + 1) * row.len()]);
        }
        row
    })
}

/// Adds one image's weight gradient, tap-major (`acc[tap * C + ch]`), channels `c0..c0 + W`.
#[inline(always)]
fn filter_chunk<const W: usize>(st: &Stencil, c: usize, c0: usize, x: &[f32], grad: &[f32], acc: &mut [f32]) {
    let mut sums = [[0f32; W]; K * K];
    for (p, gv) in grad.chunks_exact(c).enumerate() {
        let gv = &gv[c0..c0 + W];
        for &(i, tap) in st.of(p) {
            let xv = &x[i * c + c0..i * c + c0 + W];
            for l in 0..W {
                sums[tap][l] += gv[l] * xv[l];
            }
        }
    }
    for (tap, s) in sums.iter().enumerate() {
        for l in 0..W {
            acc[tap * c + c0 + l] += s[l];
        }
    }
}

#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn filter_image(st: &Stencil, c: usize, x: &[f32], grad: &[f32], acc: &mut [f32]) {
    by_chunks!(c, |c0, W| filter_chunk::<W>(st, c, c0, x, grad, acc));
}

/// `dw [C, 1, 3, 3]` from `x [N, H, W, C]` and `grad [N, Ho, Wo, C]`, summed over the batch.
pub(super) fn backward_filter(g: &Geometry, n: usize, c: usize, x: &[f32], grad: &[f32]) -> Vec<f32> {
    let st = Stencil::by_output(g);
    let (image, out_image) = (g.h * g.w * c, g.ho * g.wo * c);
    let acc = sum_over_images(n, K * K * c, |img, acc, _: &mut ()| {
        filter_image(&st, c, &x[img * image..(img + 1) * image], &grad[img * out_image..(img + 1) * out_image], acc)
    });
    (0..c).flat_map(|ch| (0..K * K).map(move |tap| (ch, tap))).map(|(ch, tap)| acc[tap * c + ch]).collect()
}
