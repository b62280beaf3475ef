//! The [`Tracker`]: MLflow tracking for a training, as a trainer [`Callback`]. A parent run per
//! training with a child run per phase, the recipe as params, per-epoch metrics (`step` = epoch,
//! on the child and on the parent, whose chart is the one the experiment view shows), a note,
//! artifacts and a registered model.
//!
//! Every event goes to the local [`Journal`] first and then, when a server is configured, to the
//! server. If it is down, training goes on and the events wait; they are sent when it answers
//! again, at the end of the run, or by `food101 mlflow sync`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::client::{now_ms, Metric, MlflowClient};
use super::journal::{self, Event, Journal, Pairs};
use crate::error::Result;
use crate::train::{Callback, EpochRecord, History, Phase, PhaseRecord};

/// The alias set on each newly registered version (MLflow reserves `latest`).
pub const DEFAULT_ALIAS: &str = "champion";
/// Default experiment, unless `MLFLOW_EXPERIMENT_NAME` says otherwise.
pub const DEFAULT_EXPERIMENT: &str = "food101";
/// After a failed delivery, wait this long before trying the server again.
const RETRY_AFTER: Duration = Duration::from_secs(10);

struct State {
    journal: Journal,
    client: Option<MlflowClient>,
    experiment: String,
    parent: String,
    phase_run: Option<String>,
    open_runs: Vec<String>,
    last_failure: Option<Instant>,
    warned: bool,
    verbose: bool,
}

/// A handle on one tracked training; clones share it (one goes to the trainer as a callback).
#[derive(Clone)]
pub struct Tracker {
    state: Arc<Mutex<State>>,
}

/// Where journals live: `data-cache/mlflow-journal/<run>/`.
pub fn journal_root() -> PathBuf {
    crate::cache::cache_dir().join("mlflow-journal")
}

fn pair(k: impl Into<String>, v: impl ToString) -> (String, String) {
    (k.into(), v.to_string())
}

impl Tracker {
    /// Starts the parent run `name` with `params` and a markdown `note`. The server is
    /// `MLFLOW_TRACKING_URI` (none: local journal only); the journal goes under `journal_dir`
    /// (default [`journal_root`]).
    pub fn start(name: &str, params: Pairs, note: &str, journal_dir: Option<&Path>) -> Result<Self> {
        let experiment = std::env::var("MLFLOW_EXPERIMENT_NAME").ok().filter(|e| !e.is_empty()).unwrap_or_else(|| DEFAULT_EXPERIMENT.into());
        Self::start_with(MlflowClient::from_env(), &experiment, name, params, note, journal_dir)
    }

    /// [`Tracker::start`] with an explicit server (or none) and experiment.
    pub fn start_with(client: Option<MlflowClient>, experiment: &str, name: &str, params: Pairs, note: &str, journal_dir: Option<&Path>) -> Result<Self> {
        let experiment = experiment.to_string();
        let id = format!("{}-{}", now_ms(), std::process::id());
        let dir = journal_dir.map_or_else(|| journal_root().join(&id), |d| d.join(&id));
        let journal = Journal::open(&dir)?;
        let tracker = Self {
            state: Arc::new(Mutex::new(State {
                journal,
                client,
                experiment,
                parent: id.clone(),
                phase_run: None,
                open_runs: Vec::new(),
                last_failure: None,
                warned: false,
                verbose: true,
            })),
        };
        {
            let mut s = tracker.lock();
            match &s.client {
                Some(c) => println!("MLflow: tracking to {} (experiment `{}`), journal in {}", c.uri(), s.experiment, dir.display()),
                None => println!(
                    "MLflow: MLFLOW_TRACKING_URI is not set; this run is recorded in {}. Start a server (scripts/mlflow-server.sh) and run `food101 mlflow sync` to see it in the UI.",
                    dir.display()
                ),
            }
            let mut tags = vec![pair("mlflow.source.name", "food101"), pair("mlflow.note.content", note)];
            if let Some(commit) = git_commit() {
                tags.push(pair("mlflow.source.git.commit", commit));
            }
            s.start_run(&id, None, name, tags)?;
            let run = s.parent.clone();
            s.record(Event::Log { run, metrics: vec![], params, tags: vec![] })?;
        }
        Ok(tracker)
    }

    /// Continues the run recorded in `dir` if it is still open (not finished), else starts a new
    /// one there ([`Tracker::start`]): a notebook cell that runs again keeps tracking into the
    /// same MLflow run instead of opening another.
    pub fn continue_or_start(name: &str, params: Pairs, note: &str, dir: &Path) -> Result<Self> {
        match Self::reopen(dir)? {
            Some(tracker) => {
                println!("MLflow: continuing the open run in {}", tracker.journal_dir().display());
                Ok(tracker)
            }
            None => Self::start(name, params, note, Some(dir)),
        }
    }

