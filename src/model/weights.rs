//! Pretrained weights: Keras-named safetensors (`Conv1/kernel`, HWIO layout) and timm-named ones
//! (`conv_stem.weight`, OIHW), detected from the tensor names. The format also fixes the padding
//! convention, the BatchNorm epsilon and the input preprocessing of the framework that trained it.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use candle_core::{Device, Tensor};

use super::config::{MobileNetV2Config, Padding, STAGES};
use super::MobileNetV2;
use crate::data::Normalization;
use crate::error::{Error, Result, TensorProblem};

/// Who trained the weights, told apart by their tensor names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightFormat {
    /// `keras.applications.MobileNetV2`: `<layer>/<variable>`, HWIO kernels, "SAME" padding.
    Keras,
    /// timm `mobilenetv2_*`: PyTorch `state_dict` names, OIHW kernels, symmetric padding.
    Timm,
}

impl WeightFormat {
    pub fn detect<'a>(mut names: impl Iterator<Item = &'a str>) -> Option<Self> {
        names.find_map(|n| match n {
            "Conv1/kernel" => Some(Self::Keras),
            "conv_stem.weight" => Some(Self::Timm),
            _ => None,
        })
    }

    /// The format whose conventions (padding, epsilon) a model was built with.
    pub fn of(config: &MobileNetV2Config) -> Self {
        match config.padding {
            Padding::Same => Self::Keras,
            Padding::Symmetric => Self::Timm,
        }
    }

    pub fn padding(self) -> Padding {
        match self {
            Self::Keras => Padding::Same,
            Self::Timm => Padding::Symmetric,
        }
    }

    pub fn bn_eps(self) -> f64 {
        match self {
            Self::Keras => 1e-3,
            Self::Timm => 1e-5,
        }
    }

    pub fn normalization(self) -> Normalization {
        match self {
            Self::Keras => Normalization::MinusOneToOne,
            Self::Timm => Normalization::imagenet(),
        }
    }

    /// The key in this format of the model variable `keras_name` (e.g. `block_3_expand_BN/gamma`).
    pub fn key(self, keras_name: &str) -> String {
        match self {
            Self::Keras => keras_name.to_string(),
            Self::Timm => {
                let (layer, var) = keras_name.split_once('/').expect("variable names are layer/var");
                let var = match var {
                    "kernel" | "depthwise_kernel" | "gamma" => "weight",
                    "beta" => "bias",
                    "moving_mean" => "running_mean",
                    "moving_variance" => "running_var",
                    other => other,
                };
                format!("{}.{var}", timm_module(layer))
            }
        }
    }

    /// Tensors a format carries that the model has no use for.
    fn ignorable(self, key: &str) -> bool {
        self == Self::Timm && key.ends_with(".num_batches_tracked")
    }

    /// From this format's layout to candle's (`[out, in, kh, kw]` kernels, `[out, in]` dense).
    fn to_candle(self, keras_name: &str, t: &Tensor) -> candle_core::Result<Tensor> {
        match (self, keras_name.rsplit('/').next(), t.rank()) {
            (Self::Keras, Some("kernel"), 4) => t.permute((3, 2, 0, 1))?.contiguous(), // HWIO
            (Self::Keras, Some("depthwise_kernel"), 4) => t.permute((2, 3, 0, 1))?.contiguous(), // HWC1
            (Self::Keras, Some("kernel"), 2) => t.t()?.contiguous(),
            _ => Ok(t.clone()),
        }
    }

    /// From candle's layout back to this format's; the inverse of `to_candle`.
    fn to_checkpoint(self, keras_name: &str, t: &Tensor) -> candle_core::Result<Tensor> {
        match (self, keras_name.rsplit('/').next(), t.rank()) {
            (Self::Keras, Some("kernel"), 4) => t.permute((2, 3, 1, 0))?.contiguous(),
            (Self::Keras, Some("depthwise_kernel"), 4) => t.permute((2, 3, 0, 1))?.contiguous(),
            (Self::Keras, Some("kernel"), 2) => t.t()?.contiguous(),
            _ => Ok(t.clone()),
        }
    }
}

