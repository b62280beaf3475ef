//! What the notebooks share: their settings, read from the environment in a first cell (papermill
//! parameters do not reach the Rust kernel) and edited there in Rust for an experiment
//! (`Settings { lr2: 1e-4, ..Settings::from_env()? }.experiment("lr2 1e-4")`), and the folder
//! each experiment hands from one notebook to the next ([`Settings::work`]: checkpoint, exported
//! model, reports, MLflow journal), so each notebook can be opened on its own once the earlier
//! ones have run.
//!
//! `FOOD101_QUICK=1` makes every notebook run in minutes: five classes of real food photos
//! (`FOOD101_DATA`, else Food-101 when it is in the cache), 128-pixel images, 10 + 2 epochs (the
//! ten of phase 1 train from cached features in a second) and real
//! ImageNet weights (`FOOD101_WEIGHTS`, else timm's, downloaded once). Only where neither photos nor
//! weights can be had does quick mode fall back to synthetic pictures or a random base, and the
//! settings then say so. Without `FOOD101_QUICK`: all of Food-101 (downloaded once), timm's weights
//! and the original recipe. `FOOD101_DATA`, `FOOD101_WEIGHTS`, `FOOD101_CLASSES`,
//! `FOOD101_FRACTION`, `FOOD101_EPOCHS1` and `FOOD101_EPOCHS2` override single settings.

use std::fmt;
use std::path::PathBuf;

use candle_core::Device;

use crate::data::synthetic::{self, Layout, Spec};
use crate::data::{download, ClassSelection, Dataset};
use crate::error::Result;
use crate::model::{hub, MobileNetV2, MobileNetV2Config};
use crate::track::Tracker;
use crate::recipe::Recipe;
use crate::train::{History, Phase, Schedule, TrainConfig};

#[derive(Debug, Clone)]
pub struct Settings {
    pub quick: bool,
    pub data: PathBuf,
    /// `None` only in quick mode when no weights could be had: a randomly initialised base.
    pub weights: Option<PathBuf>,
    /// Why this run cannot mean anything about food (synthetic photos, a random base), in plain
    /// words; empty for a real run.
    pub stand_ins: Vec<String>,
    pub classes: ClassSelection,
    pub fraction: f64,
    pub image_size: usize,
    pub batch_size: usize,
    pub epochs1: usize,
    pub epochs2: usize,
    pub unfreeze_last: usize,
    /// Adam's learning rate in phase 1 and in phase 2.
    pub lr1: f64,
    pub lr2: f64,
    /// The learning-rate schedule and the label smoothing of both phases.
    pub schedule: Schedule,
    pub label_smoothing: f32,
    /// Mirror training photos at random (the cache is kept: see [`Phase::random_flip`]).
    pub random_flip: bool,
    /// The experiment's name: its own folder ([`Settings::work`]) and MLflow runs. Empty: the
    /// baseline, the original recipe.
    pub experiment: String,
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    env(key).and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

impl Settings {
    /// Reads the environment; fetches or writes the dataset and weights when needed.
    pub fn from_env() -> Result<Self> {
        let quick = env("FOOD101_QUICK").is_some_and(|v| v != "0");
        let cache = crate::cache::cache_dir();
        let mut stand_ins = Vec::new();
        let food101 = cache.join("food-101");
        let data = match env("FOOD101_DATA") {
            Some(dir) => PathBuf::from(dir),
            None if quick && food101.join("meta/classes.txt").is_file() => food101,
            None if quick => {
                stand_ins.push(format!(
                    "no food photos on disk (FOOD101_DATA is not set and {} is missing), so the photos are synthetic colour stripes. \
                     Run 01 once without FOOD101_QUICK (or `food101 data download`) to get Food-101.",
                    food101.display()
                ));
                synthetic_photos(&cache.join("synthetic-quick"))?
            }
            None => download::food101(&cache)?,
        };
        let weights = match env("FOOD101_WEIGHTS") {
            Some(path) => Some(PathBuf::from(path)),
            None if quick => match hub::timm_imagenet_weights() {
                Ok(path) => Some(path),
                Err(e) => {
                    stand_ins.push(format!("no ImageNet weights ({e}), so the base is randomly initialised: it has learnt nothing to transfer."));
                    None
                }
            },
            None => Some(hub::timm_imagenet_weights()?),
        };
        let default_classes = if quick { ClassSelection::First(5) } else { ClassSelection::All };
        Ok(Self {
            quick,
            data,
            weights,
            stand_ins,
            classes: env("FOOD101_CLASSES").map_or(default_classes.clone(), |c| c.parse().unwrap_or(default_classes)),
            fraction: env_or("FOOD101_FRACTION", 1.0),
            image_size: if quick { 128 } else { 224 },
            batch_size: 32,
            epochs1: env_or("FOOD101_EPOCHS1", 10),
            epochs2: env_or("FOOD101_EPOCHS2", if quick { 2 } else { 10 }),
            unfreeze_last: 50,
            lr1: 1e-3,
            lr2: 1e-5,
            schedule: Schedule::Constant,
            label_smoothing: 0.0,
            random_flip: false,
            experiment: String::new(),
        })
    }

