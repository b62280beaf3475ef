//! Subcommands of the `food101` binary that are more than a few lines.

pub mod train;
