//! Where a 3x3 convolution reads: padding, output size, and the input row and column of each tap.
//! Shared by the channels-first and channels-last kernels, the fused block and the dense stem.

use candle_core::Result;

/// Padding of the two spatial axes: `[top, bottom, left, right]`.
pub type Pad = [usize; 4];

/// The kernel's side.
pub(super) const K: usize = 3;

/// Geometry of one depthwise convolution.
#[derive(Debug, Clone, Copy)]
pub(super) struct Geometry {
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) ho: usize,
    pub(super) wo: usize,
    pub(super) stride: usize,
    pub(super) top: usize,
    pub(super) left: usize,
}

impl Geometry {
    pub(super) fn new(h: usize, w: usize, stride: usize, pad: Pad) -> Result<Self> {
        let (hp, wp) = (h + pad[0] + pad[1], w + pad[2] + pad[3]);
        if hp < K || wp < K {
            candle_core::bail!("depthwise conv: padded input {hp}x{wp} is smaller than the 3x3 kernel")
        }
        Ok(Self { h, w, ho: (hp - K) / stride + 1, wo: (wp - K) / stride + 1, stride, top: pad[0], left: pad[2] })
    }

    /// Input row of output row `o` for kernel row `k`, if inside the image.
    pub(super) fn in_row(&self, o: usize, k: usize) -> Option<usize> {
        (o * self.stride + k).checked_sub(self.top).filter(|&i| i < self.h)
    }

    /// Input column of output column `o` for kernel column `k`, if inside the image.
    pub(super) fn in_col_checked(&self, o: usize, k: usize) -> Option<usize> {
        (o * self.stride + k).checked_sub(self.left).filter(|&i| i < self.w)
    }

    /// Output columns `lo..hi` (empty when `lo >= hi`) whose input column `ow * stride + k - left` is inside the image.
    pub(super) fn col_range(&self, k: usize) -> (usize, usize) {
        let s = self.stride;
        let lo = self.left.saturating_sub(k).div_ceil(s);
        let hi = (self.w + self.left).saturating_sub(k).div_ceil(s).min(self.wo);
        (lo, hi)
    }

    /// Input column of output column `ow` for kernel column `k` (valid inside `col_range`).
    pub(super) fn in_col(&self, ow: usize, k: usize) -> usize {
        ow * self.stride + k - self.left
    }
}
