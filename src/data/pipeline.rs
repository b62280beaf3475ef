//! The `tf.data` of this crate: shuffle → parallel decode (rayon) → augment → resize → normalise →
//! batch → prefetch on a background thread, with a bounded queue. Same seed, same batches.
//! Unreadable images never stop an epoch: they are skipped and counted in [`EpochStats`].

use std::fmt;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::augment::Augment;
use super::dataset::{Sample, Skipped};
use super::preprocess::Preprocessor;
use crate::error::Result;

/// How batches are made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineConfig {
    /// From file to model input (augmented images are always resized with antialiasing).
    pub preprocessor: Preprocessor,
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
            preprocessor: Preprocessor::default(),
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

/// Decodes and transforms one sample into planar floats, or says why it cannot.
pub fn load_sample(path: &std::path::Path, config: &PipelineConfig, rng: Option<&mut rand::rngs::StdRng>) -> Result<Vec<f32>, String> {
    let mut out = vec![0f32; config.preprocessor.input_len()];
    load_sample_into(path, config, rng, &mut out)?;
    Ok(out)
}

/// [`load_sample`] into `out` (`3 x height x width` floats): the [`Preprocessor`]'s road, or
/// with augmentation a decoded image cropped, resized, rotated and flipped before normalising.
fn load_sample_into(path: &std::path::Path, config: &PipelineConfig, rng: Option<&mut rand::rngs::StdRng>, out: &mut [f32]) -> Result<(), String> {
    let p = &config.preprocessor;
    match (&config.augment, rng) {
        (Some(augment), Some(rng)) => {
            let (h, w) = p.image_size;
            p.normalization.normalize_into(augment.apply(&p.decode_file(path)?, h, w, rng).as_raw(), out);
            Ok(())
        }
        _ => p.file_into(path, out),
    }
}

/// A batch's pixels, and per slot the sample it holds and whether it loaded.
type Loaded = (Vec<f32>, Vec<(usize, Result<(), String>)>);

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
            let (h, w) = config.preprocessor.image_size;
            let len = config.preprocessor.input_len();
            // Every image is written straight into its slot of the batch.
            let load = |chunk: &[usize]| {
                slots_filled_in_parallel(chunk, len, |slot, i| {
                    // Per-sample generator: the same augmentation whatever thread runs it.
                    let mut rng = rand::rngs::StdRng::seed_from_u64(config.seed ^ (epoch << 32) ^ (i as u64).wrapping_mul(0x9E37_79B9));
                    (i, load_sample_into(&samples[i].path, &config, Some(&mut rng), slot))
                })
            };
            // The readable images closed up (skipped ones are rare), as a batch.
            let assemble = |(mut pixels, results): Loaded| -> Option<Result<Batch>> {
                let (mut labels, mut indices) = (Vec::new(), Vec::new());
                for (slot, (i, result)) in results.into_iter().enumerate() {
                    match result {
                        Ok(()) => {
                            let kept = indices.len();
                            if kept != slot {
                                pixels.copy_within(slot * len..(slot + 1) * len, kept * len);
                            }
                            labels.push(samples[i].label as u32);
                            indices.push(i);
                        }
                        Err(reason) => shared.lock().expect("stats lock").skipped.push(Skipped { path: samples[i].path.clone(), reason }),
                    }
                }
                let n = indices.len();
                pixels.truncate(n * len);
                (n > 0).then(|| {
                    Ok(Batch {
                        images: Tensor::from_vec(pixels, (n, 3, h, w), &device)?,
                        labels: Tensor::from_vec(labels, n, &device)?,
                        indices,
                    })
                })
            };
            // Batch k is closed up and made into tensors while batch k + 1 decodes.
            let mut pending = None;
            for chunk in order.chunks(config.batch_size.max(1)).map(Some).chain([None]) {
                let (batch, loaded) = rayon::join(|| pending.take().and_then(assemble), || chunk.map(load));
                if let Some(batch) = batch {
                    if tx.send(batch).is_err() {
                        return; // the consumer stopped early
                    }
                }
                pending = loaded;
            }
        });
        Epoch { rx, handle: Some(handle), stats }
    }
}

/// A buffer of `items.len()` slots of `len` floats, each slot zeroed and then filled by `fill` on
/// the rayon pool. `vec![0.0; n]` would zero the whole batch (19 MB at 224 px) in one serial pass
/// while the other threads wait.
fn slots_filled_in_parallel<R: Send>(items: &[usize], len: usize, fill: impl Fn(&mut [f32], usize) -> R + Sync) -> (Vec<f32>, Vec<R>) {
    let total = items.len() * len;
    let mut buffer = Vec::with_capacity(total);
    let results = buffer.spare_capacity_mut()[..total]
        .par_chunks_mut(len)
        .zip(items)
        .map(|(slot, &item)| {
            for v in slot.iter_mut() {
                v.write(0.0);
            }
            // SAFETY: every element of the slot was just initialised, and `MaybeUninit<f32>` has
            // the layout of `f32`.
            let slot = unsafe { &mut *(slot as *mut [std::mem::MaybeUninit<f32>] as *mut [f32]) };
            fill(slot, item)
        })
        .collect();
    // SAFETY: the slots cover the first `total` elements, and each was initialised above.
    unsafe { buffer.set_len(total) };
    (buffer, results)
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
