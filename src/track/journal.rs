//! The local record of a tracked training: every tracking event is appended to
//! `events.jsonl` before anything is sent, and [`sync`] delivers the events to a server in order,
//! remembering per server how far it got. Delivery is idempotent (runs are found again by their
//! `food101.run` tag, metric points carry fixed timestamps, a model version is looked up before
//! it is made), so an interrupted sync resumed later delivers each event exactly once.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::client::{Metric, MlflowClient, MlflowError};
use crate::error::Result;

pub type Pairs = Vec<(String, String)>;

/// One thing to tell MLflow. Runs are named by local ids until the server gives them theirs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    StartRun { run: String, parent: Option<String>, experiment: String, name: String, start_time: i64, tags: Pairs },
    Log { run: String, metrics: Vec<Metric>, params: Pairs, tags: Pairs },
    /// `file` is a copy inside the journal, so the artifact survives the run's output folder.
    Artifact { run: String, path: String, file: PathBuf },
    EndRun { run: String, status: String, end_time: i64 },
    RegisterModel { run: String, name: String, artifact_path: String, alias: String },
}

/// How far one server has been told about one journal (`sync-<server>.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Delivery {
    pub uri: String,
    /// Events `0..delivered` are on the server.
    pub delivered: usize,
    /// Local run id → the server's run id.
    pub runs: BTreeMap<String, String>,
    pub experiments: BTreeMap<String, String>,
    /// Events the server refused (4xx), with its answer; they are not retried.
    pub rejected: Vec<(usize, String)>,
}

/// The events of one tracked training, in a folder.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    events: Vec<Event>,
}

impl Journal {
    /// Opens the journal in `dir`, creating the folder if needed.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let events = match std::fs::read_to_string(dir.join("events.jsonl")) {
            // A line cut by a crash is the only one that can be unreadable: it was never acknowledged.
            Ok(text) => text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect(),
            Err(_) => Vec::new(),
        };
        Ok(Self { dir: dir.to_path_buf(), events })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Appends an event durably.
    pub fn append(&mut self, event: Event) -> Result<()> {
        let mut file = OpenOptions::new().create(true).append(true).open(self.dir.join("events.jsonl"))?;
        file.write_all(format!("{}\n", serde_json::to_string(&event)?).as_bytes())?;
        file.sync_data()?;
        self.events.push(event);
        Ok(())
    }

    /// Keeps a copy of an artifact's bytes and returns where.
    pub fn store_artifact(&self, run: &str, path: &str, bytes: &[u8]) -> Result<PathBuf> {
        let file = self.dir.join("artifacts").join(run).join(path);
        crate::cache::write_atomic(&file, bytes)?;
        Ok(file)
    }

    fn delivery_path(&self, uri: &str) -> PathBuf {
        let name: String = uri.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        self.dir.join(format!("sync-{name}.json"))
    }

    pub fn delivery(&self, uri: &str) -> Delivery {
        std::fs::read_to_string(self.delivery_path(uri))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| Delivery { uri: uri.to_string(), ..Delivery::default() })
    }

    fn save_delivery(&self, d: &Delivery) -> Result<()> {
        crate::cache::write_atomic(&self.delivery_path(&d.uri), serde_json::to_string_pretty(d)?.as_bytes())
    }

    /// The server's id of a local run, once delivered.
    pub fn server_run_id(&self, uri: &str, run: &str) -> Option<String> {
        self.delivery(uri).runs.get(run).cloned()
    }
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncReport {
    pub delivered: usize,
    pub pending: usize,
    pub rejected: usize,
}

/// Sends the journal's undelivered events, in order. Stops at the first event the server cannot
/// take now (unreachable, 5xx, wrong credentials or address: see [`MlflowError::is_refusal`]),
/// returning that error after saving the progress; events the server refuses for what they say
/// are recorded as rejected and skipped.
pub fn sync(journal: &Journal, client: &MlflowClient) -> std::result::Result<SyncReport, (SyncReport, MlflowError)> {
    let mut d = journal.delivery(client.uri());
    let mut report = SyncReport::default();
    while d.delivered < journal.events.len() {
        let index = d.delivered;
        match deliver(&journal.events[index], client, &mut d) {
            Ok(()) => report.delivered += 1,
            Err(e) if e.is_refusal() => {
                d.rejected.push((index, e.to_string()));
                report.rejected += 1;
            }
            Err(e) => {
                report.pending = journal.events.len() - index;
                let _ = journal.save_delivery(&d);
                return Err((report, e));
            }
        }
        d.delivered = index + 1;
        if let Err(e) = journal.save_delivery(&d) {
            let message = format!("cannot record sync progress in {}: {e}", journal.dir.display());
            return Err((report, MlflowError::Unreachable { uri: client.uri().into(), message }));
        }
    }
    Ok(report)
}

fn run_id(d: &Delivery, run: &str) -> std::result::Result<String, MlflowError> {
    d.runs.get(run).cloned().ok_or_else(|| MlflowError::Api {
        endpoint: "journal".into(),
        status: 400,
        error_code: "UNKNOWN_LOCAL_RUN".into(),
        message: format!("run `{run}` was never started in this journal"),
    })
}

