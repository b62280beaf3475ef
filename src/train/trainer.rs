//! The [`Trainer`]: Keras' `model.fit` for this model, one phase per call, with cached
//! activations, a checkpoint after every epoch and exact resume.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Tensor, Var};
use candle_nn::{ops::log_softmax, VarMap};
use rand::SeedableRng;

use super::adam::Adam;
use super::checkpoint::{self, TrainingState};
use super::features::{self, FeatureStore};
use super::history::{EpochRecord, History, PhaseRecord};
use super::metrics::{Evaluation, Metrics};
use super::phase::Phase;
use super::progress::Progress;
use super::source::{mix, Flip, Source};
use crate::data::{Augment, DataLoader, Dataset, JpegDecoding, PipelineConfig, Preprocessor};
use crate::error::{Error, Result};
use crate::export::{self, FinalEvaluation};
use crate::model::{ClassifierHead, MobileNetV2};

/// Everything about a run that is not a phase.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub batch_size: usize,
    /// Every random draw (head initialisation, shuffling, dropout, augmentation) derives from it.
    pub seed: u64,
    /// Random flips, zoom and rotation of training images; turns the activation cache off.
    pub augment: Option<Augment>,
    /// How JPEGs become pixels (the rest of the preprocessing is the model's).
    pub jpeg: JpegDecoding,
    /// Train from cached activations of the frozen layers when there is no augmentation.
    pub cache: bool,
    /// Where caches go (default `data-cache/features`).
    pub cache_dir: Option<PathBuf>,
    /// Where a checkpoint is written after every epoch (none: no checkpoints).
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from the checkpoint in `checkpoint_dir` if there is one.
    pub resume: bool,
    pub dropout: f32,
    /// Progress lines and a line per epoch.
    pub verbose: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            batch_size: 32,
            seed: 42,
            augment: None,
            jpeg: JpegDecoding::default(),
            cache: true,
            cache_dir: None,
            checkpoint_dir: None,
            resume: false,
            dropout: ClassifierHead::DEFAULT_DROPOUT,
            verbose: true,
        }
    }
}

/// What one training epoch draws at random (see [`Trainer::draws`]).
#[derive(Debug, Clone, PartialEq)]
pub struct EpochDraws {
    /// Indices into the dataset's training samples, in the order the epoch takes them.
    pub order: Vec<usize>,
    /// Per batch (the order cut into batches), per example then feature: dropout keeps it.
    pub keeps: Vec<Vec<bool>>,
}

/// Keras-style callbacks, e.g. the MLflow tracker. Errors are theirs to handle: a callback never
/// stops training.
pub trait Callback {
    fn on_phase_begin(&mut self, _phase: &Phase, _first_epoch: usize) {}
    fn on_epoch_end(&mut self, _record: &EpochRecord) {}
    fn on_phase_end(&mut self, _phase: &PhaseRecord, _history: &History) {}
}

/// Trains a [`ClassifierHead`] on a [`MobileNetV2`] base over a [`Dataset`].
///
/// ```no_run
/// # use food101::{train::{Trainer, TrainConfig, Phase}, data::Dataset, MobileNetV2};
/// # fn main() -> food101::Result<()> {
/// let model = MobileNetV2::load("weights.safetensors", &food101::candle_core::Device::Cpu)?;
/// let data = Dataset::open("data-cache/food-101")?;
/// let mut trainer = Trainer::new(model, data, TrainConfig::default())?;
/// trainer.fit(Phase::feature_extraction(10))?;
/// trainer.fit(Phase::fine_tune(50, 10, 1e-5))?;
/// println!("{:.3}", trainer.evaluate()?.accuracy);
/// # Ok(()) }
/// ```
pub struct Trainer {
    model: MobileNetV2,
    head: ClassifierHead,
    head_vars: VarMap,
    dataset: Dataset,
    config: TrainConfig,
    preprocessor: Preprocessor,
    history: History,
    /// The optimizer of the phase trained last, kept so that the phase can continue.
    optimizer: Option<(Phase, Adam)>,
    /// The validation of the current weights when nothing has trained since: the last epoch's,
    /// which `evaluate` returns instead of running the same pass again.
    validated: Option<Evaluation>,
    /// The activation caches opened so far, with their keys.
    /// (A mirrored cache has no validation store: validation sees the photos as they are.)
    cached: Vec<(String, Arc<FeatureStore>, Option<Arc<FeatureStore>>)>,
    callbacks: Vec<Box<dyn Callback>>,
}

