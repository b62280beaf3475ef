//! Image classification datasets on disk: the Food-101 layout (`images/<class>/<id>.jpg` with
//! `meta/{classes,train,test}.txt`) and the class-per-folder layout (`train/<class>/*`,
//! `validation/<class>/*`, as TensorFlow's cats-vs-dogs tutorial ships), plus reproducible subsets.

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One labelled image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    pub path: PathBuf,
    pub label: usize,
}

/// An image that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// Classes and the two splits. For Food-101 the official test split is the validation set, as in tfds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dataset {
    pub root: PathBuf,
    pub classes: Vec<String>,
    pub train: Vec<Sample>,
    pub validation: Vec<Sample>,
}

/// Which classes a subset keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClassSelection {
    All,
    /// The first N in class order (`apple_pie`, `baby_back_ribs`, ... for Food-101).
    First(usize),
    Names(Vec<String>),
}

impl std::str::FromStr for ClassSelection {
    type Err = std::convert::Infallible;

    /// `"10"` → the first 10 classes; `"pizza,sushi"` → those classes; `"all"` → every class.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(match s.trim() {
            "" | "all" => Self::All,
            n if n.parse::<usize>().is_ok() => Self::First(n.parse().unwrap_or(0)),
            names => Self::Names(names.split(',').map(|n| n.trim().to_string()).collect()),
        })
    }
}

const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "bmp", "gif", "webp"];

fn read_lines(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Dataset { path: path.to_path_buf(), message: format!("cannot read: {e}") })?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())
}

impl Dataset {
    /// Either layout, recognised by its files.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        if root.join("meta/classes.txt").is_file() {
            Self::food101(root)
        } else if root.join("train").is_dir() {
            Self::class_folders(root)
        } else {
            Err(Error::Dataset {
                path: root.to_path_buf(),
                message: "neither the Food-101 layout (meta/classes.txt) nor class folders (train/<class>/)".into(),
            })
        }
    }

    /// `meta/classes.txt` gives the label order (line number = class index); `meta/train.txt` and
    /// `meta/test.txt` list `<class>/<id>` without extension. Listed files need not exist: the
    /// pipeline skips and counts what it cannot read.
    pub fn food101(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let classes = read_lines(&root.join("meta/classes.txt"))?;
        let split = |name: &str| -> Result<Vec<Sample>> {
            let file = root.join("meta").join(name);
            read_lines(&file)?
                .into_iter()
                .map(|entry| {
                    let class = entry.split('/').next().unwrap_or_default();
                    let label = classes.iter().position(|c| c == class).ok_or_else(|| Error::Dataset {
                        path: file.clone(),
                        message: format!("`{entry}` names class `{class}`, which is not in meta/classes.txt"),
                    })?;
                    Ok(Sample { path: root.join("images").join(format!("{entry}.jpg")), label })
                })
                .collect()
        };
        let (train, validation) = (split("train.txt")?, split("test.txt")?);
        Ok(Self { root, classes, train, validation })
    }

    /// `train/<class>/*` and `validation/<class>/*` (or `val/`, `test/`); classes sorted by name.
    pub fn class_folders(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let train_dir = root.join("train");
        let mut classes: Vec<String> = std::fs::read_dir(&train_dir)?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        classes.sort();
        if classes.is_empty() {
            return Err(Error::Dataset { path: train_dir, message: "no class folders".into() });
        }
        let list = |dir: &Path| -> Result<Vec<Sample>> {
            let mut samples = Vec::new();
            for (label, class) in classes.iter().enumerate() {
                let Ok(entries) = std::fs::read_dir(dir.join(class)) else { continue };
                let mut paths: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        let ext = p.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
                        ext.is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()))
                    })
                    .collect();
                paths.sort();
                samples.extend(paths.into_iter().map(|path| Sample { path, label }));
            }
            Ok(samples)
        };
        let validation_dir = ["validation", "val", "test"].iter().map(|d| root.join(d)).find(|d| d.is_dir());
        let validation = match validation_dir {
            Some(dir) => list(&dir)?,
            None => Vec::new(),
        };
        let train = list(&train_dir)?;
        Ok(Self { root, classes, train, validation })
    }

    /// The chosen classes (relabelled 0..k in their original order) and `fraction` of each
    /// class's images in each split, drawn reproducibly from `seed`.
    pub fn subset(&self, classes: &ClassSelection, fraction: f64, seed: u64) -> Result<Self> {
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(Error::Dataset { path: self.root.clone(), message: format!("fraction {fraction} is not in (0, 1]") });
        }
        let keep: Vec<usize> = match classes {
            ClassSelection::All => (0..self.classes.len()).collect(),
            ClassSelection::First(n) => (0..(*n).min(self.classes.len())).collect(),
            ClassSelection::Names(names) => names
                .iter()
                .map(|n| {
                    self.classes.iter().position(|c| c == n).ok_or_else(|| Error::Dataset {
                        path: self.root.clone(),
                        message: format!("no class `{n}` (classes: {} ...)", self.classes[..self.classes.len().min(5)].join(", ")),
                    })
                })
                .collect::<Result<_>>()?,
        };
        let pick = |samples: &[Sample], salt: u64| -> Vec<Sample> {
            let mut out = Vec::new();
            for (new_label, &old) in keep.iter().enumerate() {
                let mut of_class: Vec<&Sample> = samples.iter().filter(|s| s.label == old).collect();
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ salt ^ (old as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                of_class.shuffle(&mut rng);
                let n = ((of_class.len() as f64 * fraction).round() as usize).clamp(of_class.len().min(1), of_class.len());
                let mut chosen: Vec<Sample> =
                    of_class[..n].iter().map(|s| Sample { path: s.path.clone(), label: new_label }).collect();
                chosen.sort_by(|a, b| a.path.cmp(&b.path));
                out.extend(chosen);
            }
            out
        };
        let mut keep_sorted = keep.clone();
        keep_sorted.sort();
        keep_sorted.dedup();
        if keep_sorted.len() != keep.len() {
            return Err(Error::Dataset { path: self.root.clone(), message: "a class is selected twice".into() });
        }
        Ok(Self {
            root: self.root.clone(),
            classes: keep.iter().map(|&i| self.classes[i].clone()).collect(),
            train: pick(&self.train, 1),
            validation: pick(&self.validation, 2),
        })
    }

    /// Decodes every image of both splits (in parallel) and lists those that cannot be read.
    pub fn unreadable(&self) -> Vec<Skipped> {
        use rayon::prelude::*;
        let all: Vec<&Sample> = self.train.iter().chain(&self.validation).collect();
        all.par_iter()
            .filter_map(|s| super::decoding::decode_file(&s.path).err().map(|reason| Skipped { path: s.path.clone(), reason }))
            .collect()
    }

    /// Images per class in a split.
    pub fn class_counts(samples: &[Sample], classes: usize) -> Vec<usize> {
        let mut counts = vec![0; classes];
        for s in samples {
            counts[s.label] += 1;
        }
        counts
    }
}
