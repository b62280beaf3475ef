//! ImageNet weights through hf-hub: the cache layout Python's huggingface_hub writes, offline mode,
//! and a real download over HTTP from a small hub on 127.0.0.1 (the real one is unreachable here).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use food101::model::hub;

/// Serves `body` for every GET like the Hub's `resolve` endpoint does (ranges, commit and etag).
fn serve(body: Vec<u8>) -> (String, std::thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut paths = Vec::new();
        listener.set_nonblocking(false).unwrap();
        for stream in listener.incoming().take(2) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            paths.push(request.split_whitespace().nth(1).unwrap_or("").to_string());
            let mut range = (0, body.len() - 1);
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some(r) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    let (a, b) = r.trim().split_once('-').unwrap();
                    range = (a.parse().unwrap(), b.parse().unwrap_or(body.len() - 1));
                }
            }
            let part = &body[range.0..=range.1];
            let head = format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {}-{}/{}\r\n\
                 x-repo-commit: 0123456789abcdef0123456789abcdef01234567\r\netag: \"e7a6\"\r\nConnection: close\r\n\r\n",
                part.len(),
                range.0,
                range.1,
                body.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(part).unwrap();
            let _ = stream.read(&mut [0u8; 1]);
        }
        paths
    });
    (url, handle)
}

/// One test: it changes process-wide environment variables.
#[test]
fn offline_cached_and_downloaded() {
    let home = tempfile::tempdir().unwrap();
    std::env::set_var("HF_HOME", home.path());
    assert_eq!(hub::hub_cache_dir(), home.path().join("hub"));

    // Offline and not cached: a clear error that says where it looked.
    std::env::set_var("HF_HUB_OFFLINE", "1");
    let err = hub::timm_imagenet_weights().unwrap_err().to_string();
    assert!(err.contains("timm/mobilenetv2_100.ra_in1k") && err.contains("HF_HUB_OFFLINE"), "{err}");
    assert!(err.contains(&home.path().join("hub").display().to_string()), "{err}");

    // Downloaded from a hub endpoint into the cache, then found offline.
    std::env::remove_var("HF_HUB_OFFLINE");
    let body: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let (url, server) = serve(body.clone());
    std::env::set_var("HF_ENDPOINT", &url);
    let path = hub::hub_file("timm/tiny-test", "model.safetensors").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), body);
    let paths = server.join().unwrap();
    assert!(paths.iter().all(|p| p == "/timm/tiny-test/resolve/main/model.safetensors"), "{paths:?}");
    assert!(path.starts_with(home.path().join("hub/models--timm--tiny-test/snapshots")));

    std::env::set_var("HF_HUB_OFFLINE", "1");
    assert_eq!(hub::hub_file("timm/tiny-test", "model.safetensors").unwrap(), path);

    // A dead endpoint: the error names the repository and tells what to do.
    std::env::remove_var("HF_HUB_OFFLINE");
    std::env::set_var("HF_ENDPOINT", "http://127.0.0.1:9");
    let err = hub::hub_file("timm/absent", "model.safetensors").unwrap_err().to_string();
    assert!(err.contains("timm/absent") && err.contains("--weights"), "{err}");
}
