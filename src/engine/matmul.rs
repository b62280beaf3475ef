//! Row-major matrix views and the one matrix multiply (`gemm`, AVX-512 where the CPU has it)
//! that the 1x1 and the dense convolutions are made of.

use gemm::Parallelism;
use rayon::prelude::*;

/// Row-major matrix views for [`matmul`]: `(data, rows, cols, transposed)`.
pub(super) struct Mat<'a> {
    pub(super) data: &'a [f32],
    pub(super) rows: usize,
    pub(super) cols: usize,
    /// Read the stored `cols x rows` matrix transposed.
    transposed: bool,
}

impl<'a> Mat<'a> {
    pub(super) fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self { data, rows, cols, transposed: false }
    }

    pub(super) fn t(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self { data, rows, cols, transposed: true }
    }

    /// `(column stride, row stride)` of the logical `rows x cols` matrix.
    fn strides(&self) -> (isize, isize) {
        if self.transposed {
            (self.rows as isize, 1)
        } else {
            (1, self.cols as isize)
        }
    }
}

/// `dst (m x n) = a (m x k) · b (k x n)`, plus `dst` itself when `accumulate` (otherwise `dst`
/// is only written, never read).
pub(super) fn matmul(dst: &mut [f32], a: &Mat, b: &Mat, accumulate: bool, parallelism: Parallelism) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(b.rows == k && dst.len() == m * n && a.data.len() == m * k && b.data.len() == k * n);
    let ((a_cs, a_rs), (b_cs, b_rs)) = (a.strides(), b.strides());
    // SAFETY: the three buffers hold exactly the m x k, k x n and m x n elements the strides
    // address (asserted above), and `dst` is borrowed mutably, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m, n, k, dst.as_mut_ptr(), 1, n as isize, accumulate, a.data.as_ptr(), a_cs, a_rs,
            b.data.as_ptr(), b_cs, b_rs, 1.0, 1.0, false, false, false, parallelism,
        );
    }
}

/// `Σ_i` over `n` images of what `add_image(i, acc, scratch)` adds into a `len`-element
/// accumulator: one accumulator (and scratch) per worker, added up at the end. For weight
/// gradients, which sum one multiply per image.
pub(super) fn sum_over_images<S: Default + Send>(n: usize, len: usize, add_image: impl Fn(usize, &mut [f32], &mut S) + Sync) -> Vec<f32> {
    (0..n)
        .into_par_iter()
        .fold(
            || (vec![0f32; len], S::default()),
            |(mut acc, mut scratch), i| {
                add_image(i, &mut acc, &mut scratch);
                (acc, scratch)
            },
        )
        .map(|(acc, _)| acc)
        .reduce(
            || vec![0f32; len],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            },
        )
}
