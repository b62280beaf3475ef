//! Row-major matrix views and the one matrix multiply (`gemm`, AVX-512 where the CPU has it)
//! that the 1x1 and the dense convolutions are made of.

use std::mem::MaybeUninit;

use gemm::Parallelism;
use rayon::prelude::*;

/// Row-major matrix views for [`matmul`]: `(data, rows, cols, transposed)`, and for views of
/// some columns, the distance between rows.
pub(super) struct Mat<'a> {
    pub(super) data: &'a [f32],
    pub(super) rows: usize,
    pub(super) cols: usize,
    /// Read the stored `cols x rows` matrix transposed.
    transposed: bool,
    /// Elements from one row to the next (not transposed): `cols`, or more in a view of columns.
    stride: usize,
}

impl<'a> Mat<'a> {
    pub(super) fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self { data, rows, cols, transposed: false, stride: cols }
    }

    pub(super) fn t(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self { data, rows, cols, transposed: true, stride: rows }
    }

    /// Columns `range` of a matrix that is not transposed.
    pub(super) fn columns(&self, range: std::ops::Range<usize>) -> Mat<'a> {
        assert!(!self.transposed && range.end <= self.cols);
        Mat { data: &self.data[range.start..], cols: range.len(), ..*self }
    }

    /// `(column stride, row stride)` of the logical `rows x cols` matrix.
    fn strides(&self) -> (isize, isize) {
        if self.transposed {
            (self.rows as isize, 1)
        } else {
            (1, self.stride as isize)
        }
    }

    /// Whether `data` holds every element the strides address.
    fn fits(&self) -> bool {
        let (cs, rs) = self.strides();
        self.rows == 0 || self.cols == 0 || (self.rows - 1) * rs as usize + (self.cols - 1) * (cs as usize) < self.data.len()
    }
}

/// `dst (m x n) = a (m x k) · b (k x n)`, plus `dst` itself when `accumulate` (otherwise `dst`
/// is only written, never read).
pub(super) fn matmul(dst: &mut [f32], a: &Mat, b: &Mat, accumulate: bool, parallelism: Parallelism) {
    assert_eq!(dst.len(), a.rows * b.cols);
    matmul_strided(dst, b.cols, a, b, accumulate, parallelism)
}

/// [`matmul`] (not accumulating) into memory not yet initialised, which it returns written.
pub(super) fn matmul_uninit<'a>(dst: &'a mut [MaybeUninit<f32>], a: &Mat, b: &Mat, parallelism: Parallelism) -> &'a mut [f32] {
    assert_eq!(dst.len(), a.rows * b.cols);
    matmul_strided_uninit(dst, b.cols, a, b, parallelism);
    // SAFETY: the block is all of `dst`, and `matmul_strided_uninit` wrote every element of it.
    unsafe { super::assume_written(dst) }
}

/// [`matmul`] into an `m x n` block whose rows lie `dst_stride` elements apart in `dst`.
pub(super) fn matmul_strided(dst: &mut [f32], dst_stride: usize, a: &Mat, b: &Mat, accumulate: bool, parallelism: Parallelism) {
    // SAFETY: an initialised `f32` is a valid `MaybeUninit<f32>` of the same layout, and gemm
    // only stores `f32`s through it, so `dst` stays initialised.
    let dst = unsafe { &mut *(dst as *mut [f32] as *mut [MaybeUninit<f32>]) };
    gemm_into(dst, dst_stride, a, b, accumulate, parallelism);
}

/// [`matmul_strided`], not accumulating, into memory not yet initialised: afterwards the `m x n`
/// block (`n` elements at each of the `m` row starts) is written, and only that.
pub(super) fn matmul_strided_uninit(dst: &mut [MaybeUninit<f32>], dst_stride: usize, a: &Mat, b: &Mat, parallelism: Parallelism) {
    // With `accumulate` false gemm writes every element of the block without reading it, given
    // at least one product to sum.
    assert!(a.cols > 0, "an empty product writes nothing");
    gemm_into(dst, dst_stride, a, b, false, parallelism);
}

fn gemm_into(dst: &mut [MaybeUninit<f32>], dst_stride: usize, a: &Mat, b: &Mat, accumulate: bool, parallelism: Parallelism) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(b.rows == k && a.fits() && b.fits() && n <= dst_stride && (m == 0 || (m - 1) * dst_stride + n <= dst.len()));
    let ((a_cs, a_rs), (b_cs, b_rs)) = (a.strides(), b.strides());
    // SAFETY: the three buffers hold every element the strides address (asserted above), and
    // `dst` is borrowed mutably, so it aliases neither input; gemm reads `dst` only when
    // accumulating, which the callers allow only on initialised memory.
    unsafe {
        gemm::gemm(
            m, n, k, dst.as_mut_ptr() as *mut f32, 1, dst_stride as isize, accumulate, a.data.as_ptr(), a_cs, a_rs,
            b.data.as_ptr(), b_cs, b_rs, 1.0, 1.0, false, false, false, parallelism,
        );
    }
}

/// How many partial sums [`sum_over_images`] makes: a fixed number, not one per worker, so that
/// the rounding of a sum (and with it a whole training run) is the same on every run and on any
/// number of threads.
pub(super) const PARTIALS: usize = 8;

/// `Σ_i` over `n` images of what `add_image(i, acc, scratch)` adds into a `len`-element
/// accumulator. For weight gradients, which sum one multiply per image: up to [`PARTIALS`] runs
/// of consecutive images in parallel, each into its own accumulator, then the partial sums added
/// in order.
pub(super) fn sum_over_images<S: Default + Send>(n: usize, len: usize, add_image: impl Fn(usize, &mut [f32], &mut S) + Sync) -> Vec<f32> {
    let per = n.div_ceil(PARTIALS).max(1);
    let partials: Vec<Vec<f32>> = (0..n.div_ceil(per))
        .into_par_iter()
        .map(|g| {
            let (mut acc, mut scratch) = (vec![0f32; len], S::default());
            for i in g * per..((g + 1) * per).min(n) {
                add_image(i, &mut acc, &mut scratch);
            }
            acc
        })
        .collect();
    let Some((first, rest)) = partials.split_first() else { return vec![0f32; len] };
    let mut total = first.clone();
    // Each element adds its partials in order, whichever worker takes its chunk.
    total.par_chunks_mut(1 << 14).enumerate().for_each(|(i, chunk)| {
        let range = i << 14..(i << 14) + chunk.len();
        for partial in rest {
            chunk.iter_mut().zip(&partial[range.clone()]).for_each(|(a, b)| *a += b);
        }
    });
    total
}
