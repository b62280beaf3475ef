//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use food101::candle_core::{safetensors, Device, Tensor};
use food101::data::synthetic::{self, Layout, Spec};
use food101::data::Dataset;
use food101::model::WeightFormat;
use food101::train::{TrainConfig, Trainer};
use food101::{MobileNetV2, MobileNetV2Config};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

pub fn read_fixture(name: &str) -> std::collections::HashMap<String, Tensor> {
    safetensors::load(fixture(name), &Device::Cpu).expect("fixture")
}

/// Why a test is `#[ignore]`d: it needs `../shared`, which CI has beside the checkout and a
/// user's clone does not. `.ci/run` runs ignored tests too (`--include-ignored`).
pub const NEEDS_SHARED: &str = "needs ../shared (real ImageNet weights and photos)";

/// `../shared` beside the checkout (real weights and photos); a test that asks for it and does not
/// find it fails, so that it can never pass without having run.
pub fn shared() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    assert!(dir.join("weights").is_dir(), "{NEEDS_SHARED}: {} is missing", dir.display());
    dir
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

/// The path a request asked for, and its `Range` header.
pub type Request = (String, Option<String>);

/// A tiny HTTP file server on 127.0.0.1 for download tests: answers `requests` GETs with `body`
/// (honouring `Range: bytes=a-[b]` with 206 and Content-Range, plus the headers the Hugging Face
/// hub sends). With `cut_first` the first answer stops after that many body bytes, as a dropped
/// connection would. Returns the base URL and a handle yielding each request's path and range.
pub fn serve(body: Vec<u8>, requests: usize, cut_first: Option<usize>) -> (String, std::thread::JoinHandle<Vec<Request>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for (n, stream) in listener.incoming().take(requests).enumerate() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut range = None;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some(r) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    range = Some(r.trim().to_string());
                }
            }
            let (start, end) = match &range {
                Some(r) => {
                    let (a, b) = r.split_once('-').unwrap();
                    (a.parse().unwrap(), b.parse().unwrap_or(body.len() - 1))
                }
                None => (0, body.len() - 1),
            };
            let part = &body[start..=end];
            let status = if range.is_some() { "206 Partial Content" } else { "200 OK" };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{end}/{}\r\n\
                 x-repo-commit: 0123456789abcdef0123456789abcdef01234567\r\netag: \"e7a6\"\r\nConnection: close\r\n\r\n",
                part.len(),
                body.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            let sent = if n == 0 { cut_first.unwrap_or(part.len()).min(part.len()) } else { part.len() };
            let _ = stream.write_all(&part[..sent]);
            let _ = stream.flush();
            if sent == part.len() {
                let _ = stream.read(&mut [0u8; 1]);
            }
            seen.push((path, range));
        }
        seen
    });
    (url, handle)
}

/// A small dataset and a small random base saved to disk, so every run starts from the same weights.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub dataset: Dataset,
    pub weights: PathBuf,
    pub config: MobileNetV2Config,
}

pub fn setup(spec: Spec) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    synthetic::generate(&dir.path().join("data"), Layout::ClassFolders, &spec).unwrap();
    let dataset = Dataset::open(dir.path().join("data")).unwrap();
    let config = MobileNetV2Config::default().with_alpha(0.35).with_input_size(48, 48);
    let weights = dir.path().join("base.safetensors");
    MobileNetV2::new(config.clone(), &Device::Cpu).unwrap().save(&weights, WeightFormat::Keras).unwrap();
    redraw_kernels(&weights, spec.seed);
    Setup { dir, dataset, weights, config }
}

/// Draws a saved base's kernels again as Keras does (Glorot-uniform, fans over the receptive
/// field) from a seeded generator: candle's own draw is unseeded, and a test that trains must
/// train the same base on every run.
fn redraw_kernels(path: &Path, seed: u64) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut tensors: Vec<(String, Tensor)> = safetensors::load(path, &Device::Cpu).unwrap().into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in &mut tensors {
        let (receptive, fan_in, fan_out) = match *t.dims() {
            [kh, kw, a, b] => (kh * kw, a, b),
            [a, b] => (1, a, b),
            _ => continue,
        };
        if !name.contains("kernel") {
            continue;
        }
        let limit = (6.0 / (receptive * (fan_in + fan_out)) as f32).sqrt();
        let values: Vec<f32> = (0..t.elem_count()).map(|_| rng.random_range(-limit..limit)).collect();
        *t = Tensor::from_vec(values, t.dims(), &Device::Cpu).unwrap();
    }
    safetensors::save(&tensors.into_iter().collect(), path).unwrap();
}

impl Setup {
    pub fn model(&self) -> MobileNetV2 {
        let model = MobileNetV2::new(self.config.clone(), &Device::Cpu).unwrap();
        model.load_weights(&self.weights).unwrap();
        model
    }

    pub fn train_config(&self, name: &str) -> TrainConfig {
        TrainConfig {
            batch_size: 8,
            cache_dir: Some(self.dir.path().join("features")),
            checkpoint_dir: Some(self.dir.path().join(name)),
            verbose: false,
            ..TrainConfig::default()
        }
    }

    pub fn trainer(&self, config: TrainConfig) -> Trainer {
        Trainer::new(self.model(), self.dataset.clone(), config).unwrap()
    }
}

