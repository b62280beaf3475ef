//! MobileNetV2 for transfer learning: the Keras layer table, pretrained weights and the new head.
//!
//! Split like burn's mobilenetv2: [`config`] (hyper-parameters), [`layers`] (the weighted Keras
//! layers and the table), [`conv_norm`] and [`inverted_residual`] (the blocks),
//! [`mobilenet_v2`] (the network), [`weights`] (checkpoint formats), [`hub`] (downloads),
//! [`summary`] (`model.summary()`) and [`head`] (the Food-101 classifier).

pub mod config;
pub mod conv_norm;
pub mod head;
pub mod hub;
pub mod inverted_residual;
pub mod layers;
pub mod mobilenet_v2;
pub mod summary;
pub mod weights;

pub use config::{MobileNetV2Config, Padding};
pub use head::ClassifierHead;
pub use layers::{LayerInfo, LayerKind};
pub use mobilenet_v2::MobileNetV2;
pub use summary::Summary;
pub use weights::WeightFormat;
