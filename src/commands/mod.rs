//! The subcommands of the `food101` binary, one file each.

pub mod data;
pub mod fetch_weights;
pub mod mlflow;
pub mod predict;
pub mod serve;
pub mod summary;
pub mod train;
