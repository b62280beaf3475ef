//! MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018,
//! <https://arxiv.org/abs/1801.04381>), layer for layer as `keras.applications.MobileNetV2`: the same
//! 154 named layers in the base, so that "unfreeze the last 50 layers" means what it meant in Keras.

use std::ops::Range;

use candle_core::{DType, Device, Module, Result, Tensor, Var};
use candle_nn::{ops::softmax_last_dim, Linear, VarBuilder, VarMap};

use super::config::{MobileNetV2Config, STAGES};
use super::conv_norm::ConvNorm;
use super::inverted_residual::InvertedResidual;
use super::layers::{LayerBuilder, LayerInfo, Trainability};
use crate::engine::{self, DataFormat};

/// Planes at most this wide run channels last (see [`MobileNetV2::data_format_at`]).
const CHANNELS_LAST_MAX_WIDTH: usize = 14;

/// The MobileNetV2 base (`include_top=False`) and, when the weights have one, its ImageNet classifier.
///
/// A clone shares the weights (candle variables), as a second reference to a Keras model does:
/// training one trains both. Which layers are trainable is each clone's own.
#[derive(Clone)]
pub struct MobileNetV2 {
    config: MobileNetV2Config,
    stem: ConvNorm,
    blocks: Vec<InvertedResidual>,
    top_conv: ConvNorm,
    classifier: Option<Linear>,
    layers: Vec<LayerInfo>,
    trainability: Trainability,
    varmap: VarMap,
    device: Device,
}

impl MobileNetV2 {
    /// Builds the network with Keras' initialisation (random kernels, identity BatchNorm); load
    /// pretrained weights with [`MobileNetV2::load`] or [`MobileNetV2::load_weights`].
    pub fn new(config: MobileNetV2Config, device: &Device) -> Result<Self> {
        if !(0.35..=1.4).contains(&config.alpha) {
            candle_core::bail!("alpha {} is outside Keras' range 0.35 ..= 1.4", config.alpha)
        }
        if config.input_size.0 < 32 || config.input_size.1 < 32 {
            candle_core::bail!("input size {:?} is below MobileNetV2's minimum of 32x32", config.input_size)
        }
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let mut b = LayerBuilder::new(vb, config.input_size, config.padding, config.bn_eps);
        let stem = ConvNorm::conv(&mut b, ("Conv1", "bn_Conv1", Some("Conv1_relu")), config.stem_channels(), 3, 2)?;
        let mut blocks = Vec::new();
        for (stage, spec) in STAGES.iter().enumerate() {
            for i in 0..spec.repeats {
                let stride = if i == 0 { spec.stride } else { 1 };
                let filters = config.stage_channels(stage);
                blocks.push(InvertedResidual::new(&mut b, blocks.len(), filters, spec.expansion, stride)?);
            }
        }
        let names = ("Conv_1", "Conv_1_bn", Some("out_relu"));
        let top_conv = ConvNorm::conv(&mut b, names, config.last_channels(), 1, 1)?;
        let classifier = match config.classes {
            Some(classes) => Some(b.dense("predictions", config.last_channels(), classes)?),
            None => None,
        };
        Ok(Self {
            trainability: Trainability { first_trainable: 0 },
            layers: b.layers,
            config,
            stem,
            blocks,
            top_conv,
            classifier,
            varmap,
            device: device.clone(),
        })
    }

