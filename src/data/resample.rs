//! Separable bilinear resampling of 8-bit planes to float rows, one output row at a time, for the
//! JPEG road of [`super::jpeg`].
//!
//! The weights are Pillow's (and fast_image_resize's): a triangle filter around each output
//! pixel's centre, widened by the shrink factor when antialiasing. What differs is the order of
//! work: each output row is first blended from the source rows it needs (contiguous, vectorised),
//! then from that one float row each output pixel takes its few neighbours. fast_image_resize
//! filters every source row horizontally first, single-channel one pixel at a time; on 500x375
//! photos that was a third of the whole pipeline. Rows stay in float, so nothing is rounded to a
//! byte between resizing and colour conversion.

use super::resize::Resize;

/// The weights of one axis: output `i` is `sum(weights[k * len + i] * source[starts[i] + k])` over
/// the `taps`, with `len` outputs. Tap-major, so one tap of consecutive outputs is one vector.
#[derive(Debug, Clone)]
pub struct Filter {
    starts: Vec<u32>,
    weights: Vec<f32>,
    taps: usize,
}

impl Filter {
    /// From `extent` source samples (fractional when a subsampled chroma plane covers an odd
    /// image size; `available` ≥ `extent.ceil()` of them may be read) to `out` samples.
    pub fn new(extent: f64, available: usize, out: usize, resize: Resize) -> Self {
        let scale = extent / out as f64;
        let widen = if resize == Resize::Antialiased { scale.max(1.0) } else { 1.0 };
        let (support, last) = (widen, (extent.ceil() as usize).min(available).max(1));
        let taps = ((2.0 * support).ceil() as usize).clamp(1, last);
        let (mut starts, mut weights) = (Vec::with_capacity(out), vec![0f32; out * taps]);
        let narrow = 1.0 / widen;
        for i in 0..out {
            let centre = (i as f64 + 0.5) * scale;
            // `as usize` floors these (non-negative after the clamp) without a libm call.
            let lo = ((centre - support + 0.5).max(0.0) as usize).min(last - 1);
            let hi = ((centre + support + 0.5) as usize).clamp(lo + 1, last).min(lo + taps);
            // Shifted left at the far edge so that all `taps` reads stay inside the plane.
            let start = lo.min(available - taps);
            let mut sum = 0.0;
            for j in lo..hi {
                let triangle = (1.0 - ((j as f64 + 0.5 - centre) * narrow).abs()).max(0.0);
                weights[(j - start) * out + i] = triangle as f32;
                sum += triangle;
            }
            let norm = if sum > 0.0 { (1.0 / sum) as f32 } else { 0.0 };
            for j in lo..hi {
                let w = &mut weights[(j - start) * out + i];
                *w = if sum > 0.0 { *w * norm } else { 1.0 / (hi - lo) as f32 };
            }
            starts.push(start as u32);
        }
        Self { starts, weights, taps }
    }

    /// One output row (as many samples as the filter has outputs) from one source row.
    pub fn horizontal(&self, src: &[f32], out: &mut [f32]) {
        let (starts, w) = (&self.starts[..], &self.weights[..]);
        match self.taps {
            2 => gather::<2>(starts, w, src, out),
            3 => gather::<3>(starts, w, src, out),
            4 => gather::<4>(starts, w, src, out),
            5 => gather::<5>(starts, w, src, out),
            6 => gather::<6>(starts, w, src, out),
            taps => {
                for (i, (o, &s)) in out.iter_mut().zip(starts).enumerate() {
                    *o = (0..taps).map(|k| src[s as usize + k] * w[k * starts.len() + i]).sum();
                }
            }
        }
    }

    /// Output row `i` of a plane (rows `stride` bytes apart), blended from its source rows.
    pub fn vertical(&self, plane: &[u8], stride: usize, i: usize, out: &mut [f32]) {
        let (start, len) = (self.starts[i] as usize, self.starts.len());
        out.fill(0.0);
        for k in 0..self.taps {
            let w = self.weights[k * len + i];
            if w != 0.0 {
                accumulate(out, &plane[(start + k) * stride..][..out.len()], w);
            }
        }
    }
}

/// `out += w * row`, bytes widened to float.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn accumulate(out: &mut [f32], row: &[u8], w: f32) {
    for (o, &x) in out.iter_mut().zip(row) {
        *o += w * f32::from(x);
    }
}

