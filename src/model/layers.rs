//! The Keras layer table and the weighted layers of the base: `Conv2D`, `DepthwiseConv2D` and
//! `BatchNormalization`, built by a [`LayerBuilder`] that records one table row per Keras layer.
//!
//! Variables are named like the Keras checkpoint (`block_5_expand/kernel`) but stored in candle's
//! layout (`[out, in, kh, kw]`); the loader in `weights` converts between the two.

use std::fmt;

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::Serialize;

use super::config::Padding;
use crate::engine::{self, DataFormat, Pad};

/// The Keras class of a layer, as `model.summary()` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LayerKind {
    InputLayer,
    Conv2D,
    DepthwiseConv2D,
    BatchNormalization,
    ReLU,
    ZeroPadding2D,
    Add,
}

impl fmt::Display for LayerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One row of the layer table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerInfo {
    pub name: String,
    pub kind: LayerKind,
    /// `(height, width, channels)` without the batch axis, as Keras reports it.
    pub output_shape: [usize; 3],
    /// All parameters, trainable or not.
    pub params: usize,
    /// Parameters that never train (BatchNorm moving statistics).
    pub non_trainable_params: usize,
    pub trainable: bool,
}

impl LayerInfo {
    /// Parameters that an optimizer updates: zero for a frozen layer.
    pub fn trainable_params(&self) -> usize {
        if self.trainable {
            self.params - self.non_trainable_params
        } else {
            0
        }
    }
}

/// Which layers train. As in Keras after `layer.trainable = False` on `layers[:-n]`, the trainable
/// layers are a suffix of the table; frozen weights are detached, so they get no gradient work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trainability {
    pub first_trainable: usize,
}

impl Trainability {
    pub fn trains(self, layer: usize) -> bool {
        layer >= self.first_trainable
    }

    fn param(self, layer: usize, value: &Tensor) -> Tensor {
        if self.trains(layer) {
            value.clone()
        } else {
            value.detach()
        }
    }
}

/// `[top, bottom, left, right]` padding of an `h x w` input for a `k`-wide, `stride` convolution.
fn pad_amounts((h, w): (usize, usize), padding: Padding, k: usize, stride: usize) -> Pad {
    let (top, bottom) = padding.amounts(h, k, stride);
    let (left, right) = padding.amounts(w, k, stride);
    [top, bottom, left, right]
}

/// `(h, w)` of an activation in `format`.
pub(crate) fn spatial(x: &Tensor, format: DataFormat) -> Result<(usize, usize)> {
    let (_, a, b, c) = x.dims4()?;
    Ok(match format {
        DataFormat::ChannelsFirst => (b, c),
        DataFormat::ChannelsLast => (a, b),
    })
}

/// A convolution without bias (`Conv2D`), or a depthwise one (`DepthwiseConv2D`, `groups = C`).
#[derive(Debug, Clone)]
pub struct Conv2d {
    pub(crate) index: usize,
    /// `[out, in / groups, k, k]`.
    pub(crate) weight: Tensor,
    kernel_size: usize,
    stride: usize,
    groups: usize,
    padding: Padding,
}

impl Conv2d {
    /// `act(conv(x, w) + bias)` on the engine, with `w` and `bias` given (a BatchNorm folded
    /// in), `x` in `format`; `None` where the engine has no kernel: other devices, and the stem
    /// when gradients must reach its input (channels first only).
    pub fn forward_fused(&self, x: &Tensor, w: &Tensor, bias: &Tensor, relu6: bool, format: DataFormat) -> Result<Option<Tensor>> {
        if !engine::supports(x) {
            return Ok(None);
        }
        let pad = self.pad(spatial(x, format)?);
        let y = if self.groups > 1 {
            engine::depthwise_conv3x3(x, w, bias, self.stride, pad, relu6, format)?
        } else if self.kernel_size == 1 && self.stride == 1 {
            engine::pointwise_conv(x, w, bias, relu6, format)?
        } else if format == DataFormat::ChannelsLast {
            candle_core::bail!("the engine runs {}x{} stride-{} convolutions channels first only", self.kernel_size, self.kernel_size, self.stride)
        } else if !x.track_op() {
            engine::conv2d_dense(x, w, bias, self.stride, pad, relu6)?
        } else {
            return Ok(None);
        };
        Ok(Some(y))
    }

