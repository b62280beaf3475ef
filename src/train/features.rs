//! Cached activations. Without augmentation the frozen front of the network is a pure function
//! of the image, so its output is computed once, written to `data-cache/features/<key>/`, and
//! every epoch trains from there: exact, and most of a frozen forward pass saved per epoch.
//! Phase 1 caches the pooled features; phase 2 the input of the first block that trains. One
//! pass over the images can fill several caches ([`build_at`], `Trainer::prepare_caches`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::progress::Progress;
use crate::data::{Batch, DataLoader, Dataset, PipelineConfig, Preprocessor, Skipped};
use crate::error::{Error, Result};
use crate::model::MobileNetV2;

/// The cache's name for the activations at the input of unit `start`: a digest of everything they
/// depend on (the frozen weights, the model configuration, the cut point, the preprocessing and
/// the image files), with that description in readable form.
/// With `mirrored`, of the photos' mirror images.
pub fn key(model: &MobileNetV2, dataset: &Dataset, preprocessor: &Preprocessor, start: usize, mirrored: bool) -> Result<(String, serde_json::Value)> {
    let mut describe = json!({
        "model": model.config(),
        "cut_unit": start,
        "data_format": model.data_format_at(start),
        "units": model.num_units(),
        "preprocessor": preprocessor,
        "decoder": crate::data::DECODER,
        "data": dataset.root,
        "train_images": dataset.train.len(),
        "validation_images": dataset.validation.len(),
    });
    if mirrored {
        describe["mirrored"] = json!(true);
    }
    let mut h = Md5::new();
    h.update(describe.to_string());
    for (name, t) in model.unit_variables(0..start) {
        h.update(name);
        let values = t.flatten_all()?.to_vec1::<f32>()?;
        h.update(values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
    }
    for s in dataset.train.iter().chain(&dataset.validation) {
        let meta = std::fs::metadata(&s.path).ok();
        let stamp = meta.map(|m| (m.len(), m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())));
        h.update(format!("{}|{}|{stamp:?}\n", s.path.display(), s.label));
    }
    Ok((h.finalize().iter().map(|b| format!("{b:02x}")).collect(), describe))
}

/// The caches `root/<key>` of `wanted` `(start unit, key, description)`, sorted by start: opened
/// when complete, the missing ones built in one pass over each split through the frozen `model`
/// (pooled features where the start is the end of the base). Returns `(train, validation)`.
/// With `mirrored`, of the training photos' mirror images only (validation sees photos as they are).
pub fn build_at(
    model: &MobileNetV2,
    dataset: &Dataset,
    pipeline: &PipelineConfig,
    root: &Path,
    wanted: &[(usize, String, serde_json::Value)],
    mirrored: bool,
    verbose: bool,
) -> Result<(Vec<FeatureStore>, Vec<FeatureStore>)> {
    let n = model.num_units();
    let targets: Vec<(PathBuf, serde_json::Value)> = wanted.iter().map(|(_, key, describe)| (root.join(key), describe.clone())).collect();
    let compute = |x: &Tensor| -> Result<Vec<Tensor>> {
        let (mut y, mut at, mut outs) = (if mirrored { mirror(x)? } else { x.clone() }, 0, Vec::new());
        for &(cut, ..) in wanted {
            y = model.forward_units(&y, at..cut)?;
            at = cut;
            outs.push(if cut == n { y.mean((2, 3))? } else { y.clone() });
        }
        Ok(outs)
    };
    let plain = |samples: &[crate::data::Sample]| DataLoader::new(samples.to_vec(), pipeline.clone(), model.device());
    if mirrored {
        return Ok((FeatureStore::open_or_build_all(&targets, "train", &plain(&dataset.train), verbose, compute)?, Vec::new()));
    }
    let train = FeatureStore::open_or_build_all(&targets, "train", &plain(&dataset.train), verbose, compute)?;
    let validation = FeatureStore::open_or_build_all(&targets, "validation", &plain(&dataset.validation), verbose, compute)?;
    Ok((train, validation))
}

/// Images `[B, C, H, W]` mirrored left to right (Keras' `RandomFlip("horizontal")` when it flips).
pub fn mirror(images: &Tensor) -> Result<Tensor> {
    let width = images.dim(3)?;
    let reversed = Tensor::from_vec((0..width as u32).rev().collect::<Vec<_>>(), width, images.device())?;
    Ok(images.index_select(&reversed, 3)?)
}

/// What a cache file holds; written last, so a cache without it is incomplete and rebuilt.
#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    /// What the key was made of, for people reading the folder.
    describe: serde_json::Value,
    /// Shape of one row (one image).
    shape: Vec<usize>,
    /// Per row: the sample's index in the loader's list, and its label.
    samples: Vec<usize>,
    labels: Vec<u32>,
    skipped: Vec<Skipped>,
    seconds: f64,
}

/// Activations of one split, one fixed-size row per readable image, read back by row.
pub struct FeatureStore {
    file: File,
    /// The data file, named in read errors.
    path: PathBuf,
    meta: Meta,
    row_len: usize,
    /// Row of each sample index (`None`: unreadable, not cached).
    rows: Vec<Option<usize>>,
    /// True when an earlier run had built it.
    pub reused: bool,
}

