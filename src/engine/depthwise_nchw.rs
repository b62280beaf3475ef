//! The depthwise 3x3 stencil on channels-first data (`[N, C, H, W]`), forward and gradients.
//!
//! Stock candle runs a grouped convolution as one small convolution per channel and pads every
//! group's gradient back to full size; here each `(image, channel)` plane is one independent 3x3
//! stencil (the ops in [`super::depthwise`] run the planes in parallel). A plane's outputs are
//! one flat run whose nine taps are nine slices walked in step ([`nine_taps`]): vectorised by
//! the compiler everywhere, and with AVX-512 by hand, where the shifted taps come out of
//! registers instead of unaligned loads.

use super::epilogue::Epilogue;
use super::madd;
use super::geometry::{Geometry, Pad, K};

/// The padded input plane at stride 1 (`hp x wp`), for unit-stride reads.
fn pad_plane(g: &Geometry, pad: Pad, x: &[f32], out: &mut Vec<f32>) -> usize {
    let (hp, wp) = (g.h + pad[0] + pad[1], g.w + pad[2] + pad[3]);
    out.clear();
    out.resize(hp * wp, 0.0);
    for (ih, src) in x.chunks_exact(g.w).enumerate() {
        let start = (ih + pad[0]) * wp + pad[2];
        out[start..start + g.w].copy_from_slice(src);
    }
    wp
}

/// At stride 2, the padded plane split by the parity of its rows and columns into four planes of
/// `(ho + 1) x pitch` (`pitch = wo + 1`): even rows' even and odd columns, then odd rows' even
/// and odd columns. Output `(oh, ow)`'s nine taps are then elements `j`, `j + 1`, `j + pitch` and
/// `j + pitch + 1` of those planes, `j = oh * pitch + ow`: the same offsets for every output, so
/// that a whole plane is one flat run of full vectors. Returns the pitch.
fn split_phases(g: &Geometry, pad: Pad, x: &[f32], out: &mut Vec<f32>) -> usize {
    let (rows, pitch) = (g.ho + 1, g.wo + 1);
    out.clear();
    out.resize(4 * rows * pitch, 0.0);
    let (even_rows, odd_rows) = out.split_at_mut(2 * rows * pitch);
    for (ih, src) in x.chunks_exact(g.w).enumerate() {
        let r = ih + pad[0];
        let phase = if r.is_multiple_of(2) { &mut *even_rows } else { &mut *odd_rows };
        let (even, odd) = phase.split_at_mut(rows * pitch);
        let at = r / 2 * pitch;
        // Padded column c = iw + left goes to even[c / 2] or odd[c / 2].
        let (first, second) = if pad[2].is_multiple_of(2) { (even, odd) } else { (odd, even) };
        let (offset, second_offset) = (at + pad[2] / 2, at + pad[2].div_ceil(2));
        let n = src.len() / 2;
        if src.len() % 2 == 1 {
            first[offset + n] = src[src.len() - 1];
        }
        deinterleave(&src[..2 * n], &mut first[offset..offset + n], &mut second[second_offset..second_offset + n]);
    }
    pitch
}

/// `even[j] = src[2j]`, `odd[j] = src[2j + 1]`, written as indexed loads so that the compiler
/// turns them into vector shuffles.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub(super) fn deinterleave(src: &[f32], even: &mut [f32], odd: &mut [f32]) {
    let n = even.len().min(odd.len()).min(src.len() / 2);
    let (src, even, odd) = (&src[..2 * n], &mut even[..n], &mut odd[..n]);
    for j in 0..n {
        even[j] = src[2 * j];
        odd[j] = src[2 * j + 1];
    }
}

/// How the nine taps of a flat run relate, for the AVX-512 kernel: kernel row `kh`'s taps are
/// `taps[3 kh..3 kh + 3]`, and `taps[3 kh + 2]` is `taps[3 kh]` two along (stride 1: the three
/// are one row at offsets 0, 1, 2) or one along (stride 2, over the parity planes of
/// [`split_phases`]: even columns at 0 and 1 with the odd columns between).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Run {
    /// With `Some(edges)`, a run over whole rows of the unpadded plane (see [`Edges`]).
    Stride1(Option<Edges>),
    Stride2,
}

