//! Pictures made of photos and numbers, written as plain SVG: a grid of labelled images, a
//! prediction card (the photo and its top-k as bars, like Gradio's Image → Label) and a confusion
//! matrix. Photos are embedded as PNG data URIs, so the SVG stands alone.

use base64::Engine;
use image::{codecs::png::PngEncoder, ImageEncoder, RgbImage};

use super::{escape, Svg};
use crate::data::resize_bilinear;
use crate::error::Result;
use crate::predict::Prediction;
use crate::train::Evaluation;

/// The image fitted into a `size`-pixel square thumbnail, as a data URI.
fn thumbnail(img: &RgbImage, size: u32) -> Result<(String, u32, u32)> {
    let scale = size as f32 / img.width().max(img.height()) as f32;
    let (w, h) = (((img.width() as f32 * scale).round() as u32).max(1), ((img.height() as f32 * scale).round() as u32).max(1));
    let small = resize_bilinear(img, h as usize, w as usize);
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(small.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok((format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(png)), w, h))
}

/// Images in rows of `columns`, each with its caption underneath.
pub fn image_grid(images: &[(RgbImage, String)], columns: usize) -> Result<Svg> {
    grid(images.iter().map(|(img, caption)| (img, caption.as_str(), false)), columns)
}

/// Validation photos with their true and predicted classes, as in the TensorFlow tutorial's 3x3
/// grid: each `(photo, true class, predicted class)`; the wrong ones framed and captioned in red.
pub fn prediction_grid(photos: &[(RgbImage, String, String)], columns: usize) -> Result<Svg> {
    let captions: Vec<String> = photos
        .iter()
        .map(|(_, truth, predicted)| if truth == predicted { format!("✓ {predicted}") } else { format!("✗ {predicted} (is {truth})") })
        .collect();
    grid(photos.iter().zip(&captions).map(|((img, truth, predicted), caption)| (img, caption.as_str(), truth != predicted)), columns)
}

/// The grid behind [`image_grid`] and [`prediction_grid`]: `(image, caption, marked)`.
fn grid<'a>(items: impl IntoIterator<Item = (&'a RgbImage, &'a str, bool)>, columns: usize) -> Result<Svg> {
    const CELL: u32 = 150;
    let columns = columns.max(1);
    let mut body = String::new();
    let mut count = 0;
    for (i, (img, caption, marked)) in items.into_iter().enumerate() {
        let (uri, w, h) = thumbnail(img, CELL)?;
        let (x, y) = ((i % columns) as u32 * (CELL + 10) + 5, (i / columns) as u32 * (CELL + 34) + 5);
        let (ix, iy) = (x + (CELL - w) / 2, y + (CELL - h) / 2);
        body += &format!(r#"<image x="{ix}" y="{iy}" width="{w}" height="{h}" href="{uri}"/>"#);
        let color = if marked {
            body += &format!(r##"<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#d62728" stroke-width="4"/>"##, ix, iy, w, h);
            "#d62728"
        } else {
            "black"
        };
        body += &format!(r#"<text x="{}" y="{}" text-anchor="middle" fill="{color}">{}</text>"#, x + CELL / 2, y + CELL + 18, escape(caption));
        count += 1;
    }
    let rows = (count as usize).div_ceil(columns) as u32;
    let (width, height) = (columns as u32 * (CELL + 10), rows * (CELL + 34));
    Ok(Svg(format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="13"><rect width="100%" height="100%" fill="white"/>{body}</svg>"#
    )))
}

/// `photo` with a heat map laid over it, red where `map` (a `[h, w]` grid of scores, such as a
/// class activation map) is highest: each score covers its share of the photo.
pub fn heatmap_overlay(photo: &RgbImage, map: &[f32], (h, w): (usize, usize)) -> RgbImage {
    let (lo, hi) = map.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let span = (hi - lo).max(1e-6);
    // Blue (low) through yellow to red (high), one pixel per score, then smoothly enlarged.
    let small = RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let t = (map[y as usize * w + x as usize] - lo) / span;
        let (r, g, b) = if t < 0.5 { (2.0 * t, 2.0 * t, 1.0 - 2.0 * t) } else { (1.0, 2.0 - 2.0 * t, 0.0) };
        image::Rgb([(r * 255.0) as u8, (g * 255.0) as u8, (b * 255.0) as u8])
    });
    let heat = image::imageops::resize(&small, photo.width(), photo.height(), image::imageops::FilterType::Triangle);
    RgbImage::from_fn(photo.width(), photo.height(), |x, y| {
        let (p, q) = (photo.get_pixel(x, y).0, heat.get_pixel(x, y).0);
        image::Rgb(std::array::from_fn(|c| (0.55 * p[c] as f32 + 0.45 * q[c] as f32) as u8))
    })
}