impl Trainer {
    /// A new head for `dataset`'s classes on `model` (dropout and initial weights from `config`);
    /// with `config.resume`, the state of the checkpoint in `config.checkpoint_dir` when there is one.
    pub fn new(model: MobileNetV2, dataset: Dataset, config: TrainConfig) -> Result<Self> {
        let head = ClassifierHead::new(&VarMap::new(), model.device(), model.feature_dim(), dataset.classes.len(), config.dropout, config.seed)?;
        Self::with_head(model, head, dataset, config)
    }

    /// Trains `head` on `model`, both as given (a head built by hand, as notebook 02 does); with
    /// `config.resume`, from the checkpoint in `config.checkpoint_dir` when there is one.
    pub fn with_head(model: MobileNetV2, head: ClassifierHead, dataset: Dataset, config: TrainConfig) -> Result<Self> {
        if config.batch_size == 0 {
            return Err(Error::Config("batch_size must be at least 1".into()));
        }
        let refuse = |message: String| Err(Error::Dataset { path: dataset.root.clone(), message });
        if dataset.classes.len() < 2 {
            return refuse(format!("{} class(es): a classifier needs at least two", dataset.classes.len()));
        }
        if dataset.train.is_empty() || dataset.validation.is_empty() {
            return refuse(format!("{} training and {} validation images: both splits need images", dataset.train.len(), dataset.validation.len()));
        }
        if head.classes() != dataset.classes.len() || head.features() != model.feature_dim() {
            return Err(Error::Config(format!(
                "a head from {} features to {} classes does not fit this base ({} features) and dataset ({} classes)",
                head.features(),
                head.classes(),
                model.feature_dim(),
                dataset.classes.len()
            )));
        }
        // The head's variables under their checkpoint names (the same tensors: training moves both).
        let head_vars = VarMap::new();
        head_vars.data().lock().expect("varmap lock").extend(head.trainable_variables());
        let preprocessor = model.preprocessor().with_jpeg(config.jpeg);
        let mut trainer = Self {
            model,
            head,
            head_vars,
            dataset,
            config,
            preprocessor,
            history: History::default(),
            optimizer: None,
            validated: None,
            cached: Vec::new(),
            callbacks: Vec::new(),
        };
        if let Some(dir) = trainer.config.checkpoint_dir.clone() {
            if trainer.config.resume {
                trainer.restore()?;
            } else if checkpoint::latest(&dir).is_some() {
                trainer.say(format!("note: {} holds a checkpoint; this run starts afresh and replaces it after its first epoch (resume continues it instead)", dir.display()));
            }
        }
        Ok(trainer)
    }

    pub fn model(&self) -> &MobileNetV2 {
        &self.model
    }

    /// The base, to freeze or unfreeze layers before the next phase.
    pub fn model_mut(&mut self) -> &mut MobileNetV2 {
        &mut self.model
    }

    pub fn head(&self) -> &ClassifierHead {
        &self.head
    }

    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// How every image becomes the model's input, here and in the exported model.
    pub fn preprocessor(&self) -> Preprocessor {
        self.preprocessor
    }

    pub fn add_callback(&mut self, callback: impl Callback + 'static) {
        self.callbacks.push(Box::new(callback));
    }

    /// Removes the callbacks (a notebook cell that adds its tracker again calls this first).
    pub fn clear_callbacks(&mut self) {
        self.callbacks.clear();
    }