/// timm's module path for a Keras layer name.
fn timm_module(layer: &str) -> String {
    let fixed = match layer {
        "Conv1" => "conv_stem",
        "bn_Conv1" => "bn1",
        "Conv_1" => "conv_head",
        "Conv_1_bn" => "bn2",
        "predictions" => "classifier",
        "expanded_conv_depthwise" => "blocks.0.0.conv_dw",
        "expanded_conv_depthwise_BN" => "blocks.0.0.bn1",
        "expanded_conv_project" => "blocks.0.0.conv_pw",
        "expanded_conv_project_BN" => "blocks.0.0.bn2",
        _ => "",
    };
    if !fixed.is_empty() {
        return fixed.to_string();
    }
    let rest = layer.strip_prefix("block_").unwrap_or(layer);
    let (id, part) = rest.split_once('_').unwrap_or((rest, ""));
    let mut id: usize = id.parse().unwrap_or(usize::MAX);
    let part = match part {
        "expand" => "conv_pw",
        "expand_BN" => "bn1",
        "depthwise" => "conv_dw",
        "depthwise_BN" => "bn2",
        "project" => "conv_pwl",
        "project_BN" => "bn3",
        _ => return layer.to_string(),
    };
    // Keras numbers blocks 1..16 across stages; timm numbers them within each stage.
    for (stage, spec) in STAGES.iter().enumerate().skip(1) {
        if id <= spec.repeats {
            return format!("blocks.{stage}.{}.{part}", id - 1);
        }
        id -= spec.repeats;
    }
    layer.to_string()
}

/// A safetensors file read into memory, with its detected format.
pub struct Checkpoint {
    pub format: WeightFormat,
    pub tensors: HashMap<String, Tensor>,
}

impl Checkpoint {
    pub fn read(path: &Path, device: &Device) -> Result<Self> {
        if !path.exists() {
            return Err(Error::NotFound(path.to_path_buf()));
        }
        let tensors = candle_core::safetensors::load(path, device).map_err(|e| Error::Weights {
            path: path.to_path_buf(),
            message: format!("not a readable safetensors file: {e}"),
        })?;
        let format = WeightFormat::detect(tensors.keys().map(String::as_str)).ok_or_else(|| Error::Weights {
            path: path.to_path_buf(),
            message: "neither Keras (`Conv1/kernel`) nor timm (`conv_stem.weight`) MobileNetV2 names".into(),
        })?;
        let mut names: Vec<&String> = tensors.keys().collect();
        names.sort();
        for name in names {
            let t = &tensors[name];
            if t.dtype().is_float() {
                let values = t.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
                if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
                    return Err(Error::Weights { path: path.to_path_buf(), message: format!("tensor `{name}` holds {bad}: these weights are broken") });
                }
            }
        }
        Ok(Self { format, tensors })
    }

    fn dim(&self, key: &str, axis: usize) -> Option<usize> {
        self.tensors.get(key).and_then(|t| t.dims().get(axis).copied())
    }

    /// The configuration these weights were made for: width from the channel counts, classifier
    /// from `predictions`, padding and epsilon from the format. The input size stays the default.
    pub fn config(&self, path: &Path) -> Result<MobileNetV2Config> {
        let f = self.format;
        let out_axis = match f {
            WeightFormat::Keras => 3,
            WeightFormat::Timm => 0,
        };
        let stem = self.dim(&f.key("Conv1/kernel"), out_axis);
        let last = self.dim(&f.key("Conv_1/kernel"), out_axis);
        let alpha = [0.35, 0.5, 0.75, 1.0, 1.3, 1.4].into_iter().find(|&alpha| {
            let c = MobileNetV2Config::default().with_alpha(alpha);
            stem == Some(c.stem_channels())
                && last == Some(c.last_channels())
                && self.dim(&f.key("block_16_project/kernel"), out_axis) == Some(c.stage_channels(6))
        });
        let Some(alpha) = alpha else {
            return Err(Error::Weights {
                path: path.to_path_buf(),
                message: format!("no Keras width multiplier gives {stem:?} stem and {last:?} last channels"),
            });
        };
        Ok(MobileNetV2Config {
            alpha,
            classes: self.dim(&f.key("predictions/bias"), 0),
            padding: f.padding(),
            bn_eps: f.bn_eps(),
            ..MobileNetV2Config::default()
        })
    }
}

impl MobileNetV2 {
    /// How photos become this model's input: its input size, antialiased resizing and the
    /// normalisation of the framework its weights come from.
    pub fn preprocessor(&self) -> crate::data::Preprocessor {
        crate::data::Preprocessor::new(self.config().input_size, WeightFormat::of(self.config()).normalization())
    }