    /// The last run journal in `dir`, if its parent run has not ended.
    fn reopen(dir: &Path) -> Result<Option<Self>> {
        let Ok(entries) = std::fs::read_dir(dir) else { return Ok(None) };
        let Some(last) = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).max() else { return Ok(None) };
        let journal = Journal::open(&last)?;
        let (mut open, mut started) = (Vec::new(), None);
        for event in journal.events() {
            match event {
                Event::StartRun { run, parent: None, experiment, .. } if started.is_none() => {
                    started = Some((run.clone(), experiment.clone()));
                    open.push(run.clone());
                }
                Event::StartRun { run, .. } => open.push(run.clone()),
                Event::EndRun { run, .. } => open.retain(|r| r != run),
                _ => {}
            }
        }
        let Some((parent, experiment)) = started.filter(|(parent, _)| open.contains(parent)) else { return Ok(None) };
        let state = State {
            journal,
            client: MlflowClient::from_env(),
            experiment,
            parent,
            phase_run: None,
            open_runs: open,
            last_failure: None,
            warned: false,
            verbose: true,
        };
        Ok(Some(Self { state: Arc::new(Mutex::new(state)) }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks the runs as coming from a notebook (`mlflow.source.type = NOTEBOOK`).
    pub fn from_notebook(&self, notebook: &str) -> Result<()> {
        let mut s = self.lock();
        let run = s.parent.clone();
        s.record(Event::Log { run, metrics: vec![], params: vec![], tags: vec![pair("mlflow.source.type", "NOTEBOOK"), pair("mlflow.source.name", notebook)] })
    }

    pub fn journal_dir(&self) -> PathBuf {
        self.lock().journal.dir().to_path_buf()
    }

    /// The server's id of the parent run, once it has been delivered.
    pub fn run_id(&self) -> Option<String> {
        let s = self.lock();
        let uri = s.client.as_ref()?.uri().to_string();
        s.journal.server_run_id(&uri, &s.parent)
    }

    /// The parent run's page in the MLflow UI, once delivered.
    pub fn run_url(&self) -> Option<String> {
        let s = self.lock();
        let client = s.client.as_ref()?;
        let d = s.journal.delivery(client.uri());
        let experiment = d.experiments.get(&s.experiment)?;
        Some(format!("{}/#/experiments/{experiment}/runs/{}", client.uri(), d.runs.get(&s.parent)?))
    }

    /// Logs a file as an artifact of the parent run, at `path` inside the run.
    pub fn log_artifact(&self, path: &str, file: &Path) -> Result<()> {
        let bytes = std::fs::read(file)?;
        let mut s = self.lock();
        let run = s.parent.clone();
        let stored = s.journal.store_artifact(&run, path, &bytes)?;
        s.record(Event::Artifact { run, path: path.into(), file: stored })
    }

    /// Logs every file of a folder under `prefix/`.
    pub fn log_artifact_dir(&self, prefix: &str, dir: &Path) -> Result<()> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
        files.sort();
        for file in files {
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            self.log_artifact(&format!("{prefix}/{name}"), &file)?;
        }
        Ok(())
    }

    /// Registers the parent run's artifact folder `artifact_path` as a version of model `name`,
    /// with `alias` pointing at it.
    pub fn register_model(&self, name: &str, artifact_path: &str, alias: &str) -> Result<()> {
        let mut s = self.lock();
        let run = s.parent.clone();
        s.record(Event::RegisterModel { run, name: name.into(), artifact_path: artifact_path.into(), alias: alias.into() })
    }

    /// Ends every open run (`FINISHED`, or `FAILED` when `ok` is false) and tries a last delivery.
    /// Returns whether everything reached the server.
    pub fn finish(&self, ok: bool) -> Result<bool> {
        let mut s = self.lock();
        let status = if ok { "FINISHED" } else { "FAILED" };
        while let Some(run) = s.open_runs.pop() {
            s.record(Event::EndRun { run, status: status.into(), end_time: now_ms() })?;
        }
        s.last_failure = None;
        Ok(s.deliver())
    }

    /// Delivers what is pending now; returns whether nothing is left.
    pub fn sync(&self) -> bool {
        let mut s = self.lock();
        s.last_failure = None;
        s.deliver()
    }
}

impl State {
    fn record(&mut self, event: Event) -> Result<()> {
        self.journal.append(event)?;
        if self.last_failure.is_none_or(|t| t.elapsed() >= RETRY_AFTER) {
            self.deliver();
        }
        Ok(())
    }

