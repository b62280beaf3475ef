//! The Food-101 head of the original project: GlobalAveragePooling2D → Dropout(0.3) → Dense(classes).

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::{Linear, Module, VarMap};
use rand::{Rng, SeedableRng};

/// A new classifier on top of the base. It returns logits (the loss takes logits); softmax
/// gives probabilities. Its randomness (initial kernel, dropout masks) comes from seeds the
/// caller gives, so a training run can be repeated and resumed exactly.
#[derive(Debug, Clone)]
pub struct ClassifierHead {
    dropout: f32,
    dense: Linear,
}

impl ClassifierHead {
    pub const DEFAULT_DROPOUT: f32 = 0.3;

    /// `Dense(classes)` named like Keras' `dense` layer, as variables of `varmap`: Glorot-uniform
    /// kernel drawn from `seed`, zero bias. Load trained values afterwards with `varmap.load(file)`.
    pub fn new(varmap: &VarMap, device: &Device, in_features: usize, classes: usize, dropout: f32, seed: u64) -> Result<Self> {
        let limit = (6.0 / (in_features + classes) as f32).sqrt();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let kernel: Vec<f32> = (0..classes * in_features).map(|_| rng.random_range(-limit..limit)).collect();
        let kernel = Var::from_tensor(&Tensor::from_vec(kernel, (classes, in_features), device)?)?;
        let bias = Var::zeros(classes, DType::F32, device)?;
        let dense = Linear::new(kernel.as_tensor().clone(), Some(bias.as_tensor().clone()));
        let mut vars = varmap.data().lock().expect("varmap lock");
        vars.insert("dense/kernel".into(), kernel);
        vars.insert("dense/bias".into(), bias);
        Ok(Self { dropout, dense })
    }

    pub fn classes(&self) -> usize {
        self.dense.weight().dim(0).unwrap_or(0)
    }

    /// The features it takes (the base's channels).
    pub fn features(&self) -> usize {
        self.dense.weight().dim(1).unwrap_or(0)
    }

    pub fn dropout(&self) -> f32 {
        self.dropout
    }

    /// The dense layer's `[classes, features]` kernel and its bias.
    pub fn dense(&self) -> &Linear {
        &self.dense
    }

    fn pool(x: &Tensor) -> Result<Tensor> {
        if x.rank() == 4 {
            x.mean((2, 3))
        } else {
            Ok(x.clone())
        }
    }

    /// Inference logits from base activations `[N, C, H, W]` or already pooled features `[N, C]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.dense.forward(&Self::pool(x)?)
    }

    /// Training logits: dropout on, its mask drawn from `rng` (kept units scaled by `1 / (1 - p)`).
    pub fn forward_train(&self, x: &Tensor, rng: &mut impl Rng) -> Result<Tensor> {
        let pooled = Self::pool(x)?;
        if self.dropout <= 0.0 {
            return self.dense.forward(&pooled);
        }
        let keep = 1.0 / (1.0 - self.dropout);
        let mask: Vec<f32> = self.dropout_keeps(pooled.dim(0)?, rng).into_iter().map(|k| if k { keep } else { 0.0 }).collect();
        let mask = Tensor::from_vec(mask, pooled.shape(), pooled.device())?;
        self.dense.forward(&(pooled * mask)?)
    }

    /// Dropout's draw for `rows` examples, row by row: which features it keeps (each is dropped
    /// with probability `dropout`).
    pub fn dropout_keeps(&self, rows: usize, rng: &mut impl Rng) -> Vec<bool> {
        (0..rows * self.features()).map(|_| rng.random::<f32>() >= self.dropout).collect()
    }

    /// Class probabilities in inference mode.
    pub fn predict(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::softmax_last_dim(&self.forward(x)?)
    }

    /// The dense kernel and bias (variables of the `VarMap` the head was built from).
    pub fn trainable_variables(&self) -> Vec<(String, Var)> {
        let bias = self.dense.bias().expect("the head's Dense has a bias");
        // Var::from_tensor wraps a variable tensor without copying it.
        let var = |t: &Tensor| Var::from_tensor(t).expect("a variable tensor");
        vec![("dense/kernel".into(), var(self.dense.weight())), ("dense/bias".into(), var(bias))]
    }
}
