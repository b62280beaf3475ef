//! The `tf.data` of this crate: shuffle → parallel decode (rayon) → augment → resize → normalise →
//! batch → prefetch on a background thread, with a bounded queue. Same seed, same batches.
//! Unreadable images never stop an epoch: they are skipped and counted in [`EpochStats`].

use std::fmt;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::augment::Augment;
use super::dataset::Sample;
use super::preprocess::{load_rgb, resize_bilinear, Preprocessing};
use crate::error::Result;

/// How batches are made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineConfig {
    /// `(height, width)` the model takes.
    pub image_size: (usize, usize),
    pub preprocessing: Preprocessing,
    pub batch_size: usize,
    /// Reshuffle every epoch (training); keep file order otherwise (validation).
    pub shuffle: bool,
    pub seed: u64,
    pub augment: Option<Augment>,
    /// Batches prepared ahead of the consumer (bounded memory).
    pub prefetch: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            image_size: (224, 224),
            preprocessing: Preprocessing::MinusOneToOne,
            batch_size: 32,
            shuffle: false,
            seed: 42,
            augment: None,
            prefetch: 2,
        }
    }
}

/// One batch: images `[B, 3, H, W]` f32, labels `[B]` u32, and which samples they are.
#[derive(Debug)]
pub struct Batch {
    pub images: Tensor,
    pub labels: Tensor,
    pub indices: Vec<usize>,
}

/// An image that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// What an epoch read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    pub total: usize,
    pub skipped: Vec<Skipped>,
}

impl fmt::Display for EpochStats {
    /// `skipped 3 of 75750 images: a.jpg (empty file), ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "skipped {} of {} images", self.skipped.len(), self.total)?;
        let shown: Vec<String> = self.skipped.iter().take(5).map(|s| format!("{} ({})", s.path.display(), s.reason)).collect();
        if !shown.is_empty() {
            write!(f, ": {}", shown.join(", "))?;
            if self.skipped.len() > shown.len() {
                write!(f, ", ...")?;
            }
        }
        Ok(())
    }
}

/// Decodes one image to RGB, or says why it cannot (the reason a skip is reported with).
pub fn decode(path: &std::path::Path) -> Result<image::RgbImage, String> {
    match std::fs::metadata(path) {
        Err(e) => return Err(format!("cannot open: {e}")),
        Ok(m) if m.len() == 0 => return Err("empty file".into()),
        Ok(_) => {}
    }
    load_rgb(path).map_err(|e| match e {
        crate::Error::Image { message, .. } => message,
        other => other.to_string(),
    })
}

/// Decodes and transforms one sample into planar floats, or says why it cannot.
pub fn load_sample(path: &std::path::Path, config: &PipelineConfig, rng: Option<&mut rand::rngs::StdRng>) -> Result<Vec<f32>, String> {
    let img = decode(path)?;
    let (h, w) = config.image_size;
    let img = match (&config.augment, rng) {
        (Some(augment), Some(rng)) => augment.apply(&img, h, w, rng),
        _ => resize_bilinear(&img, h, w),
    };
    Ok(config.preprocessing.normalize(img.as_raw()))
}

/// Batches over a list of samples.
pub struct DataLoader {
    samples: Arc<Vec<Sample>>,
    config: PipelineConfig,
    device: Device,
}

impl DataLoader {
    pub fn new(samples: Vec<Sample>, config: PipelineConfig, device: &Device) -> Self {
        Self { samples: Arc::new(samples), config, device: device.clone() }
    }

    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    pub fn num_batches(&self) -> usize {
        self.samples.len().div_ceil(self.config.batch_size)
    }

    /// Sample order of `epoch`: a seeded shuffle, or file order.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.samples.len()).collect();
        if self.config.shuffle {
            order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(self.config.seed.wrapping_add(epoch.wrapping_mul(1_000_003))));
        }
        order
    }

    /// Starts producing the batches of `epoch` in the background.
    pub fn epoch(&self, epoch: u64) -> Epoch {
        let (tx, rx) = sync_channel(self.config.prefetch.max(1));
        let stats = Arc::new(Mutex::new(EpochStats { total: self.samples.len(), skipped: Vec::new() }));
        let (samples, config, device, order, shared) =
            (self.samples.clone(), self.config.clone(), self.device.clone(), self.order(epoch), stats.clone());
        let handle = std::thread::spawn(move || {
            let (h, w) = config.image_size;
            for chunk in order.chunks(config.batch_size.max(1)) {
                let loaded: Vec<(usize, Result<Vec<f32>, String>)> = chunk
                    .par_iter()
                    .map(|&i| {
                        // Per-sample generator: the same augmentation whatever thread runs it.
                        let mut rng = rand::rngs::StdRng::seed_from_u64(config.seed ^ (epoch << 32) ^ (i as u64).wrapping_mul(0x9E37_79B9));
                        (i, load_sample(&samples[i].path, &config, Some(&mut rng)))
                    })
                    .collect();
                let mut pixels = Vec::with_capacity(chunk.len() * 3 * h * w);
                let (mut labels, mut indices) = (Vec::new(), Vec::new());
                for (i, result) in loaded {
                    match result {
                        Ok(p) => {
                            pixels.extend_from_slice(&p);
                            labels.push(samples[i].label as u32);
                            indices.push(i);
                        }
                        Err(reason) => shared.lock().expect("stats lock").skipped.push(Skipped { path: samples[i].path.clone(), reason }),
                    }
                }
                if indices.is_empty() {
                    continue;
                }
                let batch = (|| -> Result<Batch> {
                    let n = indices.len();
                    Ok(Batch {
                        images: Tensor::from_vec(pixels, (n, 3, h, w), &device)?,
                        labels: Tensor::from_vec(labels, n, &device)?,
                        indices,
                    })
                })();
                if tx.send(batch).is_err() {
                    return; // the consumer stopped early
                }
            }
        });
        Epoch { rx, handle: Some(handle), stats }
    }
}

/// The batches of one epoch, arriving from the background thread.
pub struct Epoch {
    rx: Receiver<Result<Batch>>,
    handle: Option<JoinHandle<()>>,
    stats: Arc<Mutex<EpochStats>>,
}

impl Epoch {
    /// What was skipped so far (all of it once the iterator is exhausted).
    pub fn stats(&self) -> EpochStats {
        self.stats.lock().expect("stats lock").clone()
    }
}

impl Iterator for Epoch {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.rx.recv() {
            Ok(batch) => Some(batch),
            Err(_) => {
                if let Some(handle) = self.handle.take() {
                    let _ = handle.join();
                }
                None
            }
        }
    }
}
