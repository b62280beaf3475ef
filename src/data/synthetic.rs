//! Small synthetic datasets, in either layout, for tests and quick notebook runs: each class has
//! its own colour and stripe pattern (learnable in a few epochs), and `broken` adds the files that
//! real datasets contain: an empty file, a corrupt JPEG, text named `.jpg`, a truncated JPEG
//! (unreadable), a PNG named `.jpg`, a greyscale JPEG (readable) and, in the Food-101 layout, an
//! entry listed in `meta/train.txt` whose file is missing.

use std::path::{Path, PathBuf};

use image::{codecs::jpeg::JpegEncoder, GrayImage, ImageFormat, RgbImage};
use rand::{Rng, SeedableRng};

use crate::error::Result;

/// Food-101 class names used for the first classes (alphabetical, as in `meta/classes.txt`).
const NAMES: [&str; 10] =
    ["apple_pie", "bibimbap", "churros", "donuts", "edamame", "falafel", "gyoza", "hummus", "lasagna", "macarons"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `images/<class>/<id>.jpg`, `meta/{classes,labels,train,test}.txt`.
    Food101,
    /// `train/<class>/*.jpg`, `validation/<class>/*.jpg`.
    ClassFolders,
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub classes: usize,
    pub train_per_class: usize,
    pub validation_per_class: usize,
    /// `(width, height)` of the generated photos.
    pub size: (u32, u32),
    pub broken: bool,
    pub seed: u64,
}