fn deliver(event: &Event, client: &MlflowClient, d: &mut Delivery) -> std::result::Result<(), MlflowError> {
    match event {
        Event::StartRun { run, parent, experiment, name, start_time, tags } => {
            let experiment_id = match d.experiments.get(experiment) {
                Some(id) => id.clone(),
                None => client.experiment_id(experiment)?,
            };
            d.experiments.insert(experiment.clone(), experiment_id.clone());
            // A run created by an attempt whose answer was lost is found by its tag.
            let found = client.search_run_ids(&experiment_id, &format!("tags.`food101.run` = '{run}'"))?;
            let id = match found.into_iter().next() {
                Some(id) => id,
                None => {
                    let mut tags = tags.clone();
                    tags.push(("food101.run".into(), run.clone()));
                    if let Some(parent) = parent {
                        tags.push(("mlflow.parentRunId".into(), run_id(d, parent)?));
                    }
                    client.create_run(&experiment_id, name, *start_time, &tags)?
                }
            };
            d.runs.insert(run.clone(), id);
        }
        Event::Log { run, metrics, params, tags } => client.log_batch(&run_id(d, run)?, metrics, params, tags)?,
        Event::Artifact { run, path, file } => {
            let bytes = std::fs::read(file).map_err(|e| MlflowError::Api {
                endpoint: "journal".into(),
                status: 400,
                error_code: "ARTIFACT_MISSING".into(),
                message: format!("{}: {e}", file.display()),
            })?;
            client.log_artifact(&run_id(d, run)?, path, bytes)?;
        }
        Event::EndRun { run, status, end_time } => client.end_run(&run_id(d, run)?, status, *end_time)?,
        Event::RegisterModel { run, name, artifact_path, alias } => {
            client.register_model(name, &run_id(d, run)?, artifact_path, alias)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(run: &str) -> Event {
        Event::StartRun { run: run.into(), parent: None, experiment: "e".into(), name: "n".into(), start_time: 1, tags: vec![] }
    }

    #[test]
    fn events_survive_a_reopen_and_a_line_cut_by_a_crash_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        journal.append(start("a")).unwrap();
        journal.append(Event::EndRun { run: "a".into(), status: "FINISHED".into(), end_time: 2 }).unwrap();
        let mut file = OpenOptions::new().append(true).open(dir.path().join("events.jsonl")).unwrap();
        file.write_all(b"{\"event\":\"start_r").unwrap();
        let reopened = Journal::open(dir.path()).unwrap();
        assert_eq!(reopened.events(), journal.events());
    }

    /// A journal of two started runs, in a folder that lives as long as the first value.
    fn two_runs() -> (tempfile::TempDir, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        journal.append(start("a")).unwrap();
        journal.append(start("b")).unwrap();
        (dir, journal)
    }

    /// A server that answers every request with `status` and `body`, as many times as asked.
    fn answering(status: &str, body: &'static str, requests: usize) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let status = status.to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(requests) {
                let mut stream = stream.unwrap();
                let _ = stream.read(&mut [0u8; 65536]);
                let answer = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        url
    }

    #[test]
    fn expired_credentials_or_a_wrong_address_keep_every_event_for_later() {
        let (_dir, journal) = two_runs();
        let answers = [
            ("401 Unauthorized", r#"{"error_code": "UNAUTHENTICATED", "message": "expired"}"#),
            ("403 Forbidden", r#"{"error_code": "PERMISSION_DENIED", "message": "no"}"#),
            ("404 Not Found", "<html>no such page</html>"),
        ];
        for (status, body) in answers {
            let client = MlflowClient::new(&answering(status, body, 1));
            let (report, error) = sync(&journal, &client).unwrap_err();
            assert_eq!(report, SyncReport { delivered: 0, pending: 2, rejected: 0 }, "{status}: {error}");
            let delivery = journal.delivery(client.uri());
            assert_eq!((delivery.delivered, delivery.rejected.len()), (0, 0), "{status}");
        }
        // MLflow refusing the request itself is final: that event is skipped, the next one tried.
        let client = MlflowClient::new(&answering("400 Bad Request", r#"{"error_code": "INVALID_PARAMETER_VALUE", "message": "bad"}"#, 2));
        let report = sync(&journal, &client).unwrap();
        assert_eq!(report, SyncReport { delivered: 0, pending: 0, rejected: 2 });
    }

    #[test]
    fn a_server_that_does_not_answer_gets_nothing_and_every_event_stays_pending() {
        let (_dir, journal) = two_runs();
        let client = MlflowClient::new("http://127.0.0.1:9");
        let (report, error) = sync(&journal, &client).unwrap_err();
        assert_eq!(report, SyncReport { delivered: 0, pending: 2, rejected: 0 });
        assert!(matches!(error, MlflowError::Unreachable { .. }), "{error}");
        assert_eq!(journal.delivery(client.uri()).delivered, 0);
    }
}
