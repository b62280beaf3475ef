//! Downloads that survive interruptions: HTTP `Range` resume from a `.part` file, an MD5 check
//! that deletes a bad file, progress for terminals and notebooks, and `.tar.gz` extraction.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use crate::error::{Error, Result};

/// The official Food-101 archive (about 5 GB) and its MD5.
pub const FOOD101_URL: &str = "http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz";
pub const FOOD101_MD5: &str = "85eeb15f3717b99a5da872d97d918f87";

/// Progress as a bar on a terminal, or one line per 5% elsewhere (evcxr shows no `\r` bars).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: Option<u64>,
    last_step: u64,
}

impl Progress {
    fn new(total: Option<u64>, done: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total.unwrap_or(0));
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                    .expect("a valid template"),
            );
            bar.set_position(done);
            bar
        });
        Self { bar, total, last_step: 0 }
    }

    fn update(&mut self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        } else if let Some(total) = self.total.filter(|&t| t > 0) {
            let step = done * 20 / total;
            if step > self.last_step {
                self.last_step = step;
                eprintln!("downloaded {} of {} MB ({}%)", done >> 20, total >> 20, step * 5);
            }
        }
    }
}

/// MD5 of a file, as lowercase hex.
pub fn md5_file(path: &Path) -> Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn failure(url: &str, dest: &Path, cause: impl std::fmt::Display) -> Error {
    Error::Download {
        url: url.to_string(),
        message: format!(
            "{cause}. Run the command again to resume, or download it elsewhere and put it at {} by hand",
            dest.display()
        ),
    }
}

/// Downloads `url` to `dest`, resuming a previous `dest.part`, and checks `md5` when given (a
/// mismatch deletes the file). Returns at once when `dest` already exists.
pub fn download(url: &str, dest: &Path, md5: Option<&str>) -> Result<PathBuf> {
    if dest.exists() {
        return Ok(dest.to_path_buf());
    }
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let part = PathBuf::from(format!("{}.part", dest.display()));
    let have = part.metadata().map(|m| m.len()).unwrap_or(0);
    let client = reqwest::blocking::Client::builder().timeout(None).build().map_err(|e| failure(url, dest, e))?;
    let mut request = client.get(url);
    if have > 0 {
        request = request.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let mut response = request.send().map_err(|e| failure(url, dest, e))?;
    let status = response.status();
    let start = match status.as_u16() {
        206 => have,
        200 => 0,
        416 => have, // nothing left to fetch: the part file is complete
        _ => return Err(failure(url, dest, format!("the server answered {status}"))),
    };
    if status.as_u16() != 416 {
        let mut file = OpenOptions::new().create(true).write(true).append(start > 0).truncate(start == 0).open(&part)?;
        let total = response.content_length().map(|n| n + start);
        if start > 0 {
            eprintln!("resuming {url} at {} MB", start >> 20);
        }
        let mut progress = Progress::new(total, start);
        let (mut done, mut buf) = (start, vec![0u8; 1 << 20]);
        loop {
            let n = response.read(&mut buf).map_err(|e| failure(url, dest, format!("interrupted after {done} bytes: {e}")))?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n])?;
            done += n as u64;
            progress.update(done);
        }
        file.flush()?;
        if total.is_some_and(|t| done < t) {
            return Err(failure(url, dest, format!("the connection closed after {done} of {} bytes", total.unwrap_or(0))));
        }
    }
    if let Some(expected) = md5 {
        let got = md5_file(&part)?;
        if got != expected {
            std::fs::remove_file(&part)?;
            return Err(failure(url, dest, format!("MD5 mismatch (expected {expected}, got {got}): the file was deleted")));
        }
    }
    std::fs::rename(&part, dest)?;
    Ok(dest.to_path_buf())
}

/// Unpacks a `.tar.gz` into `into`; a half-finished extraction never looks finished, because
/// it happens in a sibling folder that is renamed at the end.
pub fn extract_tar_gz(archive: &Path, into: &Path) -> Result<()> {
    let staging = into.with_extension("extracting");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    std::fs::create_dir_all(&staging)?;
    eprintln!("extracting {} ...", archive.display());
    let gz = flate2::read::GzDecoder::new(File::open(archive)?);
    tar::Archive::new(gz).unpack(&staging).map_err(|e| Error::Download {
        url: archive.display().to_string(),
        message: format!("cannot extract: {e}; delete the archive to download it again"),
    })?;
    std::fs::rename(&staging, into)?;
    Ok(())
}

/// Food-101 in `dir/food-101`: downloaded (resumably, MD5-checked) and extracted unless present.
pub fn food101(dir: &Path) -> Result<PathBuf> {
    fetch_dataset(FOOD101_URL, Some(FOOD101_MD5), dir, "food-101")
}

/// A dataset archive whose top folder is `name`, fetched into `dir/name`.
pub fn fetch_dataset(url: &str, md5: Option<&str>, dir: &Path, name: &str) -> Result<PathBuf> {
    let target = dir.join(name);
    if target.join("meta/classes.txt").is_file() || target.join("train").is_dir() {
        return Ok(target);
    }
    let archive = download(url, &dir.join(format!("{name}.tar.gz")), md5)?;
    let unpacked = dir.join(format!("{name}.unpacked"));
    extract_tar_gz(&archive, &unpacked)?;
    let inner = unpacked.join(name);
    std::fs::rename(if inner.is_dir() { &inner } else { &unpacked }, &target)?;
    let _ = std::fs::remove_dir_all(&unpacked);
    Ok(target)
}
