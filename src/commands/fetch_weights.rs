//! `food101 fetch-weights`: timm's ImageNet MobileNetV2 weights into the Hugging Face cache.

use anyhow::{Context, Result};
use food101::model::hub;

pub fn run() -> Result<()> {
    let path = hub::timm_imagenet_weights().context("fetching the ImageNet weights")?;
    println!("{}", path.display());
    Ok(())
}