    /// The learning rates, unfrozen layers, schedule and label smoothing of `recipe` (for example
    /// [`Recipe::improved`]); the epochs stay these settings' own, as quick mode trains fewer.
    pub fn with_recipe(self, recipe: &Recipe) -> Self {
        let p1 = &recipe.feature_extraction;
        let p2 = recipe.fine_tune.as_ref().unwrap_or(p1);
        Self {
            lr1: p1.optimizer.learning_rate,
            lr2: p2.optimizer.learning_rate,
            unfreeze_last: p2.unfreeze_last.unwrap_or(self.unfreeze_last),
            schedule: p2.schedule,
            label_smoothing: p2.label_smoothing,
            random_flip: p2.random_flip,
            ..self
        }
    }

    /// These settings as experiment `name`: a folder, a checkpoint and MLflow runs of its own.
    pub fn experiment(self, name: &str) -> Self {
        Self { experiment: name.to_string(), ..self }
    }

    /// `data-cache/notebooks/<mode>[-<experiment>]-<digest>`: what one notebook leaves for the next
    /// (checkpoint, exported model, reports). The digest covers every setting, so changing the
    /// data, the weights or the recipe never resumes a checkpoint made by other settings, and
    /// both notebooks of one experiment find the same folder.
    pub fn work(&self) -> PathBuf {
        use md5::{Digest, Md5};
        let what = format!(
            "{:?} {:?} {:?} {} {} {} {} {} {} {} {} {:?} {} {}",
            self.data,
            self.weights,
            self.classes,
            self.fraction,
            self.image_size,
            self.batch_size,
            self.epochs1,
            self.epochs2,
            self.unfreeze_last,
            self.lr1,
            self.lr2,
            self.schedule,
            self.label_smoothing,
            self.random_flip
        );
        let digest = Md5::digest(what.as_bytes());
        let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        let mode = if self.quick { "quick" } else { "full" };
        let name = if self.experiment.is_empty() { format!("{mode}-{hex}") } else { format!("{mode}-{}-{hex}", slug(&self.experiment)) };
        crate::cache::cache_dir().join("notebooks").join(name)
    }

    /// The experiment's name as people read it.
    pub fn name(&self) -> &str {
        if self.experiment.is_empty() {
            "baseline"
        } else {
            &self.experiment
        }
    }

    /// True when the numbers of this run say something about food: real photos, real weights.
    pub fn is_real(&self) -> bool {
        self.stand_ins.is_empty()
    }

    /// The dataset, cut to the selected classes and fraction (the same subset every time).
    pub fn dataset(&self) -> Result<Dataset> {
        Dataset::open(&self.data)?.subset(&self.classes, self.fraction, 42)
    }

    /// The ImageNet base at this input size (random when there are no weights).
    pub fn base(&self) -> Result<MobileNetV2> {
        let size = (self.image_size, self.image_size);
        match &self.weights {
            Some(path) => MobileNetV2::load_with_input_size(path, size, &Device::Cpu),
            None => {
                println!("note: the base is randomly initialised (see the settings), so accuracy stays near chance");
                Ok(MobileNetV2::new(MobileNetV2Config::default().with_input_size(size.0, size.1), &Device::Cpu)?)
            }
        }
    }

