//! Where the batches of an epoch come from: cached activations of the frozen layers, or the
//! images through the whole network; and the seeds that make every epoch repeatable.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use md5::{Digest, Md5};

use super::features::FeatureStore;
use crate::data::{Batch, DataLoader};
use crate::error::Result;

/// Where a phase's batches come from: cached activations at the input of unit `start`, or the
/// images through the whole network (`start == 0`).
pub(crate) struct Source {
    pub start: usize,
    pub cached: Option<(Arc<FeatureStore>, Arc<FeatureStore>)>,
    pub train: DataLoader,
    pub validation: DataLoader,
    /// Random horizontal flips of training images: each image of an epoch is mirrored or not by
    /// a coin of the seed, the epoch and the image; cached, the mirrored rows come from here.
    pub flip: Option<Flip>,
}

pub(crate) enum Flip {
    /// Mirror the images of each batch.
    Images,
    /// Take mirrored images' rows from this cache of the mirrored training photos.
    Cached(Arc<FeatureStore>),
}

impl Source {
    pub fn len(&self, train: bool) -> usize {
        match (&self.cached, train) {
            (Some((t, _)), true) => t.len(),
            (Some((_, v)), false) => v.len(),
            (None, true) => self.train.samples().len(),
            (None, false) => self.validation.samples().len(),
        }
    }

    /// Calls `f(batch_number, batch)` for the batches of an epoch; returns how many images were skipped.
    pub fn for_each(&self, train: bool, epoch: u64, mut f: impl FnMut(usize, Batch) -> Result<()>) -> Result<usize> {
        let loader = if train { &self.train } else { &self.validation };
        match &self.cached {
            Some((t, v)) => {
                let store = if train { t } else { v };
                // The loader's own order, so that cached and uncached runs see the same batches.
                let rows: Vec<usize> = loader.order(epoch).into_iter().filter_map(|i| store.row_of(i)).collect();
                for (b, chunk) in rows.chunks(loader.config().batch_size).enumerate() {
                    let batch = match (&self.flip, train) {
                        (Some(Flip::Cached(mirrored)), true) => self.mixed_batch(store, mirrored, chunk, epoch)?,
                        _ => store.batch(chunk, &Device::Cpu)?,
                    };
                    f(b, batch)?;
                }
                Ok(store.skipped().len())
            }
            None => {
                let mut batches = loader.epoch(epoch);
                for (b, batch) in batches.by_ref().enumerate() {
                    let mut batch = batch?;
                    if train && self.flip.is_some() {
                        let flips: Vec<bool> = batch.indices.iter().map(|&i| self.flips(epoch, i)).collect();
                        batch.images = mirror_where(&batch.images, &flips)?;
                    }
                    f(b, batch)?;
                }
                Ok(batches.stats().skipped.len())
            }
        }
    }

    /// Whether image `index` is mirrored in `epoch`.
    fn flips(&self, epoch: u64, index: usize) -> bool {
        // A seed of its own (the "flip" tag), so that flips do not follow the dropout masks.
        mix(self.train.config().seed ^ 0x666c_6970, epoch, index as u64) & 1 == 1
    }

    /// The cached rows `rows` (of `plain`), in their order, those whose coin says so from
    /// `mirrored` instead: the batch the images would give, dropout masks included.
    fn mixed_batch(&self, plain: &FeatureStore, mirrored: &FeatureStore, rows: &[usize], epoch: u64) -> Result<Batch> {
        let parts = rows
            .iter()
            .map(|&row| {
                let sample = plain.sample_of(row);
                match mirrored.row_of(sample).filter(|_| self.flips(epoch, sample)) {
                    Some(m) => mirrored.batch(&[m], &Device::Cpu),
                    None => plain.batch(&[row], &Device::Cpu),
                }
            })
            .collect::<Result<Vec<Batch>>>()?;
        let stack = |t: fn(&Batch) -> &Tensor| Tensor::cat(&parts.iter().map(t).collect::<Vec<_>>(), 0);
        Ok(Batch {
            images: stack(|b| &b.images)?,
            labels: stack(|b| &b.labels)?,
            indices: parts.iter().flat_map(|b| b.indices.iter().copied()).collect(),
        })
    }
}

/// The images `[B, C, H, W]` whose `flips` entry is true mirrored left to right.
fn mirror_where(images: &Tensor, flips: &[bool]) -> Result<Tensor> {
    if !flips.contains(&true) {
        return Ok(images.clone());
    }
    let rows = flips
        .iter()
        .enumerate()
        .map(|(i, &flip)| {
            let row = images.narrow(0, i, 1)?;
            if flip {
                super::features::mirror(&row)
            } else {
                Ok(row)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&rows, 0)?)
}

/// A seed for one use of randomness, from the run's seed, the epoch and the batch.
pub(crate) fn mix(seed: u64, epoch: u64, batch: u64) -> u64 {
    let mut h = Md5::new();
    h.update(seed.to_le_bytes());
    h.update(epoch.to_le_bytes());
    h.update(batch.to_le_bytes());
    u64::from_le_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
}
