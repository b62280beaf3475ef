//! `food101 serve`: the web demo, the Rust counterpart of the original's Gradio app. One page to
//! pick, drop or choose an example photo and see the top-5 classes as bars, a JSON API
//! (`POST /api/predict` with the image bytes) and `GET /health`. The model loads once; requests
//! are decoded concurrently and predicted in small batches ([`batcher`]); bad uploads get a 4xx
//! with a JSON error and the server keeps serving ([`upload`]).

mod batcher;
mod upload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::error::Result;
use crate::predict::ImageClassifier;
use batcher::Batcher;

/// Limits and behaviour of the demo server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Largest accepted upload, in bytes (default 10 MB).
    pub max_bytes: usize,
    /// Largest accepted image, in pixels, checked from the header before decoding (decompression bombs).
    pub max_pixels: u64,
    /// Most images predicted together, and how long the first waits for company.
    pub max_batch: usize,
    pub batch_wait: Duration,
    /// Example photos offered on the page.
    pub examples: Vec<PathBuf>,
    /// Classes in each answer.
    pub top: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self { max_bytes: 10 << 20, max_pixels: crate::data::MAX_PIXELS, max_batch: 8, batch_wait: Duration::from_millis(5), examples: Vec::new(), top: 5 }
    }
}

struct AppState {
    batcher: Batcher,
    preprocessor: crate::data::Preprocessor,
    config: ServeConfig,
    classes: usize,
    model: String,
}

/// The demo's routes over a loaded classifier.
pub fn router(classifier: ImageClassifier, config: ServeConfig) -> Router {
    let classes = classifier.labels.len();
    let model = classifier.model.name();
    let preprocessor = classifier.preprocessor;
    let batcher = Batcher::start(Arc::new(classifier), config.max_batch, config.batch_wait);
    let limit = config.max_bytes;
    let state = Arc::new(AppState { batcher, preprocessor, config, classes, model });
    Router::new()
        .route("/", get(page))
        .route("/health", get(health))
        .route("/api/predict", post(predict))
        .route("/examples/{index}", get(example))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

async fn page(State(state): State<Arc<AppState>>) -> Html<String> {
    let examples: Vec<String> = state.config.examples.iter().map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()).collect();
    Html(include_str!("page.html").replace("__EXAMPLES__", &serde_json::to_string(&examples).unwrap_or_else(|_| "[]".into())))
}

async fn health(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "model": state.model, "classes": state.classes }))
}

async fn example(State(state): State<Arc<AppState>>, Path(index): Path<usize>) -> Response {
    let Some(path) = state.config.examples.get(index) else { return error(StatusCode::NOT_FOUND, "no such example") };
    match tokio::fs::read(path).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, &format!("example unreadable: {e}")),
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn predict(State(state): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Response {
    let started = Instant::now();
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(rejection.status(), &format!("the upload is over the limit of {} bytes", state.config.max_bytes))
        }
        Err(rejection) => return error(rejection.status(), &rejection.body_text()),
    };
    let (max_pixels, preprocessor) = (state.config.max_pixels, state.preprocessor);
    let decoded = tokio::task::spawn_blocking(move || {
        let mut input = vec![0f32; preprocessor.input_len()];
        preprocessor.bytes_into(&body, max_pixels, &mut input).map(|()| input)
    })
    .await;
    let input = match decoded {
        Ok(Ok(input)) => input,
        Ok(Err(e)) => return error(upload::status(&e), &e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &format!("decoder failed: {e}")),
    };
    match state.batcher.predict(input, state.config.top).await {
        Ok(top) => {
            let top: Vec<_> = top.into_iter().map(|p| json!({ "label": p.label, "prob": p.prob, "index": p.index })).collect();
            Json(json!({ "top": top, "ms": started.elapsed().as_secs_f64() * 1000.0 })).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

/// A server running on its own thread, for tests and notebook cells; it stops when dropped.
pub struct ServerHandle {
    pub url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves `classifier` on `addr` (port 0: any free port) in the background.
pub fn spawn(classifier: ImageClassifier, addr: SocketAddr, config: ServeConfig) -> Result<ServerHandle> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = router(classifier, config);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
            let _ = axum::serve(listener, app).with_graceful_shutdown(async move { let _ = rx.await; }).await;
        });
    });
    Ok(ServerHandle { url, shutdown: Some(tx), thread: Some(thread) })
}

/// Serves in the foreground until Ctrl-C (the `food101 serve` command).
pub fn run(classifier: ImageClassifier, addr: SocketAddr, config: ServeConfig) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        println!("food101 demo on http://{} (Ctrl-C stops it)", listener.local_addr()?);
        axum::serve(listener, router(classifier, config))
            .with_graceful_shutdown(async { let _ = tokio::signal::ctrl_c().await; })
            .await?;
        Ok::<(), crate::Error>(())
    })
}