impl Default for Spec {
    fn default() -> Self {
        Self { classes: 3, train_per_class: 12, validation_per_class: 4, size: (64, 48), broken: false, seed: 0 }
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Generated {
    pub root: PathBuf,
    pub classes: Vec<String>,
    /// Files (or listed paths) a reader cannot decode, with the kind of damage.
    pub unreadable: Vec<(PathBuf, &'static str)>,
    /// Odd files that must still decode (a PNG named `.jpg`, a greyscale JPEG).
    pub odd_but_readable: Vec<PathBuf>,
}

pub fn class_name(i: usize) -> String {
    NAMES.get(i).map_or_else(|| format!("class_{i:03}"), |n| n.to_string())
}

fn photo(class: usize, classes: usize, (w, h): (u32, u32), rng: &mut impl Rng) -> RgbImage {
    let hue = class as f32 / classes.max(1) as f32;
    let base = [(hue * 6.0).sin(), (hue * 6.0 + 2.0).sin(), (hue * 6.0 + 4.0).sin()].map(|v| 127.0 + 100.0 * v);
    let period = 4 + 3 * (class % 5) as u32;
    RgbImage::from_fn(w, h, |x, y| {
        let stripe = if ((x + y * (class as u32 % 2)) / period).is_multiple_of(2) { 30.0 } else { -30.0 };
        image::Rgb(base.map(|b| (b + stripe + rng.random_range(-20.0..20.0)).clamp(0.0, 255.0) as u8))
    })
}

fn jpeg_bytes(img: &RgbImage) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, 90).encode_image(img).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(bytes)
}

/// Writes a dataset under `root` (created if needed).
pub fn generate(root: &Path, layout: Layout, spec: &Spec) -> Result<Generated> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(spec.seed);
    let classes: Vec<String> = (0..spec.classes).map(class_name).collect();
    let mut lists = [Vec::new(), Vec::new()]; // Food-101 split files: train, test
    let file = |split: usize, class: &str, id: &str| match layout {
        Layout::Food101 => root.join("images").join(class).join(format!("{id}.jpg")),
        Layout::ClassFolders => root.join(["train", "validation"][split]).join(class).join(format!("{id}.jpg")),
    };
    for (c, class) in classes.iter().enumerate() {
        for (split, count) in [spec.train_per_class, spec.validation_per_class].into_iter().enumerate() {
            for k in 0..count {
                let id = format!("{}", 100_000 + c * 1000 + split * 500 + k);
                let path = file(split, class, &id);
                std::fs::create_dir_all(path.parent().expect("a parent folder"))?;
                std::fs::write(&path, jpeg_bytes(&photo(c, spec.classes, spec.size, &mut rng))?)?;
                lists[split].push(format!("{class}/{id}"));
            }
        }
    }
    let mut generated = Generated { root: root.to_path_buf(), classes: classes.clone(), unreadable: Vec::new(), odd_but_readable: Vec::new() };
    if spec.broken {
        let class = &classes[0];
        let good = jpeg_bytes(&photo(0, spec.classes, spec.size, &mut rng))?;
        let mut corrupt = good[..4].to_vec(); // a JPEG start marker, then noise
        corrupt.extend((0..200u32).map(|i| (i * 37 % 251) as u8));
        // A JPEG cut short, as an interrupted download leaves it: decoders would fill in the
        // rest with grey, so it is refused as truncated.
        let truncated = good[..good.len() / 3].to_vec();
        let damaged: [(&str, Vec<u8>, &'static str); 4] = [
            ("broken_empty", Vec::new(), "empty file"),
            ("broken_corrupt", corrupt, "corrupt JPEG"),
            ("broken_text", b"this is not an image".to_vec(), "not an image"),
            ("broken_truncated", truncated, "truncated JPEG"),
        ];
        for (id, bytes, kind) in damaged {
            let path = file(0, class, id);
            std::fs::write(&path, bytes)?;
            generated.unreadable.push((path, kind));
            lists[0].push(format!("{class}/{id}"));
        }
        let png = file(0, class, "odd_png_named_jpg");
        photo(0, spec.classes, spec.size, &mut rng).save_with_format(&png, ImageFormat::Png).map_err(|e| std::io::Error::other(e.to_string()))?;
        let grey = file(0, class, "odd_greyscale");
        let g = GrayImage::from_fn(spec.size.0, spec.size.1, |x, _| image::Luma([(x * 4 % 256) as u8]));
        g.save_with_format(&grey, ImageFormat::Jpeg).map_err(|e| std::io::Error::other(e.to_string()))?;
        generated.odd_but_readable.extend([png, grey]);
        lists[0].push(format!("{class}/odd_png_named_jpg"));
        lists[0].push(format!("{class}/odd_greyscale"));
        if layout == Layout::Food101 {
            lists[0].push(format!("{class}/listed_but_missing"));
            generated.unreadable.push((file(0, class, "listed_but_missing"), "missing file"));
        }
    }
    if layout == Layout::Food101 {
        let meta = root.join("meta");
        std::fs::create_dir_all(&meta)?;
        std::fs::write(meta.join("classes.txt"), classes.join("\n") + "\n")?;
        let labels: Vec<String> = classes.iter().map(|c| c.replace('_', " ")).collect();
        std::fs::write(meta.join("labels.txt"), labels.join("\n") + "\n")?;
        std::fs::write(meta.join("train.txt"), lists[0].join("\n") + "\n")?;
        std::fs::write(meta.join("test.txt"), lists[1].join("\n") + "\n")?;
    }
    Ok(generated)
}

/// A JPEG of a few hundred bytes whose header claims `width x height` pixels: a real 16x16 photo
/// whose frame header (SOF0) is rewritten, a decompression bomb for the tests of the pixel budget.
pub fn jpeg_bomb(width: u16, height: u16) -> Vec<u8> {
    let mut bytes = Vec::new();
    let tile = RgbImage::from_fn(16, 16, |x, y| image::Rgb([(x * 16) as u8, (y * 16) as u8, 128]));
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90).encode_image(&tile).expect("a JPEG in memory");
    let sof = bytes.windows(2).position(|m| m == [0xFF, 0xC0]).expect("a baseline JPEG has a SOF0 marker");
    // Marker, length (2), precision (1), then height and width.
    bytes[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    bytes
}