    /// Builds the model the file describes and loads it: `MobileNetV2::load("mobilenet_v2.safetensors", &dev)`.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        Self::from_checkpoint(&Checkpoint::read(path, device)?, path)
    }

    /// [`MobileNetV2::load`] at another input size (MobileNetV2's weights fit any size from 32 px).
    pub fn load_with_input_size(path: impl AsRef<Path>, (height, width): (usize, usize), device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let checkpoint = Checkpoint::read(path, device)?;
        let model = MobileNetV2::new(checkpoint.config(path)?.with_input_size(height, width), device)?;
        model.assign(&checkpoint, path)?;
        Ok(model)
    }

    /// Builds the model a checkpoint read from `path` describes, and loads it.
    pub fn from_checkpoint(checkpoint: &Checkpoint, path: &Path) -> Result<Self> {
        let device = checkpoint.tensors.values().next().map(|t| t.device().clone()).unwrap_or(Device::Cpu);
        let model = MobileNetV2::new(checkpoint.config(path)?, &device)?;
        model.assign(checkpoint, path)?;
        Ok(model)
    }

    /// Loads weights into this model; every tensor must be present, used and of the right shape.
    pub fn load_weights(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        self.assign(&Checkpoint::read(path, self.device())?, path)
    }

    fn assign(&self, checkpoint: &Checkpoint, path: &Path) -> Result<()> {
        let f = checkpoint.format;
        let config = self.config();
        if (config.padding, config.bn_eps) != (f.padding(), f.bn_eps()) {
            return Err(Error::Weights {
                path: path.to_path_buf(),
                message: format!(
                    "{f:?} weights need {:?} padding and BatchNorm epsilon {}, this model was built with {:?} and {}",
                    f.padding(),
                    f.bn_eps(),
                    config.padding,
                    config.bn_eps
                ),
            });
        }
        let vars = self.varmap().data().lock().expect("varmap lock");
        let mut problems = Vec::new();
        let mut used = BTreeSet::new();
        let mut updates = Vec::new();
        let mut names: Vec<_> = vars.keys().collect();
        names.sort();
        for name in names {
            let var = &vars[name];
            let key = f.key(name);
            let expected = f.to_checkpoint(name, var.as_tensor())?.dims().to_vec();
            let Some(t) = checkpoint.tensors.get(&key) else {
                problems.push(TensorProblem::Missing { key, expected });
                continue;
            };
            used.insert(key.clone());
            if t.dims() == expected.as_slice() {
                updates.push((var, f.to_candle(name, &t.to_dtype(var.dtype())?)?));
            } else {
                problems.push(TensorProblem::Shape { key, expected, found: t.dims().to_vec() });
            }
        }
        let mut extra: Vec<_> = checkpoint
            .tensors
            .iter()
            .filter(|(k, _)| !used.contains(*k) && !f.ignorable(k))
            .map(|(k, t)| TensorProblem::Unexpected { key: k.clone(), found: t.dims().to_vec() })
            .collect();
        extra.sort_by(|a, b| a.key().cmp(b.key()));
        problems.extend(extra);
        if !problems.is_empty() {
            return Err(Error::TensorMismatch { path: path.to_path_buf(), problems });
        }
        for (var, value) in updates {
            var.set(&value)?;
        }
        Ok(())
    }

    /// Writes every variable in the given format's names and layout (readable by [`MobileNetV2::load`]).
    pub fn save(&self, path: impl AsRef<Path>, format: WeightFormat) -> Result<()> {
        let vars = self.varmap().data().lock().expect("varmap lock");
        let mut tensors = HashMap::new();
        for (name, var) in vars.iter() {
            tensors.insert(format.key(name), format.to_checkpoint(name, var.as_tensor())?);
        }
        candle_core::safetensors::save(&tensors, path.as_ref())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timm_names_follow_stages() {
        let t = WeightFormat::Timm;
        assert_eq!(t.key("Conv1/kernel"), "conv_stem.weight");
        assert_eq!(t.key("bn_Conv1/moving_variance"), "bn1.running_var");
        assert_eq!(t.key("expanded_conv_project_BN/beta"), "blocks.0.0.bn2.bias");
        assert_eq!(t.key("block_1_expand/kernel"), "blocks.1.0.conv_pw.weight");
        assert_eq!(t.key("block_2_depthwise_BN/gamma"), "blocks.1.1.bn2.weight");
        assert_eq!(t.key("block_3_project/kernel"), "blocks.2.0.conv_pwl.weight");
        assert_eq!(t.key("block_16_project_BN/moving_mean"), "blocks.6.0.bn3.running_mean");
        assert_eq!(t.key("predictions/kernel"), "classifier.weight");
        assert_eq!(WeightFormat::Keras.key("block_16_project/kernel"), "block_16_project/kernel");
    }
}