    fn say(&self, line: impl AsRef<str>) {
        if self.config.verbose {
            println!("{}", line.as_ref());
        }
    }

    fn apply(&mut self, phase: &Phase) {
        match phase.unfreeze_last {
            Some(n) => self.model.unfreeze_last(n),
            None => self.model.freeze_all(),
        }
    }

    /// The head's and the base's trainable variables, in that order.
    fn trainable_variables(&self) -> Vec<(String, Var)> {
        let mut vars = self.head.trainable_variables();
        vars.extend(self.model.trainable_variables());
        vars
    }

    fn pipeline(&self, train: bool, augment: bool) -> PipelineConfig {
        PipelineConfig {
            preprocessor: self.preprocessor,
            batch_size: self.config.batch_size,
            shuffle: train,
            seed: self.config.seed,
            augment: if augment { self.config.augment.clone() } else { None },
            ..PipelineConfig::default()
        }
    }

    /// Trains one phase, or the rest of it when an earlier call (or a resumed checkpoint) got
    /// part of the way. A phase that is complete is not trained again.
    pub fn fit(&mut self, phase: Phase) -> Result<&History> {
        let done = self.history.epochs_in(&phase.name);
        if done >= phase.epochs {
            let fresh = match &self.config.checkpoint_dir {
                Some(dir) if self.config.resume => format!("delete {} and make a new Trainer", dir.display()),
                _ => "make a new Trainer".into(),
            };
            self.say(format!(
                "{}: already trained ({done} of {} epochs), nothing to do. To train more, give the phase a new name (`Phase::named`); to start over, {fresh}.",
                phase.name, phase.epochs
            ));
            return Ok(&self.history);
        }
        self.apply(&phase);
        let mut adam = match self.optimizer.take() {
            Some((p, adam)) if p.name == phase.name && done > 0 => adam,
            _ => Adam::new(self.trainable_variables(), phase.optimizer)?,
        };
        adam.config = phase.optimizer;
        let first_epoch = self.history.epochs.len() + 1 - done;
        if done > 0 {
            self.say(format!("{}: continuing at epoch {} (epochs {first_epoch}-{})", phase.name, first_epoch + done, first_epoch + phase.epochs - 1));
        } else {
            let trainable = self.model.trainable_params() + self.head.classes() * (self.model.feature_dim() + 1);
            self.say(format!(
                "{}: epochs {first_epoch}-{}, {trainable} trainable parameters, Adam lr {:e}",
                phase.name,
                first_epoch + phase.epochs - 1,
                phase.optimizer.learning_rate
            ));
        }
        for callback in &mut self.callbacks {
            callback.on_phase_begin(&phase, first_epoch);
        }
        let started = Instant::now();
        let result = self.run_phase(&phase, &mut adam, done);
        self.optimizer = Some((phase.clone(), adam));
        let (cache_seconds, saved_per_epoch) = result?;
        let epochs_now = self.history.epochs_in(&phase.name) - done;
        let seconds = started.elapsed().as_secs_f64();
        let record = match self.history.phases.iter_mut().find(|p| p.name == phase.name) {
            Some(record) => {
                record.epochs += epochs_now;
                record.seconds += seconds;
                record.cache_seconds += cache_seconds;
                record.cache_saved_seconds += saved_per_epoch * epochs_now as f64 - cache_seconds;
                record.clone()
            }
            None => {
                // Epochs done before a resume count too: the record is written at the phase's end.
                let record = PhaseRecord {
                    name: phase.name.clone(),
                    first_epoch,
                    epochs: done + epochs_now,
                    seconds,
                    cache_seconds,
                    cache_saved_seconds: saved_per_epoch * epochs_now as f64 - cache_seconds,
                };
                self.history.phases.push(record.clone());
                record
            }
        };
        if saved_per_epoch > 0.0 {
            self.say(format!(
                "{}: {:.1} s; the activation cache saved about {:.0} s ({:.1} s of frozen forward passes per epoch)",
                phase.name, record.seconds, record.cache_saved_seconds.max(0.0), saved_per_epoch
            ));
        } else {
            self.say(format!("{}: {:.1} s", phase.name, record.seconds));
        }
        for callback in &mut self.callbacks {
            callback.on_phase_end(&record, &self.history);
        }
        Ok(&self.history)
    }