/// A stride-1 run over an unpadded plane's rows, `width` outputs a row, output 0 in column
/// `column`: in the first column of a row the taps of kernel column 0 read the previous row's
/// last sample and in the last column those of kernel column 2 the next row's first, where the
/// padding is zero; those taps are left out there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Edges {
    pub(super) width: usize,
    pub(super) column: usize,
}

impl Edges {
    /// The outputs of the run in kernel column `kw`'s edge column (`kw` 0: the first column, 2:
    /// the last), in order, without end.
    fn outputs(self, kw: usize) -> impl Iterator<Item = usize> {
        let edge = if kw == 0 { 0 } else { self.width - 1 };
        ((edge + self.width - self.column % self.width) % self.width..).step_by(self.width)
    }
}

/// `out[i] = e(Σ_t w[t] * taps[t][i])`: a 3x3 stencil whose nine taps are nine slices that the
/// outputs walk in step, laid out as `run` says.
pub(super) fn nine_taps(out: &mut [f32], taps: [&[f32]; 9], w: &[f32], e: Epilogue, run: Run) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, checked just above.
        return unsafe { avx512::nine_taps(out, taps, w, e, run) };
    }
    nine_taps_portable(out, taps, w, e);
    if let Run::Stride1(Some(edges)) = run {
        sum_edges_again(out, taps, w, e, edges);
    }
}

/// The edge columns of a run, summed again without the taps that fell on the neighbouring row.
pub(super) fn sum_edges_again(out: &mut [f32], taps: [&[f32]; 9], w: &[f32], e: Epilogue, edges: Edges) {
    let n = out.len();
    for kw in [0, K - 1] {
        for i in edges.outputs(kw).take_while(|&i| i < n) {
            let sum: f32 = (0..K * K).filter(|t| t % K != kw).map(|t| w[t] * taps[t][i]).sum();
            out[i] = e.on(sum);
        }
    }
}

/// [`nine_taps`] in portable code, vectorised by the compiler, in three chains of fused
/// multiply-adds.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub(super) fn nine_taps_portable(out: &mut [f32], taps: [&[f32]; 9], w: &[f32], e: Epilogue) {
    const FMA: bool = has_fma!();
    let n = out.len();
    let [t0, t1, t2, t3, t4, t5, t6, t7, t8] = taps.map(|t| &t[..n]);
    let w = &w[..9];
    for i in 0..n {
        let top = madd::<FMA>(w[2], t2[i], madd::<FMA>(w[1], t1[i], w[0] * t0[i]));
        let middle = madd::<FMA>(w[5], t5[i], madd::<FMA>(w[4], t4[i], w[3] * t3[i]));
        let bottom = madd::<FMA>(w[8], t8[i], madd::<FMA>(w[7], t7[i], w[6] * t6[i]));
        out[i] = e.on(top + middle + bottom);
    }
}

