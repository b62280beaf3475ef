//! Everything of the `food101` crate, re-exported from one shared library (see Cargo.toml).
pub use food101::*;