    /// `[top, bottom, left, right]` padding of an `(h, w)` input.
    pub(crate) fn pad(&self, size: (usize, usize)) -> Pad {
        pad_amounts(size, self.padding, self.kernel_size, self.stride)
    }

    pub(crate) fn stride(&self) -> usize {
        self.stride
    }

    /// The kernel, detached when the layer is frozen.
    pub fn weight(&self, t: Trainability) -> Tensor {
        t.param(self.index, &self.weight)
    }

    /// The convolution alone, with stock candle ops (where the engine does not run).
    pub fn forward(&self, x: &Tensor, t: Trainability) -> Result<Tensor> {
        let weight = self.weight(t);
        let [top, bottom, left, right] = self.pad(spatial(x, DataFormat::ChannelsFirst)?);
        if top == bottom && left == right && top == left {
            return x.conv2d(&weight, top, self.stride, 1, self.groups);
        }
        let x = x.pad_with_zeros(2, top, bottom)?.pad_with_zeros(3, left, right)?;
        x.conv2d(&weight, 0, self.stride, 1, self.groups)
    }
}

/// Inference-mode BatchNorm: `gamma * (x - mean) / sqrt(var + eps) + beta`. The moving statistics
/// never change (Keras `base(x, training=False)`); gamma and beta train when the layer does.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    pub(crate) index: usize,
    pub(crate) gamma: Tensor,
    pub(crate) beta: Tensor,
    pub(crate) moving_mean: Tensor,
    pub(crate) moving_variance: Tensor,
    eps: f64,
}

impl BatchNorm {
    /// The normalisation as `x * scale + shift`, per channel.
    pub(crate) fn scale_shift(&self, t: Trainability) -> Result<(Tensor, Tensor)> {
        let inv_std = (self.moving_variance.detach() + self.eps)?.sqrt()?.recip()?;
        let scale = t.param(self.index, &self.gamma).mul(&inv_std)?;
        let shift = t.param(self.index, &self.beta).sub(&self.moving_mean.detach().mul(&scale)?)?;
        Ok((scale, shift))
    }

    /// BatchNorm, followed by ReLU6 when `relu6`.
    pub fn forward(&self, x: &Tensor, t: Trainability, relu6: bool) -> Result<Tensor> {
        let (scale, shift) = self.scale_shift(t)?;
        let c = scale.dim(0)?;
        let y = x.broadcast_mul(&scale.reshape((1, c, 1, 1))?)?.broadcast_add(&shift.reshape((1, c, 1, 1))?)?;
        if relu6 {
            y.clamp(0f32, 6f32)
        } else {
            Ok(y)
        }
    }
}

/// Builds the base layer by layer, tracking the output shape and writing the layer table.
pub struct LayerBuilder<'a> {
    vb: VarBuilder<'a>,
    padding: Padding,
    bn_eps: f64,
    /// Output shape of the last layer that transforms the data (`(h, w, c)`).
    shape: [usize; 3],
    pub(crate) layers: Vec<LayerInfo>,
}

impl<'a> LayerBuilder<'a> {
    /// Starts the table with Keras' `input_layer`.
    pub fn new(vb: VarBuilder<'a>, input_size: (usize, usize), padding: Padding, bn_eps: f64) -> Self {
        let shape = [input_size.0, input_size.1, 3];
        let mut builder = Self { vb, padding, bn_eps, shape, layers: Vec::new() };
        builder.push("input_layer", LayerKind::InputLayer, shape, 0, 0);
        builder
    }

    pub fn channels(&self) -> usize {
        self.shape[2]
    }

    fn push(&mut self, name: &str, kind: LayerKind, shape: [usize; 3], params: usize, frozen: usize) -> usize {
        self.layers.push(LayerInfo {
            name: name.to_string(),
            kind,
            output_shape: shape,
            params,
            non_trainable_params: frozen,
            trainable: true,
        });
        self.layers.len() - 1
    }

