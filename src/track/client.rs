//! A thin blocking client for MLflow's REST API (`/api/2.0/mlflow/...`), configured like the
//! Python client: `MLFLOW_TRACKING_URI`, `MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD`
//! or `MLFLOW_TRACKING_TOKEN`. Errors carry MLflow's `error_code` and message.

use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::responses::{ArtifactList, CreatedExperiment, CreatedModelVersion, ExperimentByName, ModelVersions, RunAnswer, RunsPage};

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum MlflowError {
    /// No answer at all (refused, timed out): worth retrying later.
    #[error("MLflow at {uri} is unreachable: {message}")]
    Unreachable { uri: String, message: String },
    /// The server answered with an error.
    #[error("MLflow {endpoint}: HTTP {status} {error_code}: {message}")]
    Api { endpoint: String, status: u16, error_code: String, message: String },
}

impl MlflowError {
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Self::Api { error_code, .. } => Some(error_code),
            Self::Unreachable { .. } => None,
        }
    }

    /// Whether the server refused this request for what it says, so that sending it again would
    /// be refused again: a 4xx answer with one of MLflow's error codes. Not so: no answer, a 5xx,
    /// 429 (too many requests), 401/403 (credentials), a 404 that is not MLflow's (a wrong
    /// address): those are about the server, and the request may go through later.
    pub fn is_refusal(&self) -> bool {
        match self {
            Self::Api { status, error_code, .. } => {
                (400..500).contains(status) && !matches!(status, 401 | 403 | 429) && !error_code.is_empty()
            }
            Self::Unreachable { .. } => false,
        }
    }
}

pub type Result<T> = std::result::Result<T, MlflowError>;

/// A metric value as MLflow's JSON wants it: non-finite values as the strings `"NaN"`,
/// `"Infinity"`, `"-Infinity"` (a JSON `null` is rejected, a bare NaN stored as 0).
fn metric_value(v: f64) -> Value {
    if v.is_nan() {
        json!("NaN")
    } else if v.is_infinite() {
        json!(if v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(v)
    }
}

/// One metric point; the timestamp is fixed when it is made, so that a retried request is
/// recognised by the server as the same point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub key: String,
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub step: i64,
}

impl Metric {
    fn to_json(&self) -> Value {
        json!({ "key": self.key, "value": metric_value(self.value), "timestamp": self.timestamp, "step": self.step })
    }
}

/// Milliseconds since the Unix epoch, as MLflow stamps things.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// MLflow's limits per `runs/log-batch` request; a batch over them is rejected whole.
const MAX_METRICS: usize = 1000;
const MAX_PARAMS: usize = 100;
const MAX_TAGS: usize = 100;

#[derive(Clone)]
enum Auth {
    None,
    Basic(String, String),
    Bearer(String),
}

/// Without the secrets.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => write!(f, "None"),
            Self::Basic(user, _) => write!(f, "Basic({user}, ***)"),
            Self::Bearer(_) => write!(f, "Bearer(***)"),
        }
    }
}

/// The server at one tracking URI.
#[derive(Debug, Clone)]
pub struct MlflowClient {
    uri: String,
    http: Client,
    auth: Auth,
}

/// `http://user:password@host/path` → (`http://host/path`, the user and password): credentials
/// in a tracking URI become basic auth and never appear in what is printed or stored.
fn split_credentials(uri: &str) -> (String, Option<(String, String)>) {
    let Some((scheme, rest)) = uri.split_once("://") else { return (uri.to_string(), None) };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some((userinfo, host)) = rest[..authority_end].rsplit_once('@') else { return (uri.to_string(), None) };
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    (format!("{scheme}://{host}{}", &rest[authority_end..]), Some((user.to_string(), password.to_string())))
}