/// [`nine_taps`] with AVX-512, 16 outputs at a time.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Edges, Epilogue, Run, K};

    const L: isize = 16;

    /// The lanes of the vector at `i` whose elements `i + lane` fall in `0..len`.
    fn inside_lanes(i: isize, len: usize) -> __mmask16 {
        let (lo, hi) = ((-i).clamp(0, L), (len as isize - i).clamp(0, L));
        (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as __mmask16
    }

    /// The lanes in the first and in the last column of rows `width` long, when lane 0 is in
    /// column `column` (below `width`).
    #[inline]
    fn edge_lanes(column: usize, width: usize) -> (__mmask16, __mmask16) {
        let lanes_from = |mut lane: usize| {
            let mut lanes = 0u32;
            while lane < L as usize {
                lanes |= 1 << lane;
                lane += width;
            }
            lanes as __mmask16
        };
        (lanes_from(if column == 0 { 0 } else { width - column }), lanes_from(width - 1 - column))
    }

    /// The vector of `r` at `i`; with `all_inside` false, zero in the lanes outside `r`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn load(r: &[f32], i: isize, all_inside: bool) -> __m512 {
        if all_inside {
            assert!(i >= 0 && i + L <= r.len() as isize);
            // SAFETY: the 16 floats from `i` are inside `r` (asserted just above).
            return unsafe { _mm512_loadu_ps(r.as_ptr().offset(i)) };
        }
        // SAFETY: only the lanes inside `r` are read (masked loads do not touch the others), so
        // the pointer to the vector's start need not be inside `r`.
        unsafe { _mm512_maskz_loadu_ps(inside_lanes(i, r.len()), r.as_ptr().wrapping_offset(i)) }
    }

    /// `a` moved `BY` lanes along, the lanes from the end filled from `b`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn along<const BY: i32>(a: __m512, b: __m512) -> __m512 {
        _mm512_castsi512_ps(_mm512_alignr_epi32::<BY>(_mm512_castps_si512(b), _mm512_castps_si512(a)))
    }

    /// The whole of [`super::nine_taps`]: vectors from the cache-line boundary at or before
    /// `out`'s start, with the lanes outside `out` masked off, so that every store is aligned
    /// and no output is left to scalar code. Each vector of the first tap of each kernel row
    /// is loaded once, and its neighbours along are shifted out of it and the next vector in
    /// registers (`valignd`): loaded as such they would straddle cache lines, and split loads,
    /// not the arithmetic, were what bounded the portable kernel.
    #[target_feature(enable = "avx512f")]
    pub(super) fn nine_taps(out: &mut [f32], taps: [&[f32]; 9], w: &[f32], e: Epilogue, run: Run) {
        match run {
            Run::Stride1(None) => vectors::<1, false>(out, taps, w, e, None),
            Run::Stride1(Some(edges)) => vectors::<1, true>(out, taps, w, e, Some(edges)),
            Run::Stride2 => vectors::<2, false>(out, taps, w, e, None),
        }
    }

    /// What the vectors of one run share.
    struct Stencil<'a> {
        taps: [&'a [f32]; 9],
        w: [__m512; 9],
        bias: __m512,
        lo: __m512,
        hi: __m512,
        /// Rows `width` long, when `EDGES`.
        width: usize,
    }

    /// Where the run is: the vector at `i`, the column of its lane 0 (when `EDGES`), and the
    /// vector at `i` of each kernel row's first tap.
    struct At {
        i: isize,
        column: usize,
        current: [__m512; 3],
    }

    #[target_feature(enable = "avx512f")]
    fn vectors<const STRIDE: usize, const EDGES: bool>(out: &mut [f32], taps: [&[f32]; 9], w: &[f32], e: Epilogue, edges: Option<Edges>) {
        let n = out.len() as isize;
        let start = -(((out.as_ptr() as usize) % 64 / 4) as isize);
        // Below this, vectors `i` and `i + L` of every tap lie inside it, and vector `i` in `out`.
        let unmasked_end = taps.iter().map(|t| t.len() as isize - L).min().unwrap_or(0).min(n) - L + 1;
        let st = Stencil {
            taps,
            w: [0, 1, 2, 3, 4, 5, 6, 7, 8].map(|t| _mm512_set1_ps(w[t])),
            bias: _mm512_set1_ps(e.bias),
            lo: _mm512_set1_ps(e.lo),
            hi: _mm512_set1_ps(e.hi),
            width: edges.map_or(1, |edges| edges.width),
        };
        let column = edges.map_or(0, |edges| (edges.column as isize + start).rem_euclid(edges.width as isize) as usize);
        let mut at = At { i: start, column, current: [0, 1, 2].map(|kh| load(taps[kh * K], start, false)) };
        while at.i < n && !(at.i >= 0 && at.i < unmasked_end) {
            vector::<STRIDE, EDGES, false>(&st, &mut at, out);
        }
        while at.i < unmasked_end {
            vector::<STRIDE, EDGES, true>(&st, &mut at, out);
        }
        while at.i < n {
            vector::<STRIDE, EDGES, false>(&st, &mut at, out);
        }
    }

    /// The 16 outputs at `at.i`, then on to the next; `INSIDE`: all of them, and every value
    /// they read, are inside the slices (no masks needed).
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn vector<const STRIDE: usize, const EDGES: bool, const INSIDE: bool>(st: &Stencil, at: &mut At, out: &mut [f32]) {
        let i = at.i;
        // The taps of kernel columns 0 and 2 that each lane keeps.
        let (keep_first, keep_last) = if EDGES {
            let (first, last) = edge_lanes(at.column, st.width);
            (!first, !last)
        } else {
            (!0, !0)
        };
        let mut sum = st.bias;
        for (kh, a) in at.current.iter_mut().enumerate() {
            let b = load(st.taps[kh * K], i + L, INSIDE);
            let (middle, last) = if STRIDE == 1 { (along::<1>(*a, b), along::<2>(*a, b)) } else { (load(st.taps[kh * K + 1], i, INSIDE), along::<1>(*a, b)) };
            let first = if EDGES { _mm512_maskz_mul_ps(keep_first, st.w[kh * K], *a) } else { _mm512_mul_ps(st.w[kh * K], *a) };
            let row = _mm512_fmadd_ps(st.w[kh * K + 1], middle, first);
            let row = if EDGES { _mm512_mask3_fmadd_ps(st.w[kh * K + 2], last, row, keep_last) } else { _mm512_fmadd_ps(st.w[kh * K + 2], last, row) };
            sum = _mm512_add_ps(sum, row);
            *a = b;
        }
        // `max(lo, v)` and `min(hi, v)` keep `v` when it is NaN, as `Epilogue::on` does.
        let v = _mm512_min_ps(st.hi, _mm512_max_ps(st.lo, sum));
        if INSIDE {
            assert!(i >= 0 && i + L <= out.len() as isize);
            // SAFETY: the 16 floats from `i` are inside `out` (asserted just above).
            unsafe { _mm512_storeu_ps(out.as_mut_ptr().offset(i), v) };
        } else {
            // SAFETY: only the lanes inside `out` are written.
            unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr().wrapping_offset(i), inside_lanes(i, out.len()), v) };
        }
        if EDGES {
            at.column += L as usize;
            while at.column >= st.width {
                at.column -= st.width;
            }
        }
        at.i += L;
    }
}