    fn conv_output(&self, k: usize, stride: usize, channels: usize) -> [usize; 3] {
        let out = |size: usize| {
            let (before, after) = self.padding.amounts(size, k, stride);
            (size + before + after - k) / stride + 1
        };
        [out(self.shape[0]), out(self.shape[1]), channels]
    }

    /// Keras initialises kernels with Glorot-uniform, fans counted over the receptive field.
    fn glorot(fan_in: usize, fan_out: usize) -> Init {
        let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
        Init::Uniform { lo: -limit, up: limit }
    }

    /// `Conv2D(filters, k, strides=stride, padding="same", use_bias=False)`.
    pub fn conv2d(&mut self, name: &str, filters: usize, k: usize, stride: usize) -> Result<Conv2d> {
        let c_in = self.channels();
        let init = Self::glorot(k * k * c_in, k * k * filters);
        let weight = self.vb.get_with_hints((filters, c_in, k, k), &format!("{name}/kernel"), init)?;
        let shape = self.conv_output(k, stride, filters);
        let index = self.push(name, LayerKind::Conv2D, shape, weight.elem_count(), 0);
        self.shape = shape;
        Ok(Conv2d { index, weight, kernel_size: k, stride, groups: 1, padding: self.padding })
    }

    /// `DepthwiseConv2D(3, strides=stride, use_bias=False)`; stride 2 follows a [`Self::zero_pad`].
    pub fn depthwise(&mut self, name: &str, stride: usize) -> Result<Conv2d> {
        let c = self.channels();
        let weight = self.vb.get_with_hints((c, 1, 3, 3), &format!("{name}/depthwise_kernel"), Self::glorot(9 * c, 9))?;
        let shape = self.conv_output(3, stride, c);
        let index = self.push(name, LayerKind::DepthwiseConv2D, shape, weight.elem_count(), 0);
        self.shape = shape;
        Ok(Conv2d { index, weight, kernel_size: 3, stride, groups: c, padding: self.padding })
    }

    /// `ZeroPadding2D` before a stride-2 depthwise layer. The row documents the padding; the
    /// depthwise layer that follows applies it (so the tracked shape stays the unpadded one).
    pub fn zero_pad(&mut self, name: &str) {
        let [h, w, c] = self.shape;
        let (t, b) = self.padding.amounts(h, 3, 2);
        let (l, r) = self.padding.amounts(w, 3, 2);
        self.push(name, LayerKind::ZeroPadding2D, [h + t + b, w + l + r, c], 0, 0);
    }

    /// `BatchNormalization(epsilon=bn_eps)`.
    pub fn batch_norm(&mut self, name: &str) -> Result<BatchNorm> {
        let c = self.channels();
        let get = |var: &str, init: Init| self.vb.get_with_hints(c, &format!("{name}/{var}"), init);
        let bn = BatchNorm {
            index: 0,
            gamma: get("gamma", Init::Const(1.0))?,
            beta: get("beta", Init::Const(0.0))?,
            moving_mean: get("moving_mean", Init::Const(0.0))?,
            moving_variance: get("moving_variance", Init::Const(1.0))?,
            eps: self.bn_eps,
        };
        let index = self.push(name, LayerKind::BatchNormalization, self.shape, 4 * c, 2 * c);
        Ok(BatchNorm { index, ..bn })
    }

    /// `ReLU(6.0)`.
    pub fn relu6(&mut self, name: &str) {
        self.push(name, LayerKind::ReLU, self.shape, 0, 0);
    }

    /// `Add` of a block's input and output.
    pub fn add(&mut self, name: &str) {
        self.push(name, LayerKind::Add, self.shape, 0, 0);
    }

    /// `Dense(units)` on the pooled features: the ImageNet classifier, kept outside the base table.
    pub fn dense(&self, name: &str, in_features: usize, units: usize) -> Result<candle_nn::Linear> {
        let init = Self::glorot(in_features, units);
        let weight = self.vb.get_with_hints((units, in_features), &format!("{name}/kernel"), init)?;
        let bias = self.vb.get_with_hints(units, &format!("{name}/bias"), Init::Const(0.0))?;
        Ok(candle_nn::Linear::new(weight, Some(bias)))
    }
}
