//! MLflow tracking against a real `mlflow server` (3.17.2): `.ci/run` starts one and sets
//! MLFLOW_TRACKING_URI; the fault test starts and stops its own with scripts/mlflow-server.sh.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use food101::track::{sync, Journal, Metric, MlflowClient, Tracker};
use food101::train::{Phase, Trainer};
use serde_json::Value;

/// The server `.ci/run` started; a test that asks for it and finds none fails.
fn server() -> MlflowClient {
    MlflowClient::from_env().expect("needs an MLflow server: MLFLOW_TRACKING_URI is not set (.ci/run starts one and sets it)")
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), food101::track::client::now_ms())
}

/// Two phases (2 + 2 epochs) on the tiny synthetic setup, tracked; `between` runs after phase 1.
fn tracked_training(tracker: &Tracker, s: &common::Setup, between: impl FnOnce()) -> Trainer {
    let mut trainer = s.trainer(s.train_config("checkpoint"));
    trainer.add_callback(tracker.clone());
    trainer.fit(Phase::feature_extraction(2)).unwrap();
    between();
    trainer.fit(Phase::fine_tune(40, 2, 1e-4)).unwrap();
    trainer
}

fn experiment_runs(client: &MlflowClient, experiment: &str) -> Vec<Value> {
    let id = client.experiment_id(experiment).unwrap();
    client.search_runs(&id, "").unwrap()
}

/// The parent and its phase runs, with one point per epoch of every metric and nothing twice.
fn assert_complete(client: &MlflowClient, experiment: &str) {
    let runs = experiment_runs(client, experiment);
    assert_eq!(runs.len(), 3, "a parent and two phase runs, no duplicates: {runs:#?}");
    let name = |r: &Value| r["info"]["run_name"].as_str().unwrap_or_default().to_string();
    let parent = runs.iter().find(|r| name(r) == "tracked").expect("the parent run");
    let parent_id = parent["info"]["run_id"].as_str().unwrap();
    for (run, epochs) in runs.iter().map(|r| (r, if name(r) == "tracked" { 4 } else { 2 })) {
        let id = run["info"]["run_id"].as_str().unwrap();
        assert_eq!(run["info"]["status"], "FINISHED", "{}", name(run));
        for key in ["loss", "accuracy", "top5", "val_loss", "val_accuracy", "val_top5", "learning_rate"] {
            let points = client.metric_history(id, key).unwrap();
            assert_eq!(points.len(), epochs, "{} {key}: {points:?}", name(run));
        }
        if name(run) != "tracked" {
            let tags = run["data"]["tags"].as_array().unwrap();
            assert!(tags.iter().any(|t| t["key"] == "mlflow.parentRunId" && t["value"] == parent_id), "{} is a child of the parent", name(run));
        }
    }
    let steps: Vec<i64> = client.metric_history(parent_id, "val_accuracy").unwrap().iter().map(|p| p["step"].as_i64().unwrap()).collect();
    assert_eq!(steps, [1, 2, 3, 4], "step = epoch across both phases");
}