    fn start_run(&mut self, run: &str, parent: Option<String>, name: &str, tags: Pairs) -> Result<()> {
        let event = Event::StartRun { run: run.into(), parent, experiment: self.experiment.clone(), name: name.into(), start_time: now_ms(), tags };
        self.open_runs.push(run.into());
        self.record(event)
    }

    /// Best effort: the journal keeps whatever does not get through.
    fn deliver(&mut self) -> bool {
        let Some(client) = &self.client else { return false };
        match journal::sync(&self.journal, client) {
            Ok(report) => {
                if self.warned && self.verbose {
                    println!("MLflow: {} is back; the waiting events were delivered", client.uri());
                }
                if report.rejected > 0 {
                    let refused = self.journal.delivery(client.uri()).rejected;
                    let last = refused.last().map_or(String::new(), |(_, why)| why.clone());
                    println!("MLflow refused {} event(s), kept in {}: {last}", report.rejected, self.journal.dir().display());
                }
                self.warned = false;
                self.last_failure = None;
                report.pending == 0
            }
            Err((report, e)) => {
                if !self.warned && self.verbose {
                    println!(
                        "MLflow: {e}. Training goes on; {} events wait in {} and are sent when the server answers (or by `food101 mlflow sync`).",
                        report.pending,
                        self.journal.dir().display()
                    );
                }
                self.warned = true;
                self.last_failure = Some(Instant::now());
                false
            }
        }
    }
}

fn epoch_metrics(r: &EpochRecord) -> Vec<Metric> {
    let timestamp = now_ms();
    let values = [
        ("loss", r.loss),
        ("accuracy", r.accuracy),
        ("top5", r.top5),
        ("val_loss", r.val_loss),
        ("val_accuracy", r.val_accuracy),
        ("val_top5", r.val_top5),
        ("learning_rate", r.learning_rate),
        ("epoch_seconds", r.seconds),
    ];
    values.into_iter().map(|(key, value)| Metric { key: key.into(), value, timestamp, step: r.epoch as i64 }).collect()
}

impl Callback for Tracker {
    fn on_phase_begin(&mut self, phase: &Phase, first_epoch: usize) {
        let mut s = self.lock();
        let run = format!("{}-{}", s.parent, phase.name);
        let parent = Some(s.parent.clone());
        let params = vec![
            pair("phase", &phase.name),
            pair("epochs", phase.epochs),
            pair("first_epoch", first_epoch),
            pair("unfreeze_last", phase.unfreeze_last.map_or("none".into(), |n| n.to_string())),
            pair("optimizer", "Adam"),
            pair("learning_rate", phase.optimizer.learning_rate),
            pair("beta_1", phase.optimizer.beta_1),
            pair("beta_2", phase.optimizer.beta_2),
            pair("epsilon", phase.optimizer.epsilon),
            pair("schedule", format!("{:?}", phase.schedule)),
            pair("label_smoothing", phase.label_smoothing),
            pair("random_flip", phase.random_flip),
        ];
        // A phase that an interrupted cell had begun continues in its run.
        if !s.open_runs.contains(&run) {
            let result = s.start_run(&run, parent, &phase.name, vec![]).and_then(|()| s.record(Event::Log { run: run.clone(), metrics: vec![], params, tags: vec![] }));
            report(result);
        }
        s.phase_run = Some(run);
    }

    fn on_epoch_end(&mut self, record: &EpochRecord) {
        let mut s = self.lock();
        let metrics = epoch_metrics(record);
        let runs: Vec<String> = [Some(s.parent.clone()), s.phase_run.clone()].into_iter().flatten().collect();
        for run in runs {
            report(s.record(Event::Log { run, metrics: metrics.clone(), params: vec![], tags: vec![] }));
        }
    }

    fn on_phase_end(&mut self, phase: &PhaseRecord, _history: &History) {
        let mut s = self.lock();
        let Some(run) = s.phase_run.take() else { return };
        let timestamp = now_ms();
        let metric = |key: &str, value: f64| Metric { key: key.into(), value, timestamp, step: 0 };
        let metrics = vec![metric("phase_seconds", phase.seconds), metric("cache_seconds", phase.cache_seconds), metric("cache_saved_seconds", phase.cache_saved_seconds)];
        report(s.record(Event::Log { run: run.clone(), metrics, params: vec![], tags: vec![] }));
        s.open_runs.retain(|r| *r != run);
        report(s.record(Event::EndRun { run, status: "FINISHED".into(), end_time: now_ms() }));
    }
}

/// A callback cannot stop training; a journal that cannot be written is worth a line.
fn report(result: Result<()>) {
    if let Err(e) = result {
        eprintln!("MLflow journal: {e}");
    }
}

/// The checkout's commit, when there is a git checkout.
fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