impl FeatureStore {
    /// For each `(dir, describe)` of `targets`, the cache `dir/<name>`: opened if complete; the
    /// missing ones all built in one pass of `compute` over every batch of `loader` (file order,
    /// no augmentation), whose `i`-th output goes to `targets[i]`.
    pub fn open_or_build_all(
        targets: &[(PathBuf, serde_json::Value)],
        name: &str,
        loader: &DataLoader,
        verbose: bool,
        mut compute: impl FnMut(&Tensor) -> Result<Vec<Tensor>>,
    ) -> Result<Vec<Self>> {
        let paths = |dir: &Path| (dir.join(format!("{name}.f32")), dir.join(format!("{name}.json")));
        let mut opened = Vec::with_capacity(targets.len());
        for (dir, _) in targets {
            let (data_path, meta_path) = paths(dir);
            opened.push(match std::fs::read_to_string(&meta_path) {
                Ok(text) => Some(Self::open(&data_path, serde_json::from_str(&text)?, loader.samples().len(), true)?),
                Err(_) => None,
            });
        }
        if opened.iter().all(Option::is_some) {
            return Ok(opened.into_iter().flatten().collect());
        }
        let started = Instant::now();
        let mut outs = Vec::with_capacity(targets.len());
        for (dir, _) in targets {
            std::fs::create_dir_all(dir)?;
            outs.push(BufWriter::new(File::create(paths(dir).0.with_extension("f32.tmp"))?));
        }
        let (mut shapes, mut samples, mut labels) = (vec![Vec::new(); targets.len()], Vec::new(), Vec::new());
        let mut progress = Progress::new(format!("caching {name}"), loader.samples().len(), verbose);
        let mut epoch = loader.epoch(0);
        for batch in epoch.by_ref() {
            let Batch { images, labels: y, indices } = batch?;
            for ((rows, out), shape) in compute(&images)?.iter().zip(&mut outs).zip(&mut shapes) {
                *shape = rows.dims()[1..].to_vec();
                for v in rows.flatten_all()?.to_vec1::<f32>()? {
                    out.write_all(&v.to_le_bytes())?;
                }
            }
            labels.extend(y.to_vec1::<u32>()?);
            progress.inc(indices.len(), String::new);
            samples.extend(indices);
        }
        let (skipped, seconds) = (epoch.stats().skipped, started.elapsed().as_secs_f64());
        let mut stores = Vec::with_capacity(targets.len());
        for ((((dir, describe), out), shape), done) in targets.iter().zip(outs).zip(shapes).zip(opened) {
            let (data_path, meta_path) = paths(dir);
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            if let Some(store) = done {
                std::fs::remove_file(data_path.with_extension("f32.tmp"))?;
                stores.push(store);
                continue;
            }
            std::fs::rename(data_path.with_extension("f32.tmp"), &data_path)?;
            let meta = Meta { describe: describe.clone(), shape, samples: samples.clone(), labels: labels.clone(), skipped: skipped.clone(), seconds };
            crate::cache::write_atomic(&meta_path, serde_json::to_string(&meta)?.as_bytes())?;
            stores.push(Self::open(&data_path, meta, loader.samples().len(), false)?);
        }
        Ok(stores)
    }

    fn open(data_path: &Path, meta: Meta, samples: usize, reused: bool) -> Result<Self> {
        let mut rows = vec![None; samples];
        for (row, &sample) in meta.samples.iter().enumerate() {
            rows[sample] = Some(row);
        }
        let row_len = meta.shape.iter().product();
        Ok(Self { file: File::open(data_path)?, path: data_path.to_path_buf(), meta, row_len, rows, reused })
    }

    /// The sample index (in the loader the cache was built from) of row `row`.
    pub fn sample_of(&self, row: usize) -> usize {
        self.meta.samples[row]
    }

    /// The row holding sample `index` of the loader the cache was built from.
    pub fn row_of(&self, index: usize) -> Option<usize> {
        self.rows.get(index).copied().flatten()
    }

    pub fn len(&self) -> usize {
        self.meta.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.meta.samples.is_empty()
    }

    /// Seconds of the pass over the images that built it (on the run that built it; a pass that
    /// filled deeper caches too counts whole).
    pub fn build_seconds(&self) -> f64 {
        self.meta.seconds
    }

    pub fn skipped(&self) -> &[Skipped] {
        &self.meta.skipped
    }

    /// The rows `rows` as a batch: activations `[B, ..shape]`, labels, and sample indices.
    pub fn batch(&self, rows: &[usize], device: &Device) -> Result<Batch> {
        let bytes = self.row_len * 4;
        let mut buf = vec![0u8; bytes];
        let mut values = Vec::with_capacity(rows.len() * self.row_len);
        for &row in rows {
            self.file.read_exact_at(&mut buf, (row * bytes) as u64).map_err(|e| cache_error(&self.path, e))?;
            values.extend(buf.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])));
        }
        let mut shape = vec![rows.len()];
        shape.extend(&self.meta.shape);
        Ok(Batch {
            images: Tensor::from_vec(values, shape, device)?,
            labels: Tensor::from_vec(rows.iter().map(|&r| self.meta.labels[r]).collect::<Vec<_>>(), rows.len(), device)?,
            indices: rows.iter().map(|&r| self.meta.samples[r]).collect(),
        })
    }
}

fn cache_error(what: &Path, e: std::io::Error) -> Error {
    Error::Io(std::io::Error::new(e.kind(), format!("{}: {e} (delete the cache folder to rebuild it)", what.display())))
}
