//! The Food-101 head of the original project: GlobalAveragePooling2D → Dropout(0.3) → Dense(classes).

use candle_core::{Result, Tensor, Var};
use candle_nn::{Dropout, Init, Linear, Module, VarBuilder};

/// A new classifier on top of the base. It returns logits (the loss takes logits); softmax
/// gives probabilities.
#[derive(Debug, Clone)]
pub struct ClassifierHead {
    dropout: Dropout,
    dense: Linear,
}

impl ClassifierHead {
    pub const DEFAULT_DROPOUT: f32 = 0.3;

    /// `Dense(classes)` named like Keras' `dense` layer, with Glorot-uniform kernel and zero bias.
    pub fn new(vb: VarBuilder, in_features: usize, classes: usize, dropout: f32) -> Result<Self> {
        let limit = (6.0 / (in_features + classes) as f64).sqrt();
        let w = vb.get_with_hints((classes, in_features), "dense/kernel", Init::Uniform { lo: -limit, up: limit })?;
        let b = vb.get_with_hints(classes, "dense/bias", Init::Const(0.0))?;
        Ok(Self { dropout: Dropout::new(dropout), dense: Linear::new(w, Some(b)) })
    }

    /// Logits from base activations `[N, C, H, W]` or already pooled features `[N, C]`.
    /// `train` turns dropout on.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let pooled = if x.rank() == 4 { x.mean((2, 3))? } else { x.clone() };
        self.dense.forward(&self.dropout.forward(&pooled, train)?)
    }

    /// Class probabilities in inference mode.
    pub fn predict(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::softmax_last_dim(&self.forward_t(x, false)?)
    }

    /// The dense kernel and bias (variables of the `VarMap` the head was built from).
    pub fn trainable_variables(&self) -> Vec<(String, Var)> {
        let bias = self.dense.bias().expect("the head's Dense has a bias");
        // Var::from_tensor wraps a variable tensor without copying it.
        let var = |t: &Tensor| Var::from_tensor(t).expect("a variable tensor");
        vec![("dense/kernel".into(), var(self.dense.weight())), ("dense/bias".into(), var(bias))]
    }
}
