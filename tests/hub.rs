//! ImageNet weights through hf-hub: the cache layout Python's huggingface_hub writes, offline mode,
//! and a real download over HTTP from a small hub on 127.0.0.1 (the real one is unreachable here).

mod common;

use food101::model::hub;

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
    let (url, server) = common::serve(body.clone(), 2, None);
    std::env::set_var("HF_ENDPOINT", &url);
    let path = hub::hub_file("timm/tiny-test", "model.safetensors").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), body);
    let paths = server.join().unwrap();
    assert!(paths.iter().all(|(p, _)| p == "/timm/tiny-test/resolve/main/model.safetensors"), "{paths:?}");
    assert!(path.starts_with(home.path().join("hub/models--timm--tiny-test/snapshots")));

    std::env::set_var("HF_HUB_OFFLINE", "1");
    assert_eq!(hub::hub_file("timm/tiny-test", "model.safetensors").unwrap(), path);

    // A dead endpoint: the error names the repository and tells what to do.
    std::env::remove_var("HF_HUB_OFFLINE");
    std::env::set_var("HF_ENDPOINT", "http://127.0.0.1:9");
    let err = hub::hub_file("timm/absent", "model.safetensors").unwrap_err().to_string();
    assert!(err.contains("timm/absent") && err.contains("--weights"), "{err}");
}
