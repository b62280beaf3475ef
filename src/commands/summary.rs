//! `food101 summary`: the Keras layer table of the MobileNetV2 base.

use std::path::PathBuf;

use anyhow::Result;
use food101::candle_core::Device;
use food101::model::{MobileNetV2, MobileNetV2Config};

#[derive(clap::Args)]
pub struct SummaryArgs {
    /// Weights to describe (default: a width-1.0, 224 px model without weights).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Make the last N layers trainable, as in phase 2 (default: all frozen when N is given).
    #[arg(long)]
    unfreeze_last: Option<usize>,
    #[arg(long)]
    json: bool,
}

pub fn run(args: SummaryArgs, device: &Device) -> Result<()> {
    let mut model = match &args.weights {
        Some(path) => MobileNetV2::load(path, device)?,
        None => MobileNetV2::new(MobileNetV2Config::default(), device)?,
    };
    if let Some(n) = args.unfreeze_last {
        model.unfreeze_last(n);
    }
    let summary = model.summary();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary.to_json())?);
    } else {
        print!("{summary}");
    }
    Ok(())
}