    /// The epochs of a phase; returns the seconds spent building caches now, and the seconds of
    /// frozen computation each epoch was spared.
    fn run_phase(&mut self, phase: &Phase, adam: &mut Adam, done: usize) -> Result<(f64, f64)> {
        let (source, cache_seconds) = self.source(phase.random_flip)?;
        let saved_per_epoch = source.cached.as_ref().map_or(0.0, |(t, v)| t.build_seconds() + v.build_seconds());
        for _ in done..phase.epochs {
            let epoch = self.history.epochs.len() + 1;
            let started = Instant::now();
            self.validated = None;
            let (metrics, skipped_train) = match self.train_epoch(&source, phase, adam, epoch) {
                Err(Error::Diverged { epoch, batch, loss, .. }) => return Err(self.recover(epoch, batch, loss)),
                other => other?,
            };
            let evaluation = self.validate(&source)?;
            self.apply(phase);
            self.validated = Some(evaluation.clone());
            let record = EpochRecord {
                epoch,
                phase: phase.name.clone(),
                loss: metrics.loss(),
                accuracy: metrics.accuracy(),
                top5: metrics.top5(),
                val_loss: evaluation.loss,
                val_accuracy: evaluation.accuracy,
                val_top5: evaluation.top5,
                learning_rate: adam.config.learning_rate,
                seconds: started.elapsed().as_secs_f64(),
                skipped: skipped_train + evaluation.skipped,
            };
            self.say(record.to_string());
            for callback in &mut self.callbacks {
                callback.on_epoch_end(&record);
            }
            self.history.epochs.push(record);
            self.save_checkpoint(phase, adam)?;
        }
        Ok((cache_seconds, saved_per_epoch))
    }

    /// One epoch of updates; the learning rate of each is the phase's schedule applied to the
    /// optimizer's count of updates in this phase (restored with a checkpoint).
    fn train_epoch(&self, source: &Source, phase: &Phase, adam: &mut Adam, epoch: usize) -> Result<(Metrics, usize)> {
        let units = source.start..self.model.num_units();
        let mut metrics = Metrics::default();
        let mut progress = Progress::new(format!("epoch {epoch}"), source.len(true), self.config.verbose);
        let steps_per_epoch = source.len(true).div_ceil(self.config.batch_size) as u64;
        let skipped = source.for_each(true, epoch as u64, |b, batch| {
            let x = self.model.forward_units(&batch.images, units.clone())?;
            let mut rng = self.dropout_rng(epoch, b);
            let log_probs = log_softmax(&self.head.forward_train(&x, &mut rng)?, 1)?;
            let loss = cross_entropy(&log_probs, &batch.labels, f64::from(phase.label_smoothing))?;
            let value = loss.to_scalar::<f32>()?;
            if !value.is_finite() {
                return Err(Error::Diverged { epoch, batch: b + 1, loss: value, recovery: String::new() });
            }
            adam.config.learning_rate = phase.optimizer.learning_rate * phase.schedule.factor(adam.iterations, steps_per_epoch, phase.epochs);
            adam.step(&loss.backward()?)?;
            metrics.update(&log_probs.to_vec2()?, &batch.labels.to_vec1()?);
            progress.inc(batch.indices.len(), || format!("loss {:.4} acc {:.4}", metrics.loss(), metrics.accuracy()));
            Ok(())
        })?;
        if metrics.count() == 0 {
            return Err(self.nothing_readable("training"));
        }
        Ok((metrics, skipped))
    }