/// [`Filter::horizontal`] for `K` taps. The source reads are gathers; compilers do not emit those
/// on their own, so on x86 with AVX-512 or AVX2 the loop is written with them (16 or 8 outputs per
/// step), and anything left runs as plain code.
fn gather<const K: usize>(starts: &[u32], weights: &[f32], src: &[f32], out: &mut [f32]) {
    let n = starts.len();
    assert!(out.len() >= n && weights.len() >= K * n, "a row of the filter's size");
    // Starts never decrease, so this bounds every read of the vector paths below.
    assert!(starts.last().is_none_or(|&s| s as usize + K <= src.len()), "source row shorter than the filter reads");
    #[allow(unused_mut)]
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the CPU has the feature, and every read is in bounds (asserted above).
        if is_x86_feature_detected!("avx512f") {
            done = unsafe { x86::gather16::<K>(starts, weights, src, out) };
        } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            done = unsafe { x86::gather8::<K>(starts, weights, src, out) };
        }
    }
    for i in done..n {
        let s = starts[i] as usize;
        out[i] = (0..K).map(|k| src[s + k] * weights[k * n + i]).sum();
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Outputs `0..returned` of [`super::gather`], 16 at a time.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `out` and `weights` hold a row (`K` rows) of `starts.len()`, and every
    /// `starts[i] + K <= src.len()`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn gather16<const K: usize>(starts: &[u32], weights: &[f32], src: &[f32], out: &mut [f32]) -> usize {
        let n = starts.len();
        let mut i = 0;
        while i + 16 <= n {
            unsafe {
                let at = _mm512_loadu_si512(starts.as_ptr().add(i).cast());
                let mut acc = _mm512_setzero_ps();
                for k in 0..K {
                    let x = _mm512_i32gather_ps::<4>(_mm512_add_epi32(at, _mm512_set1_epi32(k as i32)), src.as_ptr());
                    acc = _mm512_fmadd_ps(x, _mm512_loadu_ps(weights.as_ptr().add(k * n + i)), acc);
                }
                _mm512_storeu_ps(out.as_mut_ptr().add(i), acc);
            }
            i += 16;
        }
        i
    }

    /// [`gather16`] with AVX2, 8 at a time.
    ///
    /// # Safety
    /// As [`gather16`], with AVX2 and FMA instead of AVX-512F.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gather8<const K: usize>(starts: &[u32], weights: &[f32], src: &[f32], out: &mut [f32]) -> usize {
        let n = starts.len();
        let mut i = 0;
        while i + 8 <= n {
            unsafe {
                let at = _mm256_loadu_si256(starts.as_ptr().add(i).cast());
                let mut acc = _mm256_setzero_ps();
                for k in 0..K {
                    let x = _mm256_i32gather_ps::<4>(src.as_ptr(), _mm256_add_epi32(at, _mm256_set1_epi32(k as i32)));
                    acc = _mm256_fmadd_ps(x, _mm256_loadu_ps(weights.as_ptr().add(k * n + i)), acc);
                }
                _mm256_storeu_ps(out.as_mut_ptr().add(i), acc);
            }
            i += 8;
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resized(src: &[u8], out: usize, resize: Resize) -> Vec<f32> {
        let filter = Filter::new(src.len() as f64, src.len(), out, resize);
        let row: Vec<f32> = src.iter().map(|&x| f32::from(x)).collect();
        let mut dst = vec![0.0; out];
        filter.horizontal(&row, &mut dst);
        dst
    }

    #[test]
    fn halving_averages_pairs_and_a_constant_stays_constant() {
        // Plain bilinear halving samples exactly between two pixels.
        assert_eq!(resized(&[0, 10, 20, 30], 2, Resize::Bilinear), [5.0, 25.0]);
        for resize in [Resize::Bilinear, Resize::Antialiased] {
            for out in [1, 3, 7, 224] {
                assert!(resized(&[77; 500], out, resize).iter().all(|&v| (v - 77.0).abs() < 1e-3), "{resize:?} {out}");
            }
        }
    }

    #[test]
    fn antialiasing_blurs_what_plain_bilinear_aliases() {
        // A one-pixel stripe pattern shrunk 3x: plain bilinear keeps stripes, the widened filter
        // averages them toward the mean.
        let stripes: Vec<u8> = (0..300).map(|i| if i % 2 == 0 { 0 } else { 200 }).collect();
        let spread = |v: Vec<f32>| v.iter().fold(0f32, |m, &x| m.max((x - 100.0).abs()));
        assert!(spread(resized(&stripes, 100, Resize::Antialiased)) < 40.0);
        assert!(spread(resized(&stripes, 100, Resize::Bilinear)) > 90.0);
    }

    #[test]
    fn vertical_blends_the_same_way_as_horizontal() {
        let column = [3u8, 50, 90, 200, 17];
        let filter = Filter::new(5.0, 5, 3, Resize::Antialiased);
        let across = resized(&column, 3, Resize::Antialiased);
        for (i, expected) in across.iter().enumerate() {
            let mut out = [0.0];
            filter.vertical(&column, 1, i, &mut out);
            assert!((out[0] - expected).abs() < 1e-4);
        }
    }
}
