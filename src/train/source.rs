//! Where the batches of an epoch come from: cached activations of the frozen layers, or the
//! images through the whole network; and the seeds that make every epoch repeatable.

use std::sync::Arc;

use candle_core::Device;
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
                    f(b, store.batch(chunk, &Device::Cpu)?)?;
                }
                Ok(store.skipped().len())
            }
            None => {
                let mut batches = loader.epoch(epoch);
                for (b, batch) in batches.by_ref().enumerate() {
                    f(b, batch?)?;
                }
                Ok(batches.stats().skipped.len())
            }
        }
    }
}

/// A seed for one use of randomness, from the run's seed, the epoch and the batch.
pub(crate) fn mix(seed: u64, epoch: u64, batch: u64) -> u64 {
    let mut h = Md5::new();
    h.update(seed.to_le_bytes());
    h.update(epoch.to_le_bytes());
    h.update(batch.to_le_bytes());
    u64::from_le_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
}