    /// Training settings: checkpoints in `work/checkpoint`, resumed when present, so that a
    /// re-run cell or the next notebook continues instead of starting over.
    pub fn train_config(&self) -> TrainConfig {
        TrainConfig { batch_size: self.batch_size, checkpoint_dir: Some(self.checkpoint_dir()), resume: true, ..TrainConfig::default() }
    }

    /// The two phases with these settings' epochs, layers and learning rate.
    pub fn recipe(&self) -> Recipe {
        let options = |phase: Phase| phase.with_schedule(self.schedule).with_label_smoothing(self.label_smoothing).with_random_flip(self.random_flip);
        Recipe {
            name: self.name().to_string(),
            feature_extraction: options(Phase::feature_extraction(self.epochs1).with_learning_rate(self.lr1)),
            fine_tune: Some(options(Phase::fine_tune(self.unfreeze_last, self.epochs2, self.lr2))),
        }
    }

    pub fn checkpoint_dir(&self) -> PathBuf {
        self.work().join("checkpoint")
    }

    pub fn model_dir(&self) -> PathBuf {
        self.work().join("model")
    }

    /// The MLflow tracker of `notebook`'s training in this experiment, with the settings as
    /// params. Re-running the cell continues the same run until the notebook finishes it.
    pub fn tracker(&self, notebook: &str) -> Result<Tracker> {
        let params = vec![
            ("experiment".to_string(), self.name().to_string()),
            ("data".to_string(), self.data.display().to_string()),
            ("classes".to_string(), format!("{:?}", self.classes)),
            ("fraction".to_string(), self.fraction.to_string()),
            ("image_size".to_string(), self.image_size.to_string()),
            ("batch_size".to_string(), self.batch_size.to_string()),
            ("epochs1".to_string(), self.epochs1.to_string()),
            ("epochs2".to_string(), self.epochs2.to_string()),
            ("unfreeze_last".to_string(), self.unfreeze_last.to_string()),
            ("lr1".to_string(), self.lr1.to_string()),
            ("lr2".to_string(), self.lr2.to_string()),
            ("schedule".to_string(), format!("{:?}", self.schedule)),
            ("label_smoothing".to_string(), self.label_smoothing.to_string()),
            ("random_flip".to_string(), self.random_flip.to_string()),
        ];
        let name = format!("{}: {}", self.name(), notebook.trim_end_matches(".ipynb"));
        let note = format!("`{notebook}`, experiment `{}`.", self.name());
        let tracker = Tracker::continue_or_start(&name, params, &note, &self.work().join("mlflow").join(slug(notebook)))?;
        tracker.from_notebook(&format!("notebooks/{notebook}"))?;
        Ok(tracker)
    }
}

/// Runs the whole recipe for `settings` (both phases, evaluation, export, reports, MLflow) in its
/// own folder, continuing where an earlier run of it stopped: a second experiment in one call.
pub fn run_experiment(settings: &Settings) -> Result<crate::train::Evaluation> {
    let config = TrainConfig { verbose: false, ..settings.train_config() };
    let mut trainer = crate::train::Trainer::new(settings.base()?, settings.dataset()?, config)?;
    let tracker = settings.tracker("experiment")?;
    trainer.add_callback(tracker.clone());
    settings.recipe().fit(&mut trainer)?;
    let evaluation = crate::recipe::finish(&mut trainer, &settings.work(), Some(&tracker), crate::recipe::REGISTERED_MODEL)?;
    tracker.finish(true)?;
    println!("{}: {:.3} of the validation photos right after {} epochs", settings.name(), evaluation.accuracy, trainer.history().epochs.len());
    Ok(evaluation)
}

/// The learner's numbers beside the original project's (~59% after phase 1, ~70.7% after phase 2,
/// on all 101 classes of Food-101 at 224 pixels).
pub fn compare_with_original(settings: &Settings, history: &History) -> crate::viz::Html {
    let after = |phase: &str| history.epochs.iter().rfind(|e| e.phase == phase).map(|e| format!("{:.1}%", 100.0 * e.val_accuracy));
    let setup = format!("{:?} of the classes, {} px, {} + {} epochs", settings.classes, settings.image_size, settings.epochs1, settings.epochs2);
    let rows = [
        ("after phase 1 (frozen base)", after("feature_extraction"), "~59%"),
        ("after phase 2 (fine-tuned)", after("fine_tune"), "~70.7%"),
    ];
    let mut table = crate::viz::table(
        &["validation accuracy", "this run", "original (101 classes, 224 px, 10 + 10 epochs)"],
        rows.into_iter().map(|(what, ours, original)| vec![what.to_string(), ours.unwrap_or_else(|| "not trained yet".into()), original.to_string()]),
    );
    table.0 += &format!("<p>This run: {}. Fewer classes are easier: compare like with like.</p>", crate::viz::escape(&setup));
    table
}

/// Lower-case letters, digits and dashes, for folder names.
fn slug(name: &str) -> String {
    let s: String = name.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    s.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-")
}

/// The experiments trained so far in this mode (quick or full): each one's name and history, from
/// the `history.json` that `recipe::finish` leaves in its folder; oldest first.
pub fn experiments(quick: bool) -> Result<Vec<(String, History)>> {
    let root = crate::cache::cache_dir().join("notebooks");
    let prefix = if quick { "quick-" } else { "full-" };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        let (dir, name) = (entry.path(), entry.file_name().to_string_lossy().into_owned());
        let history = dir.join("history.json");
        if !name.starts_with(prefix) || !history.is_file() {
            continue;
        }
        let modified = std::fs::metadata(&history)?.modified()?;
        // `quick-<digest>` is the baseline; `quick-<experiment>-<digest>` an experiment.
        let middle = name[prefix.len()..].rsplit_once('-').map_or("", |(head, _)| head);
        let label = if middle.is_empty() { "baseline".to_string() } else { middle.to_string() };
        found.push((modified, label, History::load(&history)?));
    }
    found.sort_by_key(|(modified, ..)| *modified);
    Ok(found.into_iter().map(|(_, label, history)| (label, history)).collect())
}

impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "mode:     {}", if self.quick { "quick (FOOD101_QUICK=1)" } else { "full recipe" })?;
        writeln!(f, "data:     {} ({:?}, fraction {})", self.data.display(), self.classes, self.fraction)?;
        let weights = self.weights.as_ref().map_or("none (random base)".to_string(), |w| w.display().to_string());
        writeln!(f, "weights:  {weights}")?;
        writeln!(f, "images:   {0}x{0}, batch {1}", self.image_size, self.batch_size)?;
        writeln!(f, "epochs:   {} frozen (lr {}) + {} fine-tuning (last {} layers, lr {})", self.epochs1, self.lr1, self.epochs2, self.unfreeze_last, self.lr2)?;
        if self.schedule != Schedule::Constant || self.label_smoothing > 0.0 || self.random_flip {
            writeln!(f, "options:  {:?} schedule, label smoothing {}, random flip {}", self.schedule, self.label_smoothing, self.random_flip)?;
        }
        writeln!(f, "experiment: {}", self.name())?;
        write!(f, "work dir: {}", self.work().display())?;
        if !self.is_real() {
            writeln!(f, "\n\nTHIS RUN IS A STAND-IN: its numbers mean nothing about food; it only shows that every cell runs.")?;
            for reason in &self.stand_ins {
                write!(f, "\n- {reason}")?;
            }
        }
        Ok(())
    }
}

/// A photo to predict on: a file path as it is, or an `http(s)://` URL downloaded (up to 20 MB)
/// into `data-cache/photos/`.
pub fn photo(path_or_url: &str) -> Result<PathBuf> {
    if !(path_or_url.starts_with("http://") || path_or_url.starts_with("https://")) {
        return Ok(PathBuf::from(path_or_url));
    }
    use md5::{Digest, Md5};
    let name: String = Md5::digest(path_or_url.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let path = crate::cache::cache_dir().join("photos").join(name);
    if !path.is_file() {
        let failed = |e: String| crate::Error::Io(std::io::Error::other(format!("{path_or_url}: {e}")));
        let response = reqwest::blocking::get(path_or_url).and_then(|r| r.error_for_status()).map_err(|e| failed(e.to_string()))?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(response, 20 << 20), &mut bytes)?;
        crate::cache::write_atomic(&path, &bytes)?;
    }
    Ok(path)
}