    pub fn config(&self) -> &MobileNetV2Config {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Keras' model name, e.g. `mobilenetv2_1.00_224`.
    pub fn name(&self) -> String {
        format!("mobilenetv2_{:.2}_{}", self.config.alpha, self.config.input_size.0)
    }

    /// The Keras layer table of the base, in order, with the current trainable flags.
    pub fn layers(&self) -> &[LayerInfo] {
        &self.layers
    }

    /// Every variable (the classifier's too), by checkpoint name, in candle's layout.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// Length of the pooled feature vector (1280 at width 1.0).
    pub fn feature_dim(&self) -> usize {
        self.config.last_channels()
    }

    pub fn has_classifier(&self) -> bool {
        self.classifier.is_some()
    }

    /// The `predictions` layer (weight `[classes, features]` and bias), when there is one.
    pub fn classifier(&self) -> Option<&Linear> {
        self.classifier.as_ref()
    }

    /// `base.trainable = False`.
    pub fn freeze_all(&mut self) {
        self.set_trainable_from(self.layers.len());
    }

    /// `base.trainable = True`.
    pub fn unfreeze_all(&mut self) {
        self.set_trainable_from(0);
    }

    /// `base.trainable = True; for layer in base.layers[:-n]: layer.trainable = False`.
    pub fn unfreeze_last(&mut self, n: usize) {
        self.set_trainable_from(self.layers.len().saturating_sub(n));
    }

    /// How many of the last Keras layers are trainable (`unfreeze_last(n)` makes it `n`).
    pub fn trainable_layers(&self) -> usize {
        self.layers.len().saturating_sub(self.trainability.first_trainable)
    }

    /// `for layer in base.layers[first:]: layer.trainable = True`, the others frozen.
    pub fn set_trainable_from(&mut self, first: usize) {
        self.trainability = Trainability { first_trainable: first };
        for (i, layer) in self.layers.iter_mut().enumerate() {
            layer.trainable = i >= first;
        }
    }

    /// The variables an optimizer should update, in layer order, with their checkpoint names.
    /// BatchNorm moving statistics are never among them.
    pub fn trainable_variables(&self) -> Vec<(String, Var)> {
        let vars = self.varmap.data().lock().expect("varmap lock");
        self.layers
            .iter()
            .filter(|l| l.trainable && l.params > 0)
            .flat_map(|l| ["kernel", "depthwise_kernel", "gamma", "beta"].map(|v| format!("{}/{v}", l.name)))
            .filter_map(|name| vars.get(&name).map(|var| (name.clone(), var.clone())))
            .collect()
    }

    pub fn count_params(&self) -> usize {
        self.layers.iter().map(|l| l.params).sum()
    }

    pub fn trainable_params(&self) -> usize {
        self.layers.iter().map(LayerInfo::trainable_params).sum()
    }

    /// The base as a chain of units (the stem, 17 inverted-residual blocks, the top 1x1 conv): the
    /// places where activations can be cut and cached; a residual block needs its input whole.
    pub fn num_units(&self) -> usize {
        self.blocks.len() + 2
    }

    /// The last weighted layer of a unit, as an index into [`MobileNetV2::layers`].
    fn unit_last_layer(&self, unit: usize) -> usize {
        match unit {
            0 => self.stem.norm.index,
            u if u <= self.blocks.len() => self.blocks[u - 1].project.norm.index,
            _ => self.top_conv.norm.index,
        }
    }

    /// The first unit with a trainable layer, or `num_units()` when the base is frozen. Units
    /// before it are a fixed function of the image: their output can be computed once and cached.
    pub fn first_trainable_unit(&self) -> usize {
        (0..self.num_units())
            .find(|&u| self.trainability.trains(self.unit_last_layer(u)))
            .unwrap_or(self.num_units())
    }

    /// The variables of `units`, by checkpoint name, in layer order (e.g. to fingerprint a cache).
    pub fn unit_variables(&self, units: Range<usize>) -> Vec<(String, Tensor)> {
        let first = if units.start == 0 { 0 } else { self.unit_last_layer(units.start - 1) + 1 };
        let last = if units.end == 0 { 0 } else { self.unit_last_layer(units.end - 1) + 1 };
        let vars = self.varmap.data().lock().expect("varmap lock");
        let mut named: Vec<(usize, String, Tensor)> = vars
            .iter()
            .filter_map(|(name, var)| {
                let layer = name.split('/').next()?;
                let index = self.layers.iter().position(|l| l.name == layer)?;
                (first..last).contains(&index).then(|| (index, name.clone(), var.as_tensor().clone()))
            })
            .collect();
        named.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        named.into_iter().map(|(_, name, t)| (name, t)).collect()
    }

    /// The format of the activations at the input of `unit`: channels last on the CPU engine for
    /// the planes at most 14 pixels wide (the tail of the network at 224 pixels: blocks 7-16 and
    /// the top conv), channels first otherwise, and always for the images (`unit == 0`) and the
    /// base's output (`unit == num_units()`).
    pub fn data_format_at(&self, unit: usize) -> DataFormat {
        if unit == 0 || unit >= self.num_units() || !engine::runs_on(&self.device) {
            return DataFormat::ChannelsFirst;
        }
        let width = self.layers[self.unit_last_layer(unit - 1)].output_shape[1];
        if width <= CHANNELS_LAST_MAX_WIDTH {
            DataFormat::ChannelsLast
        } else {
            DataFormat::ChannelsFirst
        }
    }

    /// Runs `units` of the base: `x` is the images for unit 0, else that unit's input activations,
    /// in the format [`MobileNetV2::data_format_at`] gives; so is the result. Channels last needs
    /// f32 activations.
    pub fn forward_units(&self, x: &Tensor, units: Range<usize>) -> Result<Tensor> {
        if units.start == 0 && x.dims4()?.1 != 3 {
            candle_core::bail!("MobileNetV2 expects [N, 3, H, W] RGB input, got {:?}", x.shape())
        }
        let t = self.trainability;
        let mut format = self.data_format_at(units.start);
        let mut x = x.clone();
        for unit in units.clone() {
            let wanted = self.data_format_at(unit);
            x = format.convert(&x, wanted)?;
            format = wanted;
            x = match unit {
                0 => self.stem.forward(&x, t, format)?,
                u if u <= self.blocks.len() => self.blocks[u - 1].forward(&x, t, format)?,
                _ => self.top_conv.forward(&x, t, format)?,
            };
        }
        format.convert(&x, self.data_format_at(units.end))
    }

    /// The base: images `[N, 3, H, W]` to the `out_relu` activations `[N, C, H/32, W/32]`.
    pub fn forward_base(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_units(x, 0..self.num_units())
    }

    /// Global-average-pooled features `[N, feature_dim]`.
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_base(x)?.mean((2, 3))
    }