/// Stride-1 outputs from three input rows (or three row-length-apart runs of a flat plane):
/// `out[i] = e(Σ_kh Σ_kw w[kh, kw] * r_kh[i + kw])`.
fn row_stride1(out: &mut [f32], [r0, r1, r2]: [&[f32]; 3], w: &[f32], e: Epilogue, edges: Option<Edges>) {
    nine_taps(out, [r0, &r0[1..], &r0[2..], r1, &r1[1..], &r1[2..], r2, &r2[1..], &r2[2..]], w, e, Run::Stride1(edges))
}

thread_local! {
    /// A padded input plane.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// A plane laid out at the padded row length.
    static SPREAD: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `y = sum_{kh, kw} w[kh, kw] * x_padded[oh * s + kh, ow * s + kw]` for one plane.
pub(super) fn stencil_forward(g: &Geometry, pad: Pad, x: &[f32], w: &[f32], e: Epilogue, out: &mut [f32]) {
    if g.stride == 2 {
        return stencil_forward_stride2(g, pad, x, w, e, out);
    }
    if pad[2] == 1 && pad[3] == 1 && g.w >= 2 {
        return stencil_forward_same(g, x, w, e, out);
    }
    for (oh, dst) in out.chunks_exact_mut(g.wo).enumerate() {
        stencil_row(g, x, w, e, oh, dst);
    }
}

/// The nine taps of the stride-2 flat run, as runs of the four parity planes of
/// [`split_phases`] (pitch `p`): output `j` reads element `j` of each.
fn phase_taps(phases: &[f32], p: usize) -> [&[f32]; 9] {
    let plane = phases.len() / 4;
    let [ee, eo, oe, oo] = [0, 1, 2, 3].map(|i| &phases[i * plane..(i + 1) * plane]);
    [ee, eo, &ee[1..], oe, oo, &oe[1..], &ee[p..], &eo[p..], &ee[p + 1..]]
}

/// Stride 2 as one flat run over the four parity planes of [`split_phases`], copied into
/// `out`'s rows (the run has one more column per row than the output).
fn stencil_forward_stride2(g: &Geometry, pad: Pad, x: &[f32], w: &[f32], e: Epilogue, out: &mut [f32]) {
    SCRATCH.with_borrow_mut(|phases| {
        let p = split_phases(g, pad, x, phases);
        SPREAD.with_borrow_mut(|spread| {
            spread.clear();
            spread.resize((g.ho - 1) * p + g.wo, 0.0);
            nine_taps(spread, phase_taps(phases, p), w, e, Run::Stride2);
            for (dst, src) in out.chunks_exact_mut(g.wo).zip(spread.chunks(p)) {
                dst.copy_from_slice(&src[..g.wo]);
            }
        })
    });
}

/// Stride 1 with one column of padding on each side (MobileNetV2's "same"), straight from the
/// unpadded plane. Output rows are as long as input rows, so the rows whose three input rows
/// are all inside the image are one flat run: output `i` reads samples `i + (kh - top) * w +
/// kw - 1`, every vector full however short the rows; in each row's first and last column the
/// taps that fall on the neighbouring row instead of the padding are left out ([`Edges`]).
/// The rows that read the top or bottom padding are summed row by row.
fn stencil_forward_same(g: &Geometry, x: &[f32], w: &[f32], e: Epilogue, out: &mut [f32]) {
    let wd = g.w;
    // Output rows `first..end` read input rows `oh - top ..= oh - top + 2`, all inside.
    let first = g.top.min(g.ho);
    let end = (g.h + g.top).saturating_sub(K - 1).clamp(first, g.ho);
    if (end - first) * wd >= 2 {
        // The run leaves out the first and the last output, whose first and last taps would
        // fall outside the plane (both are edge columns, summed below).
        let run = &mut out[first * wd + 1..end * wd - 1];
        row_stride1(run, [x, &x[wd..], &x[2 * wd..]], w, e, Some(Edges { width: wd, column: 1 }));
    }
    if end > first {
        for (oh, ow) in [(first, 0), (end - 1, wd - 1)] {
            let (rows, taps) = row_taps(g, x, w, oh);
            columns_one_by_one(g, rows, &taps, e, &mut out[oh * wd..(oh + 1) * wd], [ow].into_iter());
        }
    }
    for oh in (0..first).chain(end..g.ho) {
        stencil_row(g, x, w, e, oh, &mut out[oh * g.wo..(oh + 1) * g.wo]);
    }
}

/// Output row `oh`'s three input rows and the weights that go with them: a kernel row that
/// falls on the padding reads any image row with zero weights.
fn row_taps<'a>(g: &Geometry, x: &'a [f32], w: &[f32], oh: usize) -> ([&'a [f32]; 3], [f32; 9]) {
    let row = |ih: usize| &x[ih * g.w..(ih + 1) * g.w];
    let mut taps = [0f32; 9];
    let mut rows = [row(0); 3];
    for kh in 0..K {
        if let Some(ih) = g.in_row(oh, kh) {
            rows[kh] = row(ih);
            taps[kh * K..kh * K + K].copy_from_slice(&w[kh * K..kh * K + K]);
        }
    }
    (rows, taps)
}

/// Output columns `columns` of one row, each summed apart with its column bounds checked.
fn columns_one_by_one(g: &Geometry, rows: [&[f32]; 3], taps: &[f32; 9], e: Epilogue, dst: &mut [f32], columns: impl Iterator<Item = usize>) {
    for ow in columns {
        let mut sum = 0.0;
        for kw in 0..K {
            if let Some(iw) = g.in_col_checked(ow, kw) {
                sum += (0..K).map(|kh| taps[kh * K + kw] * rows[kh][iw]).sum::<f32>();
            }
        }
        dst[ow] = e.on(sum);
    }
}

/// Stride-1 output row `oh` with any padding: the columns whose three taps are inside the image
/// run the vectorised row kernel, the one or two edge columns are summed apart.
fn stencil_row(g: &Geometry, x: &[f32], w: &[f32], e: Epilogue, oh: usize, dst: &mut [f32]) {
    let (rows, taps) = row_taps(g, x, w, oh);
    // Output columns `lo..hi` read input columns `lo - left ..= hi - left + 1`, all inside.
    let lo = g.left.min(g.wo);
    let hi = (g.w + g.left).saturating_sub(K - 1).clamp(lo, g.wo);
    if hi > lo {
        row_stride1(&mut dst[lo..hi], rows.map(|r| &r[lo - g.left..]), &taps, e, None);
    }
    columns_one_by_one(g, rows, &taps, e, dst, (0..lo).chain(hi..g.wo));
}

/// The transpose of [`stencil_forward`]: scatters `grad` (`ho x wo`) back onto `dx` (`h x w`,
/// zeroed). At stride 1 that is itself a stencil: the kernel flipped, over `grad` padded by two
/// minus each side's padding.
pub(super) fn stencil_backward_data(g: &Geometry, pad: Pad, grad: &[f32], w: &[f32], dx: &mut [f32]) {
    if g.stride == 1 && pad.iter().all(|&p| p <= 2) {
        let mut flipped = [0f32; K * K];
        flipped.copy_from_slice(w);
        flipped.reverse();
        let pad = pad.map(|p| 2 - p);
        let g = Geometry::new(g.ho, g.wo, 1, pad).expect("the transposed stencil fits");
        return stencil_forward(&g, pad, grad, &flipped, Epilogue::new(0.0, false), dx);
    }
    if g.stride == 2 {
        return stencil_backward_data_stride2(g, pad, grad, w, dx);
    }
    for oh in 0..g.ho {
        let src = &grad[oh * g.wo..(oh + 1) * g.wo];
        for kh in 0..K {
            let Some(ih) = g.in_row(oh, kh) else { continue };
            let row = &mut dx[ih * g.w..(ih + 1) * g.w];
            for kw in 0..K {
                let wv = w[kh * K + kw];
                let (lo, hi) = g.col_range(kw);
                if lo >= hi {
                    continue;
                }
                if g.stride == 1 {
                    let start = g.in_col(lo, kw);
                    for (d, s) in row[start..start + (hi - lo)].iter_mut().zip(&src[lo..hi]) {
                        *d += wv * s;
                    }
                } else {
                    for ow in lo..hi {
                        row[g.in_col(ow, kw)] += wv * src[ow];
                    }
                }
            }
        }
    }
}

/// The transpose of [`stencil_forward_stride2`]: the gradient of each parity plane is a sum of
/// shifted copies of `grad` laid out at the planes' pitch (output `j` read element `j + shift`
/// of a plane, so that element receives output `j - shift`), then the planes are woven back
/// into the rows of `dx`, the padding left out.
fn stencil_backward_data_stride2(g: &Geometry, pad: Pad, grad: &[f32], w: &[f32], dx: &mut [f32]) {
    let p = g.wo + 1;
    let plane = (g.ho + 1) * p;
    SPREAD.with_borrow_mut(|spread| {
        // `grad` at pitch `p` after `p + 1` zeros, so that every shift of it starts in the buffer.
        spread.clear();
        spread.resize(p + 1 + plane, 0.0);
        for (oh, src) in grad.chunks_exact(g.wo).enumerate() {
            let at = p + 1 + oh * p;
            spread[at..at + g.wo].copy_from_slice(src);
        }
        let shifted = |shift: usize| &spread[p + 1 - shift..p + 1 - shift + plane];
        SCRATCH.with_borrow_mut(|phases| {
            phases.clear();
            phases.resize(4 * plane, 0.0);
            // Tap t of `phase_taps` reads plane `PLANE[t]` at shift `SHIFT[t]` (in units of 1 and `p`).
            const PLANE: [usize; 9] = [0, 1, 0, 2, 3, 2, 0, 1, 0];
            const SHIFT: [(usize, usize); 9] = [(0, 0), (0, 0), (1, 0), (0, 0), (0, 0), (1, 0), (0, 1), (0, 1), (1, 1)];
            for t in 0..K * K {
                let (ones, rows) = SHIFT[t];
                axpy(&mut phases[PLANE[t] * plane..(PLANE[t] + 1) * plane], w[t], shifted(ones + rows * p));
            }
            let [ee, eo, oe, oo] = [0, 1, 2, 3].map(|i| &phases[i * plane..(i + 1) * plane]);
            for (ih, dst) in dx.chunks_exact_mut(g.w).enumerate() {
                let r = ih + pad[0];
                let (even, odd) = if r.is_multiple_of(2) { (ee, eo) } else { (oe, oo) };
                let at = r / 2 * p;
                // Padded column c = iw + left comes from even[c / 2] or odd[c / 2], as split_phases laid it out.
                let (first, second) = if pad[2].is_multiple_of(2) { (even, odd) } else { (odd, even) };
                let (offset, second_offset) = (at + pad[2] / 2, at + pad[2].div_ceil(2));
                let n = dst.len() / 2;
                if dst.len() % 2 == 1 {
                    dst[2 * n] = first[offset + n];
                }
                interleave(&first[offset..offset + n], &second[second_offset..second_offset + n], &mut dst[..2 * n]);
            }
        });
    });
}

/// `out += a * x`.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn axpy(out: &mut [f32], a: f32, x: &[f32]) {
    out.iter_mut().zip(x).for_each(|(o, x)| *o += a * x);
}