    /// The generator of batch `b`'s dropout mask in `epoch`.
    fn dropout_rng(&self, epoch: usize, b: usize) -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(mix(self.config.seed, epoch as u64, b as u64))
    }

    /// The random draws training epoch `epoch` (counted from 1 over all phases, as in the
    /// history) makes: the order of the training samples and each batch's dropout mask. They
    /// are the epoch's own when every training image is readable (an unreadable one leaves the
    /// batches) and there are no random flips (whose coins are not included).
    pub fn draws(&self, epoch: usize) -> EpochDraws {
        let order = DataLoader::new(self.dataset.train.clone(), self.pipeline(true, false), self.model.device()).order(epoch as u64);
        let keeps = order.chunks(self.config.batch_size).enumerate().map(|(b, chunk)| self.head.dropout_keeps(chunk.len(), &mut self.dropout_rng(epoch, b))).collect();
        EpochDraws { order, keeps }
    }

    /// The error of a split none of whose images could be read: no number can come of it.
    fn nothing_readable(&self, split: &str) -> Error {
        let root = &self.dataset.root;
        Error::Dataset {
            path: root.clone(),
            message: format!("none of the {split} images could be read; `food101 data check --data {}` lists them with the reasons", root.display()),
        }
    }

    /// The validation split through the current weights, with the base in inference form (all
    /// layers frozen, so BatchNorm folds into the kernels and no graph is built); the caller
    /// restores the phase's trainable layers.
    fn validate(&mut self, source: &Source) -> Result<Evaluation> {
        self.model.freeze_all();
        let units = source.start..self.model.num_units();
        let mut evaluation = Evaluation::new(self.dataset.classes.clone());
        let samples = &self.dataset.validation;
        evaluation.skipped = source.for_each(false, 0, |_, batch| {
            let logits = self.head.forward(&self.model.forward_units(&batch.images, units.clone())?)?;
            let paths = batch.indices.iter().map(|&i| samples[i].path.clone());
            evaluation.update(&log_softmax(&logits, 1)?.to_vec2()?, &batch.labels.to_vec1()?, paths);
            Ok(())
        })?;
        if evaluation.predictions.is_empty() {
            return Err(self.nothing_readable("validation"));
        }
        Ok(evaluation)
    }

    /// Evaluates the current classifier on the validation split and records it as the history's
    /// final evaluation.
    pub fn evaluate(&mut self) -> Result<Evaluation> {
        let evaluation = match self.validated.clone() {
            Some(evaluation) => evaluation,
            None => {
                let (source, _) = self.source(false)?;
                let restore = self.optimizer.as_ref().map(|(p, _)| p.clone());
                let evaluation = self.validate(&source);
                if let Some(phase) = restore {
                    self.apply(&phase);
                }
                evaluation?
            }
        };
        self.history.evaluation =
            Some(FinalEvaluation { val_loss: evaluation.loss, val_accuracy: evaluation.accuracy, val_top5: evaluation.top5 });
        Ok(evaluation)
    }

    /// Batches for the current trainable layers: cached activations when allowed (built now if
    /// missing, with the seconds that took), else the images; with `random_flip`, training
    /// images mirrored at random (from a cache of the mirrored photos when caching).
    fn source(&mut self, random_flip: bool) -> Result<(Source, f64)> {
        let train = DataLoader::new(self.dataset.train.clone(), self.pipeline(true, true), self.model.device());
        let validation = DataLoader::new(self.dataset.validation.clone(), self.pipeline(false, false), self.model.device());
        if !self.caching() {
            let flip = random_flip.then_some(Flip::Images);
            return Ok((Source { start: 0, cached: None, train, validation, flip }, 0.0));
        }
        let start = self.model.first_trainable_unit();
        let (mut built, keys) = self.caches_at(&[start], false)?;
        let (t, v) = self.opened(&keys[0]);
        let cached = Some((t, v.expect("a plain cache has its validation split")));
        let flip = if random_flip {
            let (seconds, keys) = self.caches_at(&[start], true)?;
            built += seconds;
            Some(Flip::Cached(self.opened(&keys[0]).0))
        } else {
            None
        };
        Ok((Source { start, cached, train, validation, flip }, built))
    }

    /// The cache opened under `key`: training and (unless mirrored) validation stores.
    fn opened(&self, key: &str) -> (Arc<FeatureStore>, Option<Arc<FeatureStore>>) {
        let (_, t, v) = self.cached.iter().find(|(k, ..)| k == key).expect("caches_at keeps what it opens");
        (t.clone(), v.clone())
    }

    fn caching(&self) -> bool {
        self.config.cache && self.config.augment.is_none()
    }

    /// Builds, in one pass over the images, the activation caches that `phases` will train from
    /// (pooled features for a frozen base, the input of the first trainable block for a
    /// fine-tuning phase). `fit` builds a missing cache by itself; this saves the second pass
    /// over the images when the phases are known up front, as in `food101 train`.
    pub fn prepare_caches(&mut self, phases: &[&Phase]) -> Result<()> {
        if !self.caching() {
            return Ok(());
        }
        let (mut starts, mut flipped) = (Vec::new(), Vec::new());
        for phase in phases {
            self.apply(phase);
            starts.push(self.model.first_trainable_unit());
            if phase.random_flip {
                flipped.push(self.model.first_trainable_unit());
            }
        }
        self.model.freeze_all();
        let mut result = self.caches_at(&starts, false);
        if result.is_ok() && !flipped.is_empty() {
            result = self.caches_at(&flipped, true);
        }
        if let Some(phase) = self.optimizer.as_ref().map(|(p, _)| p.clone()) {
            self.apply(&phase);
        }
        result.map(|_| ())
    }

    /// Opens the caches of the activations at the input of units `starts` (of the mirrored
    /// training photos with `mirrored`), building the missing ones together in one pass over the
    /// images; returns the seconds spent building and the caches' keys, in the order of `starts`.
    fn caches_at(&mut self, starts: &[usize], mirrored: bool) -> Result<(f64, Vec<String>)> {
        let (mut keys, mut wanted): (Vec<String>, Vec<(usize, String, serde_json::Value)>) = (Vec::new(), Vec::new());
        for &start in starts {
            let (key, describe) = features::key(&self.model, &self.dataset, &self.preprocessor, start, mirrored)?;
            if !self.cached.iter().any(|(k, ..)| *k == key) && !wanted.iter().any(|(_, k, _)| *k == key) {
                wanted.push((start, key.clone(), describe));
            }
            keys.push(key);
        }
        if wanted.is_empty() {
            return Ok((0.0, keys));
        }
        wanted.sort_by_key(|w| w.0);
        let started = Instant::now();
        let root = self.config.cache_dir.clone().unwrap_or_else(|| crate::cache::cache_dir().join("features"));
        let (train, validation) = features::build_at(&self.model, &self.dataset, &self.pipeline(false, false), &root, &wanted, mirrored, self.config.verbose)?;
        let n = self.model.num_units();
        let mut built = false;
        let mut validation = validation.into_iter();
        for ((start, key, _), t) in wanted.iter().zip(train) {
            let v = validation.next();
            let mut what = if *start == n { "pooled features".to_string() } else { format!("activations at unit {start} of {n}") };
            if mirrored {
                what += " of the mirrored training photos";
            }
            let dir = root.join(key);
            if t.reused && v.as_ref().is_none_or(|v| v.reused) {
                self.say(format!("cache: reusing {what} in {}", dir.display()));
            } else {
                built = true;
                let images = v.as_ref().map_or(t.len().to_string(), |v| format!("{} + {}", t.len(), v.len()));
                self.say(format!("cache: computed {what} for {images} images -> {}", dir.display()));
            }
            self.cached.push((key.clone(), Arc::new(t), v.map(Arc::new)));
        }
        let seconds = if built { started.elapsed().as_secs_f64() } else { 0.0 };
        if built {
            self.say(format!("cache: {seconds:.1} s for one pass over the images"));
        }
        Ok((seconds, keys))
    }

    fn save_checkpoint(&self, phase: &Phase, adam: &Adam) -> Result<()> {
        let Some(dir) = &self.config.checkpoint_dir else { return Ok(()) };
        let state = TrainingState {
            classes: self.dataset.classes.clone(),
            data: Some(checkpoint::DataIdentity::of(&self.dataset)),
            model: self.model.config().clone(),
            seed: self.config.seed,
            phase: phase.clone(),
            optimizer_iterations: adam.iterations,
            history: self.history.clone(),
        };
        checkpoint::save(dir, &state, |folder| {
            self.model.varmap().save(folder.join(checkpoint::BASE))?;
            self.head_vars.save(folder.join(checkpoint::HEAD))?;
            adam.save(&folder.join(checkpoint::OPTIMIZER))
        })?;
        Ok(())
    }

    /// Loads the checkpoint in `config.checkpoint_dir`: weights, optimizer, history. Returns
    /// false when there is none.
    pub fn restore(&mut self) -> Result<bool> {
        let Some(dir) = self.config.checkpoint_dir.clone() else { return Ok(false) };
        let Some((state, folder)) = checkpoint::load(&dir)? else { return Ok(false) };
        state.check_fits(&self.dataset, self.model.config(), self.config.seed).map_err(|message| Error::Checkpoint { path: folder.clone(), message })?;
        self.validated = None;
        checkpoint::load_vars(self.model.varmap(), &folder.join(checkpoint::BASE))?;
        checkpoint::load_vars(&self.head_vars, &folder.join(checkpoint::HEAD))?;
        self.apply(&state.phase);
        let mut adam = Adam::new(self.trainable_variables(), state.phase.optimizer)?;
        adam.load(&folder.join(checkpoint::OPTIMIZER), state.optimizer_iterations, self.model.device())?;
        self.say(format!("resumed from {}: {} epochs done, last in {}", folder.display(), state.history.epochs.len(), state.phase.name));
        self.optimizer = Some((state.phase, adam));
        self.history = state.history;
        Ok(true)
    }

    /// After a NaN/inf loss: back to the last checkpoint when there is one.
    fn recover(&mut self, epoch: usize, batch: usize, loss: f32) -> Error {
        let recovery = match self.restore() {
            Ok(true) => format!("the weights are back to the last good checkpoint (epoch {})", self.history.epochs.len()),
            Ok(false) => "no checkpoint to go back to (set checkpoint_dir); the weights are those of the failing batch".into(),
            Err(e) => format!("the last checkpoint could not be restored either: {e}"),
        };
        Error::Diverged { epoch, batch, loss, recovery }
    }

    /// Writes the trained classifier where `food101 predict --model DIR`, the demo and notebook 04
    /// load it ([`crate::export`]): the base with the head as its `predictions` layer, the labels,
    /// the preprocessor and the last evaluation.
    pub fn export(&self, dir: impl AsRef<Path>) -> Result<PathBuf> {
        let dense = self.head.dense();
        let bias = dense.bias().expect("the head has a bias");
        let classifier = self.model.with_classifier(dense.weight(), bias)?;
        export::export(&classifier, &self.dataset.classes, self.preprocessor, self.history.evaluation.clone(), dir.as_ref())
    }
}

/// The mean cross-entropy of `log_probs` `[B, K]` against `labels`, with the target smoothed by
/// `smoothing` (0: plain): `-(1-s) log p[y] - (s/K) sum_k log p[k]`, as Keras'
/// `CategoricalCrossentropy(label_smoothing=s)`.
pub fn cross_entropy(log_probs: &Tensor, labels: &Tensor, smoothing: f64) -> Result<Tensor> {
    let nll = candle_nn::loss::nll(log_probs, labels)?;
    if smoothing == 0.0 {
        return Ok(nll);
    }
    // The mean over all B x K entries is the sum over classes / K, averaged over the batch.
    Ok(((nll * (1.0 - smoothing))? - (log_probs.mean_all()? * smoothing)?)?)
}