    /// ImageNet logits `[N, classes]`. The classifier is for prediction only: its weights never train.
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        let Some(classifier) = &self.classifier else {
            candle_core::bail!("this MobileNetV2 has no classifier (the weights were a base without `predictions`)")
        };
        let frozen = Linear::new(classifier.weight().detach(), classifier.bias().map(Tensor::detach));
        frozen.forward(&self.features(x)?)
    }

    /// Class probabilities (softmax of [`MobileNetV2::logits`]).
    pub fn predict(&self, x: &Tensor) -> Result<Tensor> {
        softmax_last_dim(&self.logits(x)?)
    }
}

impl MobileNetV2 {
    /// A copy with `classifier` as its `predictions` layer (weight `[classes, features]` and bias):
    /// how a trained head is exported as an ordinary `include_top=True` checkpoint.
    pub fn with_classifier(&self, weight: &Tensor, bias: &Tensor) -> Result<Self> {
        let config = MobileNetV2Config { classes: Some(weight.dim(0)?), ..self.config.clone() };
        let mut model = Self::new(config, &self.device)?;
        model.set_trainable_from(self.trainability.first_trainable);
        {
            let source = self.varmap.data().lock().expect("varmap lock");
            let target = model.varmap.data().lock().expect("varmap lock");
            for (name, var) in target.iter() {
                match name.as_str() {
                    "predictions/kernel" => var.set(weight)?,
                    "predictions/bias" => var.set(bias)?,
                    _ => var.set(source[name].as_tensor())?,
                }
            }
        }
        Ok(model)
    }
}

impl std::fmt::Debug for MobileNetV2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MobileNetV2")
            .field("config", &self.config)
            .field("params", &self.count_params())
            .field("trainable_params", &self.trainable_params())
            .finish()
    }
}