/// `dst[2j] = even[j]`, `dst[2j + 1] = odd[j]`: the inverse of [`deinterleave`].
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn interleave(even: &[f32], odd: &[f32], dst: &mut [f32]) {
    let n = even.len().min(odd.len()).min(dst.len() / 2);
    let (even, odd, dst) = (&even[..n], &odd[..n], &mut dst[..2 * n]);
    for j in 0..n {
        dst[2 * j] = even[j];
        dst[2 * j + 1] = odd[j];
    }
}

/// `a · b`, in 16 lanes so that it vectorises.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let rest: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..16 {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().sum::<f32>() + rest
}

/// `dw[kh, kw] += sum_{oh, ow} grad[oh, ow] * x_padded[oh * s + kh, ow * s + kw]` for one plane.
/// At stride 1, with `grad`'s rows laid out at the padded row length (zeros past `wo`), each tap
/// is one dot product over the whole plane, instead of nine short ones per row.
pub(super) fn stencil_backward_filter(g: &Geometry, pad: Pad, x: &[f32], grad: &[f32], dw: &mut [f32; 9]) {
    if g.stride == 1 {
        return SCRATCH.with_borrow_mut(|padded| {
            let wp = pad_plane(g, pad, x, padded);
            padded.resize(padded.len() + K - 1, 0.0); // the last tap reads two past the plane
            SPREAD.with_borrow_mut(|spread| {
                spread.clear();
                spread.resize(g.ho * wp, 0.0);
                for (dst, src) in spread.chunks_exact_mut(wp).zip(grad.chunks_exact(g.wo)) {
                    dst[..g.wo].copy_from_slice(src);
                }
                for (tap, d) in dw.iter_mut().enumerate() {
                    let start = tap / K * wp + tap % K;
                    *d += dot(spread, &padded[start..start + spread.len()]);
                }
            })
        });
    }
    // Stride 2: over the parity planes, as the forward flat run, one dot product per tap.
    SCRATCH.with_borrow_mut(|phases| {
        let p = split_phases(g, pad, x, phases);
        SPREAD.with_borrow_mut(|spread| {
            spread.clear();
            spread.resize((g.ho - 1) * p + g.wo, 0.0);
            for (dst, src) in spread.chunks_mut(p).zip(grad.chunks_exact(g.wo)) {
                dst[..g.wo].copy_from_slice(src);
            }
            for (d, tap) in dw.iter_mut().zip(phase_taps(phases, p)) {
                *d += dot(spread, &tap[..spread.len()]);
            }
        })
    });
}
