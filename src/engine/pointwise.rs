//! 1x1 convolution as one matrix multiply per layer: `W [Cout, Cin] x X[n] [Cin, H*W]`, no im2col copy.

use candle_core::{Result, Tensor};

/// `x [N, Cin, H, W]` with `w [Cout, Cin, 1, 1]`; differentiable through candle's matmul.
pub fn pointwise_conv(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (n, c_in, h, wd) = x.dims4()?;
    let c_out = w.dim(0)?;
    let y = w.reshape((c_out, c_in))?.broadcast_left(n)?.matmul(&x.contiguous()?.reshape((n, c_in, h * wd))?)?;
    y.reshape((n, c_out, h, wd))
}
