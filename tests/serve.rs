//! The web demo: the JSON API with good and bad uploads, a short load test, and the page driven
//! in a real headless Chromium.

mod common;

use std::io::Cursor;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use food101::candle_core::Device;
use food101::predict::ImageClassifier;
use food101::serve::{self, ServeConfig, ServerHandle};
use food101::train::Phase;
use image::{ImageFormat, RgbImage};
use serde_json::Value;

/// A small classifier trained for one epoch on the synthetic classes and exported, then served.
fn demo(config: ServeConfig) -> (ServerHandle, common::Setup) {
    let s = common::setup(food101::data::synthetic::Spec::default());
    let mut trainer = s.trainer(s.train_config("checkpoint"));
    trainer.fit(Phase::feature_extraction(1)).unwrap();
    let dir = trainer.export(s.dir.path().join("model")).unwrap();
    let classifier = ImageClassifier::from_dir(&dir, &Device::Cpu).unwrap();
    let server = serve::spawn(classifier, SocketAddr::from(([127, 0, 0, 1], 0)), config).unwrap();
    (server, s)
}

fn post(url: &str, body: Vec<u8>) -> (u16, Value) {
    let response = reqwest::blocking::Client::new().post(format!("{url}/api/predict")).body(body).send().unwrap();
    let status = response.status().as_u16();
    (status, serde_json::from_str(&response.text().unwrap()).unwrap_or(Value::Null))
}

fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    img.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

fn photo() -> RgbImage {
    RgbImage::from_fn(120, 90, |x, y| image::Rgb([(x * 2) as u8, (y * 2) as u8, 128]))
}

#[test]
fn the_api_answers_good_images_and_refuses_bad_ones_clearly() {
    let (server, s) = demo(ServeConfig { max_bytes: 200_000, max_pixels: 4_000_000, ..ServeConfig::default() });
    let health: Value = serde_json::from_str(&reqwest::blocking::get(format!("{}/health", server.url)).unwrap().text().unwrap()).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["classes"], 3);

    for format in [ImageFormat::Jpeg, ImageFormat::Png] {
        let (status, answer) = post(&server.url, encode(&photo(), format));
        assert_eq!(status, 200, "{answer}");
        let top = answer["top"].as_array().unwrap();
        assert_eq!(top.len(), 3, "top-5 of 3 classes is all 3");
        let labels: Vec<&str> = top.iter().map(|t| t["label"].as_str().unwrap()).collect();
        assert!(labels.iter().all(|l| s.dataset.classes.iter().any(|c| c == l)), "{labels:?}");
        let total: f64 = top.iter().map(|t| t["prob"].as_f64().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-3, "{total}");
        assert!(answer["ms"].as_f64().unwrap() > 0.0);
    }

    let jpeg = encode(&photo(), ImageFormat::Jpeg);
    // A decompression bomb: a valid PNG that claims 100000 x 100000 pixels in a few dozen bytes.
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        [&(data.len() as u32).to_be_bytes()[..], kind, data, &crc.sum().to_be_bytes()].concat()
    };
    let header = [&100_000u32.to_be_bytes()[..], &100_000u32.to_be_bytes(), &[8, 2, 0, 0, 0]].concat();
    let bomb = [
        &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A][..],
        &chunk(b"IHDR", &header),
        &chunk(b"IDAT", &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]),
        &chunk(b"IEND", &[]),
    ]
    .concat();
    let cases: [(&str, Vec<u8>, u16, &str); 6] = [
        ("empty body", Vec::new(), 400, "empty"),
        ("text", b"certainly not a photo".to_vec(), 415, "not an image"),
        ("truncated JPEG", jpeg[..jpeg.len() / 3].to_vec(), 422, "truncated"),
        ("JPEG missing its last bytes", jpeg[..jpeg.len() - 40].to_vec(), 422, "truncated"),
        ("decompression bomb", bomb, 413, "over the budget"),
        ("too many bytes", vec![0xFF; 300_000], 413, "over the limit of 200000 bytes"),
    ];
    for (what, body, expected, message) in cases {
        let (status, answer) = post(&server.url, body);
        assert_eq!(status, expected, "{what}: {answer}");
        assert!(answer["error"].as_str().unwrap_or_default().contains(message), "{what}: {answer}");
    }
    let (status, _) = post(&server.url, jpeg);
    assert_eq!(status, 200, "still serving after the bad requests");
}