/// The photo with its top classes as horizontal bars and percentages.
pub fn prediction_card(img: &RgbImage, top: &[Prediction]) -> Result<Svg> {
    const SIZE: u32 = 224;
    let (uri, w, h) = thumbnail(img, SIZE)?;
    let mut body = format!(r#"<image x="{}" y="{}" width="{w}" height="{h}" href="{uri}"/>"#, 10 + (SIZE - w) / 2, 10 + (SIZE - h) / 2);
    for (i, p) in top.iter().enumerate() {
        let y = 20 + i as u32 * 42;
        let bar = (p.prob.clamp(0.0, 1.0) * 300.0).round() as u32;
        body += &format!(
            r##"<text x="250" y="{}">{}</text><rect x="250" y="{}" width="300" height="14" fill="#eee"/><rect x="250" y="{}" width="{bar}" height="14" fill="{}"/><text x="558" y="{}">{:.1}%</text>"##,
            y + 4,
            escape(&p.label),
            y + 10,
            y + 10,
            if i == 0 { "#f28e2b" } else { "#4e79a7" },
            y + 22,
            100.0 * p.prob
        );
    }
    Ok(Svg(format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="620" height="{}" font-family="sans-serif" font-size="14"><rect width="100%" height="100%" fill="white"/>{body}</svg>"#,
        (SIZE + 20).max(30 + 42 * top.len() as u32)
    )))
}

/// The classes a readable confusion matrix shows: all of them when there are at most
/// `MATRIX_CLASSES`, else the ones most involved in mistakes (as true or predicted class).
const MATRIX_CLASSES: usize = 20;

/// Rows: true class, columns: predicted, shaded by the share of the row, with class names. For
/// many classes (101 in Food-101) the rows and columns of the 20 classes most involved in mistakes.
pub fn confusion_matrix(evaluation: &Evaluation) -> Svg {
    let all = evaluation.classes.len();
    let mut shown: Vec<usize> = (0..all).collect();
    if all > MATRIX_CLASSES {
        let errors = |i: usize| -> usize {
            let row: usize = evaluation.confusion[i].iter().enumerate().filter(|&(j, _)| j != i).map(|(_, c)| c).sum();
            let column: usize = evaluation.confusion.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, r)| r[i]).sum();
            row + column
        };
        shown.sort_by_key(|&i| (std::cmp::Reverse(errors(i)), i));
        shown.truncate(MATRIX_CLASSES);
        shown.sort_unstable();
    }
    let n = shown.len().max(1);
    let cell = (640 / n).clamp(12, 48) as u32;
    let (margin, top) = (150, if all > MATRIX_CLASSES { 180 } else { 150 });
    let (width, height) = (margin + cell * n as u32 + 10, top + cell * n as u32 + 10);
    let mut body = String::new();
    if all > MATRIX_CLASSES {
        body += &format!(r#"<text x="10" y="20" font-size="14">The {n} of {all} classes most often confused (rows: true class, columns: predicted)</text>"#);
    }
    for (r, &i) in shown.iter().enumerate() {
        let row = &evaluation.confusion[i];
        let total = row.iter().sum::<usize>().max(1) as f64;
        for (c, &j) in shown.iter().enumerate() {
            let count = row[j];
            let share = count as f64 / total;
            let (x, y) = (margin + c as u32 * cell, top + r as u32 * cell);
            body += &format!(r##"<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="#1f4e99" fill-opacity="{share:.3}" stroke="#ddd" stroke-width="0.5"><title>{} → {}: {count}</title></rect>"##, escape(&evaluation.classes[i]), escape(&evaluation.classes[j]));
            if cell >= 24 && count > 0 {
                let color = if share > 0.5 { "white" } else { "black" };
                body += &format!(r#"<text x="{}" y="{}" text-anchor="middle" fill="{color}">{count}</text>"#, x + cell / 2, y + cell / 2 + 4);
            }
        }
        let y = top + r as u32 * cell + cell / 2 + 4;
        body += &format!(r#"<text x="{}" y="{y}" text-anchor="end">{}</text>"#, margin - 6, escape(&evaluation.classes[i]));
        let x = margin + r as u32 * cell + cell / 2;
        body += &format!(r#"<text x="{x}" y="{}" text-anchor="start" transform="rotate(-60 {x} {})">{}</text>"#, top - 6, top - 6, escape(&evaluation.classes[i]));
    }
    Svg(format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/>{body}</svg>"#
    ))
}