#[test]
#[ignore = "needs an MLflow server (MLFLOW_TRACKING_URI)"]
fn a_training_is_tracked_with_params_metrics_artifacts_and_a_registered_model() {
    let client = server();
    let s = common::setup(food101::data::synthetic::Spec::default());
    let experiment = unique("food101-test");
    let params = vec![("seed".to_string(), "42".to_string()), ("epochs1".to_string(), "2".to_string())];
    let tracker = Tracker::start_with(Some(client.clone()), &experiment, "tracked", params, "A *test* run.", Some(s.dir.path())).unwrap();
    let mut trainer = tracked_training(&tracker, &s, || {});
    trainer.evaluate().unwrap();
    let model = trainer.export(s.dir.path().join("model")).unwrap();
    tracker.log_artifact_dir("model", &model).unwrap();
    let history = s.dir.path().join("history.json");
    trainer.history().save(&history).unwrap();
    tracker.log_artifact("history.json", &history).unwrap();
    let model_name = unique("food101-test-model");
    tracker.register_model(&model_name, "model", food101::track::DEFAULT_ALIAS).unwrap();
    assert!(tracker.finish(true).unwrap(), "everything delivered");
    let delivery = Journal::open(&tracker.journal_dir()).unwrap().delivery(client.uri());
    assert!(delivery.rejected.is_empty(), "the server refused events: {:?}", delivery.rejected);

    assert_complete(&client, &experiment);
    let run_id = tracker.run_id().unwrap();
    let run = client.get_run(&run_id).unwrap();
    let params = run["data"]["params"].as_array().unwrap();
    assert!(params.iter().any(|p| p["key"] == "seed" && p["value"] == "42"), "{params:?}");
    let tags = run["data"]["tags"].as_array().unwrap();
    assert!(tags.iter().any(|t| t["key"] == "mlflow.note.content" && t["value"] == "A *test* run."));
    let artifacts = client.list_artifacts(&run_id).unwrap();
    for expected in ["history.json", "model/config.json", "model/labels.txt", "model/model.safetensors"] {
        assert!(artifacts.contains(&expected.to_string()), "{expected} not in {artifacts:?}");
    }
    let filter = format!("name='{model_name}'");
    let versions = client.get("model-versions/search", &[("filter", &filter)]).unwrap();
    let versions = versions["model_versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0]["run_id"], run_id.as_str());
    let alias = client.get("registered-models/alias", &[("name", &model_name), ("alias", food101::track::DEFAULT_ALIAS)]).unwrap();
    assert_eq!(alias["model_version"]["version"], versions[0]["version"]);
    assert!(tracker.run_url().unwrap().contains(&run_id));
}

#[test]
#[ignore = "needs an MLflow server (MLFLOW_TRACKING_URI)"]
fn a_run_recorded_without_a_server_is_synced_exactly_once() {
    let client = server();
    let s = common::setup(food101::data::synthetic::Spec::default());
    let experiment = unique("food101-offline");
    let tracker = Tracker::start_with(None, &experiment, "tracked", vec![], "offline", Some(s.dir.path())).unwrap();
    tracked_training(&tracker, &s, || {});
    assert!(!tracker.finish(true).unwrap(), "no server: nothing delivered");
    let journal = Journal::open(&tracker.journal_dir()).unwrap();
    let report = sync(&journal, &client).unwrap();
    assert_eq!(report.delivered, journal.events().len());
    assert_complete(&client, &experiment);
    // As if the sync had died before recording its progress: everything is sent again, and the
    // server still ends up with each run and metric point once.
    for entry in std::fs::read_dir(journal.dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("sync-") {
            std::fs::remove_file(path).unwrap();
        }
    }
    sync(&journal, &client).unwrap();
    assert_complete(&client, &experiment);
    assert_eq!(sync(&journal, &client).unwrap().delivered, 0, "nothing left to send");
}

#[test]
#[ignore = "needs an MLflow server (MLFLOW_TRACKING_URI)"]
fn non_finite_metrics_are_sent_as_mlflow_spells_them() {
    let client = server();
    let experiment = client.experiment_id(&unique("food101-nan")).unwrap();
    let run = client.create_run(&experiment, "nan", food101::track::client::now_ms(), &[]).unwrap();
    let metrics: Vec<Metric> = [f64::NAN, f64::INFINITY, 0.5]
        .into_iter()
        .enumerate()
        .map(|(i, value)| Metric { key: "loss".into(), value, timestamp: 1, step: i as i64 })
        .collect();
    client.log_batch(&run, &metrics, &[], &[]).unwrap();
    let points = client.metric_history(&run, "loss").unwrap();
    assert_eq!(points.len(), 3, "{points:?}");
    let err = client.get_run("no-such-run").unwrap_err();
    assert_eq!(err.error_code(), Some("RESOURCE_DOES_NOT_EXIST"), "{err}");
}

/// A server of our own (scripts/mlflow-server.sh) that the test stops and starts.
struct OwnServer {
    store: PathBuf,
}

impl OwnServer {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/mlflow-server.sh")
    }

    fn start(store: &Path, port: u16) -> Option<Self> {
        let status = Command::new("bash")
            .arg(Self::script())
            .args(["--background", "--host", "127.0.0.1", "--port", &port.to_string(), "--store"])
            .arg(store)
            .status()
            .ok()?;
        status.success().then(|| Self { store: store.to_path_buf() })
    }

    fn uri(&self) -> String {
        std::fs::read_to_string(self.store.join("server.url")).unwrap().trim().to_string()
    }

    fn stop(&self) {
        let status = Command::new("bash").arg(Self::script()).args(["--stop", "--store"]).arg(&self.store).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(Self::script()).args(["--stop", "--store"]).arg(&self.store).status();
    }
}

#[test]
#[ignore = "needs the MLflow venv of scripts/mlflow-setup.sh"]
fn a_server_that_dies_mid_run_loses_nothing() {
    // Starts and stops its own server with scripts/mlflow-server.sh, whose venv .ci/run makes.
    let s = common::setup(food101::data::synthetic::Spec::default());
    let store = s.dir.path().join("mlflow");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let own = OwnServer::start(&store, port).expect("scripts/mlflow-server.sh starts a server");
    let client = MlflowClient::new(&own.uri());
    let experiment = unique("food101-fault");
    let tracker = Tracker::start_with(Some(client.clone()), &experiment, "tracked", vec![], "fault", Some(s.dir.path())).unwrap();
    tracked_training(&tracker, &s, || {
        own.stop();
        assert!(client.get("experiments/get-by-name", &[("experiment_name", "Default")]).is_err(), "the server is down");
    });
    // Phase 2 trained with the server down; now it comes back on the same port and store.
    let _restarted = OwnServer::start(&store, port).expect("the server starts again");
    assert!(tracker.finish(true).unwrap(), "the waiting events are delivered");
    assert_complete(&client, &experiment);
}
