//! `food101 serve`: the web demo, the Rust counterpart of the original's Gradio app. One page to
//! pick, drop or choose an example photo and see the top-5 classes as bars, a JSON API
//! (`POST /api/predict` with the image bytes) and `GET /health`. The model loads once; requests
//! are decoded concurrently and predicted in small batches ([`batcher`]); bad uploads get a 4xx
//! with a JSON error and the server keeps serving ([`upload`]).
//!
//! Its memory stays bounded under abuse: at most `max_uploads` bodies are read at once and
//! `max_decodes` of them decoded (others wait, then get 503), a size over the limit is refused
//! from `Content-Length` before reading, headers and body must each arrive within
//! `read_timeout`, and at most `max_connections` connections are open at once.

mod batcher;
mod upload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
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
    /// Upload bodies read at once, each up to `max_bytes`.
    pub max_uploads: usize,
    /// Uploads decoded at once (default: one per core), each within the budget of `max_pixels`.
    pub max_decodes: usize,
    /// How long an upload waits for a slot to be read or decoded before the answer is 503.
    pub queue_wait: Duration,
    /// The time allowed for a request's headers, and for its body.
    pub read_timeout: Duration,
    /// Connections open at once; more are closed as they come.
    pub max_connections: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            max_bytes: 10 << 20,
            max_pixels: crate::data::MAX_PIXELS,
            max_batch: 8,
            batch_wait: Duration::from_millis(5),
            examples: Vec::new(),
            top: 5,
            max_uploads: 16,
            max_decodes: std::thread::available_parallelism().map_or(2, |n| n.get()),
            queue_wait: Duration::from_secs(10),
            read_timeout: Duration::from_secs(10),
            max_connections: 256,
        }
    }
}

struct AppState {
    batcher: Batcher,
    uploads: Arc<tokio::sync::Semaphore>,
    decodes: Arc<tokio::sync::Semaphore>,
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
    let uploads = Arc::new(tokio::sync::Semaphore::new(config.max_uploads.max(1)));
    let decodes = Arc::new(tokio::sync::Semaphore::new(config.max_decodes.max(1)));
    let state = Arc::new(AppState { batcher, uploads, decodes, preprocessor, config, classes, model });
    Router::new()
        .route("/", get(page))
        .route("/health", get(health))
        .route("/api/predict", post(predict))
        .route("/examples/{index}", get(example))
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

/// The upload's size from its `Content-Length`, when it says.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

async fn predict(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    if let Err(message) = upload::check_content_type(parts.headers.get(header::CONTENT_TYPE)) {
        return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, &message);
    }
    let limit = state.config.max_bytes;
    let too_large = || error(StatusCode::PAYLOAD_TOO_LARGE, &format!("the upload is over the limit of {limit} bytes"));
    if content_length(&parts.headers).is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    // A slot to read the body in, then one to decode it in: a burst waits holding no memory.
    let wait = state.config.queue_wait;
    let slot = |slots: Arc<tokio::sync::Semaphore>| async move { tokio::time::timeout(wait, slots.acquire_owned()).await.ok().and_then(Result::ok) };
    let busy = || ([(header::RETRY_AFTER, "2")], error(StatusCode::SERVICE_UNAVAILABLE, "busy with other uploads; try again shortly")).into_response();
    let Some(reading) = slot(state.uploads.clone()).await else { return busy() };
    let body = match tokio::time::timeout(state.config.read_timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) if e.to_string().contains("length limit") => return too_large(),
        Ok(Err(e)) => return error(StatusCode::BAD_REQUEST, &format!("the upload could not be read: {e}")),
        Err(_) => return error(StatusCode::REQUEST_TIMEOUT, &format!("the upload did not arrive within {:?}", state.config.read_timeout)),
    };
    let Some(decoding) = slot(state.decodes.clone()).await else { return busy() };
    let (max_pixels, preprocessor) = (state.config.max_pixels, state.preprocessor);
    let decoded = tokio::task::spawn_blocking(move || {
        let mut input = vec![0f32; preprocessor.input_len()];
        preprocessor.bytes_into(&body, max_pixels, &mut input).map(|()| input)
    })
    .await;
    drop((decoding, reading));
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

/// Serves `app` on `listener` until `shutdown`: HTTP/1 with a header read timeout (which
/// `axum::serve` does not set), at most `max_connections` connections at once.
async fn serve_connections(listener: tokio::net::TcpListener, app: Router, read_timeout: Duration, max_connections: usize, shutdown: impl std::future::Future<Output = ()>) {
    let connections = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors, or a connection reset before it was accepted.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else { continue }; // dropped: closed
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(read_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = connection.await;
        });
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
    let (read_timeout, max_connections) = (config.read_timeout, config.max_connections);
    let app = router(classifier, config);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
            serve_connections(listener, app, read_timeout, max_connections, async move {
                let _ = rx.await;
            })
            .await;
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
        let (read_timeout, max_connections) = (config.read_timeout, config.max_connections);
        serve_connections(listener, router(classifier, config), read_timeout, max_connections, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
        Ok::<(), crate::Error>(())
    })
}