/// A small synthetic dataset (four classes of coloured stripes), written on first use.
fn synthetic_photos(dir: &std::path::Path) -> Result<PathBuf> {
    if !dir.join("validation").is_dir() {
        let spec = Spec { classes: 4, train_per_class: 24, validation_per_class: 8, size: (128, 96), ..Spec::default() };
        synthetic::generate(dir, Layout::ClassFolders, &spec)?;
    }
    Ok(dir.to_path_buf())
}

/// Where to see a tracked run: a link to it in the MLflow UI (through Colab's proxy on Colab), or,
/// without a server, the journal folder that keeps it for `food101 mlflow sync`.
pub fn mlflow_run(tracker: &crate::track::Tracker) -> crate::viz::Html {
    match tracker.run_url() {
        Some(url) => browser_link("MLflow run", &url),
        None => crate::viz::Html(format!(
            "MLflow: no server (MLFLOW_TRACKING_URI is not set); the run is kept in <code>{}</code> for <code>food101 mlflow sync</code>",
            crate::viz::escape(&tracker.journal_dir().display().to_string())
        )),
    }
}

/// A link to a server on this machine (the MLflow UI, the web demo) that opens from the notebook.
/// On Colab the runtime's `127.0.0.1` is not the browser's: there the link is rewritten to the URL
/// of Colab's port proxy (`google.colab.kernel.proxyPort`, what `serve_kernel_port_as_window` uses),
/// which only this notebook's browser tab can open. Elsewhere it is the plain URL.
pub fn browser_link(label: &str, url: &str) -> crate::viz::Html {
    use crate::viz::escape;
    let (base, path) = match url.split_once("://").and_then(|(_, rest)| rest.split_once('/')) {
        Some((_, path)) => (&url[..url.len() - path.len() - 1], format!("/{path}")),
        None => (url.trim_end_matches('/'), "/".to_string()),
    };
    let port = base.rsplit_once(':').and_then(|(host, port)| {
        let local = host.ends_with("//127.0.0.1") || host.ends_with("//localhost");
        port.parse::<u16>().ok().filter(|_| local)
    });
    let id = format!("food101-link-{}", rand::random::<u32>());
    let link = format!(r#"<a id="{id}" href="{0}" target="_blank">{1}: {0}</a>"#, escape(url), escape(label));
    let Some(port) = port else { return crate::viz::Html(link) };
    crate::viz::Html(format!(
        r#"{link}<script>
if (window.google && google.colab && google.colab.kernel && google.colab.kernel.proxyPort) {{
  google.colab.kernel.proxyPort({port}, {{cache: false}}).then(function (proxy) {{
    var a = document.getElementById("{id}");
    a.href = proxy.replace(/\/$/, "") + {path};
    a.textContent = {label} + " (through Colab's port proxy): " + a.href;
  }});
}}
</script>"#,
        path = serde_json::to_string(&path).expect("a string"),
        label = serde_json::to_string(label).expect("a string"),
    ))
}

#[cfg(test)]
mod tests {
    use super::browser_link;

    #[test]
    fn a_local_link_asks_colab_for_its_proxy_and_a_remote_one_stays_plain() {
        let local = browser_link("MLflow run", "http://127.0.0.1:5000/#/experiments/1/runs/abc").0;
        assert!(local.contains(r#"href="http://127.0.0.1:5000/#/experiments/1/runs/abc""#), "{local}");
        assert!(local.contains("google.colab.kernel.proxyPort(5000, {cache: false})"), "{local}");
        assert!(local.contains(r#""/#/experiments/1/runs/abc""#), "{local}");
        let bare = browser_link("demo", "http://localhost:7860").0;
        assert!(bare.contains("proxyPort(7860") && bare.contains(r#"+ "/";"#), "{bare}");
        let remote = browser_link("MLflow run", "https://mlflow.example.org:443/x").0;
        assert!(!remote.contains("<script>") && remote.contains("https://mlflow.example.org:443/x"), "{remote}");
    }
}
