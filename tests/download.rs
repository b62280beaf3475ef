//! Dataset downloads against a small HTTP server on 127.0.0.1: resume after an interruption with
//! a Range request, MD5 check (a bad file is deleted), extraction, and errors that say what to do.

mod common;

use food101::data::download::{download, fetch_dataset, md5_file};
use food101::data::Dataset;

/// A `.tar.gz` of a class-folder dataset with top folder `tiny/`.
fn archive() -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    let src = tempfile::tempdir().unwrap();
    food101::data::synthetic::generate(src.path(), food101::data::synthetic::Layout::ClassFolders, &Default::default()).unwrap();
    builder.append_dir_all("tiny", src.path()).unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

#[test]
fn an_interrupted_download_resumes_with_a_range_request_and_is_verified() {
    let body = archive();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("tiny.tar.gz");
    let (url, server) = common::serve(body.clone(), 2, Some(body.len() / 3));
    let err = download(&url, &dest, None).unwrap_err().to_string();
    assert!(err.contains(&url) && err.contains("resume") && err.contains("by hand"), "{err}");
    assert!(!dest.exists());
    let expected_md5 = {
        let tmp = dir.path().join("whole");
        std::fs::write(&tmp, &body).unwrap();
        md5_file(&tmp).unwrap()
    };
    download(&url, &dest, Some(&expected_md5)).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    let requests = server.join().unwrap();
    assert_eq!(requests[0].1, None);
    let resumed_at: usize = requests[1].1.as_deref().unwrap().trim_end_matches('-').parse().unwrap();
    assert!(resumed_at > 0 && resumed_at <= body.len() / 3, "resumed at {resumed_at}");
}

#[test]
fn an_md5_mismatch_deletes_the_file() {
    let body = archive();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("tiny.tar.gz");
    let (url, _server) = common::serve(body, 1, None);
    let err = download(&url, &dest, Some("00000000000000000000000000000000")).unwrap_err().to_string();
    assert!(err.contains("MD5 mismatch") && err.contains("deleted"), "{err}");
    assert!(!dest.exists());
    assert!(!dir.path().join("tiny.tar.gz.part").exists());
}

#[test]
fn a_dataset_archive_is_fetched_extracted_and_opened() {
    let (url, server) = common::serve(archive(), 1, None);
    let dir = tempfile::tempdir().unwrap();
    let root = fetch_dataset(&url, None, dir.path(), "tiny").unwrap();
    assert_eq!(root, dir.path().join("tiny"));
    let ds = Dataset::open(&root).unwrap();
    assert_eq!((ds.classes.len(), ds.train.len(), ds.validation.len()), (3, 36, 12));
    server.join().unwrap();
    // Present now: no network needed the second time.
    assert_eq!(fetch_dataset("http://127.0.0.1:9/unreachable", None, dir.path(), "tiny").unwrap(), root);
}

#[test]
fn an_unreachable_server_names_the_url_and_the_manual_way() {
    let dir = tempfile::tempdir().unwrap();
    let err = download("http://127.0.0.1:9/food-101.tar.gz", &dir.path().join("f.tar.gz"), None).unwrap_err().to_string();
    assert!(err.contains("http://127.0.0.1:9/food-101.tar.gz") && err.contains("by hand"), "{err}");
}