#[test]
fn concurrent_clients_are_all_answered() {
    let (server, _s) = demo(ServeConfig::default());
    let body = encode(&photo(), ImageFormat::Jpeg);
    let (clients, window) = (6, Duration::from_secs(3));
    let started = Instant::now();
    let latencies: Vec<Vec<(u16, f64)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let (url, body) = (server.url.clone(), body.clone());
                scope.spawn(move || {
                    let client = reqwest::blocking::Client::new();
                    let mut out = Vec::new();
                    while started.elapsed() < window && out.len() < 200 {
                        let t = Instant::now();
                        let status = client.post(format!("{url}/api/predict")).body(body.clone()).send().map_or(0, |r| r.status().as_u16());
                        out.push((status, t.elapsed().as_secs_f64() * 1000.0));
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut all: Vec<(u16, f64)> = latencies.into_iter().flatten().collect();
    let failed = all.iter().filter(|(s, _)| *s != 200).count();
    all.sort_by(|a, b| a.1.total_cmp(&b.1));
    let p = |q: f64| all[((all.len() - 1) as f64 * q) as usize].1;
    let line = format!(
        "load test: {clients} clients, {} requests in {seconds:.1} s = {:.1} req/s, p50 {:.1} ms, p99 {:.1} ms, {failed} failed\n",
        all.len(),
        all.len() as f64 / seconds,
        p(0.5),
        p(0.99)
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    assert!(all.len() >= clients, "{line}");
    assert_eq!(failed, 0, "{line}");
}

/// A PNG of `width x height` at `bit_depth` and `color_type` (2: RGB, 6: RGBA), every pixel 0;
/// with `pixels: false` its data is a stub (enough for a decoder to read the header).
fn flat_png(width: u32, height: u32, bit_depth: u8, color_type: u8, pixels: bool) -> Vec<u8> {
    use std::io::Write;
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        [&(data.len() as u32).to_be_bytes()[..], kind, data, &crc.sum().to_be_bytes()].concat()
    };
    let channels = if color_type == 6 { 4 } else { 3 };
    let row = vec![0u8; 1 + width as usize * channels * bit_depth as usize / 8];
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    for _ in 0..if pixels { height } else { 1 } {
        z.write_all(&row).unwrap();
    }
    let header = [&width.to_be_bytes()[..], &height.to_be_bytes(), &[bit_depth, color_type, 0, 0, 0]].concat();
    [&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A][..], &chunk(b"IHDR", &header), &chunk(b"IDAT", &z.finish().unwrap()), &chunk(b"IEND", &[])].concat()
}

/// This process's peak resident memory (`VmHWM`), in MB.
fn peak_rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}

#[test]
fn the_demo_holds_under_a_burst_of_large_decodes_and_slow_clients() {
    use std::io::{Read, Write};
    let config = ServeConfig { max_decodes: 2, read_timeout: Duration::from_secs(2), ..ServeConfig::default() };
    let (server, _s) = demo(config);
    let addr = server.url.trim_start_matches("http://").to_string();

    // 16 bits and alpha count: 4000 x 4000 RGBA16 would take 176 MB to decode, over the budget.
    let (status, answer) = post(&server.url, flat_png(4000, 4000, 16, 6, false));
    assert_eq!(status, 413, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("8 bytes per pixel"), "{answer}");
    // Web pages may post forms and text anywhere unasked: those types are refused.
    let form = reqwest::blocking::Client::new().post(format!("{}/api/predict", server.url)).header("content-type", "text/plain").body(encode(&photo(), ImageFormat::Jpeg)).send().unwrap();
    assert_eq!(form.status().as_u16(), 415);
    // A size announced over the limit is refused before a byte of the body is read.
    let mut liar = std::net::TcpStream::connect(&addr).unwrap();
    liar.write_all(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n").unwrap();
    let mut answer = [0u8; 12];
    liar.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 413");

    // Slow clients: half a request each, then nothing.
    let slow: Vec<std::net::TcpStream> = (0..40)
        .map(|i| {
            let mut stream = std::net::TcpStream::connect(&addr).unwrap();
            let half: &[u8] = if i % 2 == 0 { b"POST /api/predict HTTP/1.1\r\nHost: x\r\n" } else { b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\nabc" };
            stream.write_all(half).unwrap();
            stream
        })
        .collect();
    // A burst of the largest images the budget allows: 6000 x 6000 RGB, 108 MB each decoded.
    let largest = flat_png(6000, 6000, 8, 2, true);
    let before = peak_rss_mb();
    let health_ms = std::thread::scope(|scope| {
        let uploads: Vec<_> = (0..8).map(|_| scope.spawn(|| post(&server.url, largest.clone()).0)).collect();
        let mut health_ms = Vec::new();
        while uploads.iter().any(|u| !u.is_finished()) {
            let t = Instant::now();
            let ok = reqwest::blocking::Client::new().get(format!("{}/health", server.url)).timeout(Duration::from_secs(5)).send().is_ok_and(|r| r.status().is_success());
            assert!(ok, "/health stopped answering during the burst");
            health_ms.push(t.elapsed().as_millis());
            std::thread::sleep(Duration::from_millis(100));
        }
        for upload in uploads {
            assert!(matches!(upload.join().unwrap(), 200 | 503), "each large upload is answered or asked to come back");
        }
        health_ms
    });
    let grown = peak_rss_mb().saturating_sub(before);
    let line = format!("burst of 8 x 108 MB decodes with 40 slow clients: peak RSS grew {grown} MB, /health answered in at most {} ms\n", health_ms.iter().max().unwrap_or(&0));
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    // Two decodes at a time (about 110 MB each, and the body): eight at once would be 900 MB.
    assert!(grown < 500, "{line}");

    // The slow clients are cut off once the read timeout has passed.
    std::thread::sleep(Duration::from_secs(3));
    for mut stream in slow {
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        let closed = loop {
            match stream.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue, // a 408 answer first, then the close
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break false,
                Err(_) => break true, // reset
            }
        };
        assert!(closed, "a slow client is still connected after the read timeout");
    }
}

/// Playwright-core (tests/e2e, `npm ci`) driving Debian's Chromium, on the ImageNet model and a real
/// photo; `.ci/run` installs both and has `../shared`.
#[test]
#[ignore = "needs chromium, `npm ci --prefix tests/e2e` and ../shared"]
fn the_page_shows_the_top5_for_an_uploaded_photo_in_a_real_browser() {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(Path::new(&chromium).exists(), "needs Chromium at {chromium} (or CHROMIUM=path)");
    assert!(e2e.join("node_modules/playwright-core").is_dir(), "needs `npm ci --prefix tests/e2e`");
    let shared = common::shared();
    let classifier = ImageClassifier::from_weights(&shared.join("weights/mobilenet_v2_1.0_224_keras_imagenet.safetensors"), None, &Device::Cpu).unwrap();
    let server = serve::spawn(classifier, SocketAddr::from(([127, 0, 0, 1], 0)), ServeConfig::default()).unwrap();
    let (url, photo, expected) = (server.url.clone(), shared.join("images/hot_dog.jpg"), "hotdog");
    let dir = tempfile::tempdir().unwrap();
    let screenshot = dir.path().join("demo.png");
    let out = std::process::Command::new("node")
        .arg(e2e.join("demo.mjs"))
        .args([&url, photo.to_str().unwrap(), screenshot.to_str().unwrap()])
        .env("CHROMIUM", &chromium)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    let bars = page["bars"].as_array().unwrap();
    assert!(!bars.is_empty() && bars.len() <= 5, "{page}");
    assert_eq!(page["shown"], true, "the photo is shown");
    assert!(bars[0]["label"].as_str().unwrap().to_lowercase().contains(expected), "{page}");
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000, "a real screenshot");
    if let Ok(keep) = std::env::var("FOOD101_SCREENSHOT") {
        std::fs::copy(&screenshot, keep).unwrap();
    }
}