impl MlflowClient {
    /// A client for `uri` (`http://127.0.0.1:5000`), with credentials from the URI or the environment.
    pub fn new(uri: &str) -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let (uri, in_uri) = split_credentials(uri);
        let auth = match (env("MLFLOW_TRACKING_USERNAME"), env("MLFLOW_TRACKING_PASSWORD"), env("MLFLOW_TRACKING_TOKEN"), in_uri) {
            (Some(user), Some(password), _, _) => Auth::Basic(user, password),
            (_, _, Some(token), _) => Auth::Bearer(token),
            (_, _, _, Some((user, password))) => Auth::Basic(user, password),
            _ => Auth::None,
        };
        let http = Client::builder().timeout(Duration::from_secs(30)).connect_timeout(Duration::from_secs(5)).build().expect("an HTTP client");
        Self { uri: uri.trim_end_matches('/').to_string(), http, auth }
    }

    /// `MLFLOW_TRACKING_URI` when it is an http(s) address.
    pub fn from_env() -> Option<Self> {
        let uri = std::env::var("MLFLOW_TRACKING_URI").ok()?;
        (uri.starts_with("http://") || uri.starts_with("https://")).then(|| Self::new(&uri))
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    fn send(&self, endpoint: &str, request: RequestBuilder) -> Result<Response> {
        let request = match &self.auth {
            Auth::None => request,
            Auth::Basic(user, password) => request.basic_auth(user, Some(password)),
            Auth::Bearer(token) => request.bearer_auth(token),
        };
        let response = request.send().map_err(|e| MlflowError::Unreachable { uri: self.uri.clone(), message: e.to_string() })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body: Value = response.text().ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null);
        let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        Err(MlflowError::Api { endpoint: endpoint.into(), status, error_code: text("error_code"), message: text("message") })
    }

    fn decode(&self, endpoint: &str, response: Response) -> Result<Value> {
        let text = response.text().map_err(|e| MlflowError::Unreachable { uri: self.uri.clone(), message: e.to_string() })?;
        if text.trim().is_empty() {
            return Ok(Value::Null); // MLflow 3.17 answers some calls with an empty body
        }
        serde_json::from_str(&text).map_err(|e| MlflowError::Api {
            endpoint: endpoint.into(),
            status: 200,
            error_code: "BAD_RESPONSE".into(),
            message: format!("not JSON: {e}"),
        })
    }

    /// `POST /api/2.0/mlflow/<endpoint>` with a JSON body.
    pub fn post(&self, endpoint: &str, body: &Value) -> Result<Value> {
        let url = format!("{}/api/2.0/mlflow/{endpoint}", self.uri);
        let request = self.http.post(url).header("Content-Type", "application/json").body(body.to_string());
        let response = self.send(endpoint, request)?;
        self.decode(endpoint, response)
    }

    /// `GET /api/2.0/mlflow/<endpoint>?query`.
    pub fn get(&self, endpoint: &str, query: &[(&str, &str)]) -> Result<Value> {
        let url = format!("{}/api/2.0/mlflow/{endpoint}", self.uri);
        let response = self.send(endpoint, self.http.get(url).query(query))?;
        self.decode(endpoint, response)
    }

    /// [`MlflowClient::post`], the answer read as `T`.
    fn post_as<T: DeserializeOwned>(&self, endpoint: &str, body: &Value) -> Result<T> {
        typed(endpoint, self.post(endpoint, body)?)
    }

    /// [`MlflowClient::get`], the answer read as `T`.
    fn get_as<T: DeserializeOwned>(&self, endpoint: &str, query: &[(&str, &str)]) -> Result<T> {
        typed(endpoint, self.get(endpoint, query)?)
    }

    /// The experiment's id, creating it if needed.
    pub fn experiment_id(&self, name: &str) -> Result<String> {
        match self.get_as::<ExperimentByName>("experiments/get-by-name", &[("experiment_name", name)]) {
            Ok(v) => Ok(v.experiment.experiment_id),
            Err(e) if e.error_code() == Some("RESOURCE_DOES_NOT_EXIST") => {
                match self.post_as::<CreatedExperiment>("experiments/create", &json!({ "name": name })) {
                    Ok(v) => Ok(v.experiment_id),
                    // Created by someone else in between.
                    Err(e) if e.error_code() == Some("RESOURCE_ALREADY_EXISTS") => self.experiment_id(name),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// A new run; returns its `run_id`.
    pub fn create_run(&self, experiment_id: &str, name: &str, start_time: i64, tags: &[(String, String)]) -> Result<String> {
        let tags: Vec<Value> = tags.iter().map(|(k, v)| json!({ "key": k, "value": v })).collect();
        let body = json!({ "experiment_id": experiment_id, "run_name": name, "start_time": start_time, "tags": tags });
        Ok(self.post_as::<RunAnswer>("runs/create", &body)?.run.info.run_id)
    }

    pub fn get_run(&self, run_id: &str) -> Result<Value> {
        Ok(self.get("runs/get", &[("run_id", run_id)])?["run"].clone())
    }

    /// Runs of an experiment matching an MLflow filter, e.g. ``tags.`mlflow.parentRunId` = 'x'``.
    pub fn search_runs(&self, experiment_id: &str, filter: &str) -> Result<Vec<Value>> {
        let body = json!({ "experiment_ids": [experiment_id], "filter": filter, "max_results": 1000 });
        Ok(self.post("runs/search", &body)?["runs"].as_array().cloned().unwrap_or_default())
    }

    /// The ids of the runs [`MlflowClient::search_runs`] finds.
    pub fn search_run_ids(&self, experiment_id: &str, filter: &str) -> Result<Vec<String>> {
        let body = json!({ "experiment_ids": [experiment_id], "filter": filter, "max_results": 1000 });
        Ok(self.post_as::<RunsPage>("runs/search", &body)?.runs.into_iter().map(|r| r.info.run_id).collect())
    }

    /// Where the server keeps a run's artifacts (`mlflow-artifacts:/...` when it serves them).
    fn artifact_uri(&self, run_id: &str) -> Result<String> {
        Ok(self.get_as::<RunAnswer>("runs/get", &[("run_id", run_id)])?.run.info.artifact_uri)
    }

    /// Metrics, params and tags, split into requests within MLflow's limits.
    pub fn log_batch(&self, run_id: &str, metrics: &[Metric], params: &[(String, String)], tags: &[(String, String)]) -> Result<()> {
        let pairs = |items: &[(String, String)]| items.iter().map(|(k, v)| json!({ "key": k, "value": v })).collect::<Vec<_>>();
        let chunks = metrics.len().div_ceil(MAX_METRICS).max(params.len().div_ceil(MAX_PARAMS)).max(tags.len().div_ceil(MAX_TAGS));
        for i in 0..chunks {
            let part = |len: usize, max: usize| (i * max).min(len)..((i + 1) * max).min(len);
            let body = json!({
                "run_id": run_id,
                "metrics": metrics[part(metrics.len(), MAX_METRICS)].iter().map(Metric::to_json).collect::<Vec<_>>(),
                "params": pairs(&params[part(params.len(), MAX_PARAMS)]),
                "tags": pairs(&tags[part(tags.len(), MAX_TAGS)]),
            });
            self.post("runs/log-batch", &body)?;
        }
        Ok(())
    }

    /// Ends a run: `status` is FINISHED, FAILED or KILLED.
    pub fn end_run(&self, run_id: &str, status: &str, end_time: i64) -> Result<()> {
        self.post("runs/update", &json!({ "run_id": run_id, "status": status, "end_time": end_time }))?;
        Ok(())
    }

    /// Every point of one metric.
    pub fn metric_history(&self, run_id: &str, key: &str) -> Result<Vec<Value>> {
        Ok(self.get("metrics/get-history", &[("run_id", run_id), ("metric_key", key)])?["metrics"].as_array().cloned().unwrap_or_default())
    }

    /// Uploads one artifact file through the server's artifact proxy.
    pub fn log_artifact(&self, run_id: &str, path: &str, bytes: Vec<u8>) -> Result<()> {
        let uri = self.artifact_uri(run_id)?;
        let Some(root) = uri.strip_prefix("mlflow-artifacts:/") else {
            return Err(MlflowError::Api {
                endpoint: "mlflow-artifacts".into(),
                status: 0,
                error_code: "UNSUPPORTED_ARTIFACT_STORE".into(),
                message: format!("artifact URI `{uri}` is not served by the tracking server (start it with --artifacts-destination)"),
            });
        };
        let url = format!("{}/api/2.0/mlflow-artifacts/artifacts/{}/{path}", self.uri, root.trim_matches('/'));
        self.send("mlflow-artifacts", self.http.put(url).body(bytes))?;
        Ok(())
    }

    /// Paths of a run's artifacts (recursively), files only.
    pub fn list_artifacts(&self, run_id: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut folders = vec![String::new()];
        while let Some(folder) = folders.pop() {
            let list: ArtifactList = self.get_as("artifacts/list", &[("run_id", run_id), ("path", &folder)])?;
            for f in list.files {
                if f.is_dir {
                    folders.push(f.path);
                } else {
                    out.push(f.path);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Registers the run's artifact folder `artifact_path` as a new version of model `name`
    /// (created if needed) and points `alias` at it; a version already made from this run is
    /// reused, so a retry does not register twice. Returns the version.
    pub fn register_model(&self, name: &str, run_id: &str, artifact_path: &str, alias: &str) -> Result<String> {
        match self.post("registered-models/create", &json!({ "name": name })) {
            Err(e) if e.error_code() != Some("RESOURCE_ALREADY_EXISTS") => return Err(e),
            _ => {}
        }
        let filter = format!("name='{name}' and run_id='{run_id}'");
        let existing: ModelVersions = self.get_as("model-versions/search", &[("filter", &filter)])?;
        let version = match existing.model_versions.into_iter().next() {
            Some(v) => v.version,
            None => {
                let source = format!("{}/{artifact_path}", self.artifact_uri(run_id)?);
                let body = json!({ "name": name, "source": source, "run_id": run_id });
                self.post_as::<CreatedModelVersion>("model-versions/create", &body)?.model_version.version
            }
        };
        self.post("registered-models/alias", &json!({ "name": name, "alias": alias, "version": version }))?;
        Ok(version)
    }
}

/// An answer read as the type this crate relies on; one without the fields it needs is an error
/// that says which, not a default.
fn typed<T: DeserializeOwned>(endpoint: &str, answer: Value) -> Result<T> {
    serde_json::from_value(answer).map_err(|e| MlflowError::Api {
        endpoint: endpoint.into(),
        status: 200,
        error_code: "UNEXPECTED_RESPONSE".into(),
        message: format!("the answer does not have what this client needs: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::track::responses::RunAnswer;

    #[test]
    fn credentials_in_the_tracking_uri_become_basic_auth_and_leave_the_uri() {
        let client = MlflowClient::new("http://user:s3cret@127.0.0.1:5000/mlflow/");
        assert_eq!(client.uri(), "http://127.0.0.1:5000/mlflow");
        assert!(!format!("{client:?}").contains("s3cret"), "{client:?}");
        assert!(matches!(&client.auth, Auth::Basic(u, p) if u == "user" && p == "s3cret"));
        assert_eq!(split_credentials("https://host/a@b"), ("https://host/a@b".to_string(), None));
    }

    #[test]
    fn only_mlflow_refusing_the_request_itself_counts_as_a_refusal() {
        let api = |status, code: &str| MlflowError::Api { endpoint: "runs/create".into(), status, error_code: code.into(), message: String::new() };
        assert!(api(400, "INVALID_PARAMETER_VALUE").is_refusal());
        assert!(api(404, "RESOURCE_DOES_NOT_EXIST").is_refusal());
        for (status, code) in [(401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED"), (404, ""), (429, "REQUEST_LIMIT_EXCEEDED"), (503, "")] {
            assert!(!api(status, code).is_refusal(), "{status} {code}");
        }
    }

    #[test]
    fn an_answer_without_the_run_id_is_an_error_that_names_it() {
        let error = typed::<RunAnswer>("runs/create", json!({ "run": { "info": { "artifact_uri": "x" } } })).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("runs/create") && text.contains("run_id"), "{text}");
        let answer: RunAnswer = typed("runs/create", json!({ "run": { "info": { "run_id": "r1", "artifact_uri": "x" } } })).unwrap();
        assert_eq!(answer.run.info.run_id, "r1");
    }
}
