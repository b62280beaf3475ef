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
    const CELL: u32 = 150;
    let columns = columns.max(1);
    let rows = images.len().div_ceil(columns) as u32;
    let (width, height) = (columns as u32 * (CELL + 10), rows * (CELL + 34));
    let mut body = String::new();
    for (i, (img, caption)) in images.iter().enumerate() {
        let (uri, w, h) = thumbnail(img, CELL)?;
        let (x, y) = ((i % columns) as u32 * (CELL + 10) + 5, (i / columns) as u32 * (CELL + 34) + 5);
        body += &format!(
            r#"<image x="{}" y="{}" width="{w}" height="{h}" href="{uri}"/><text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            x + (CELL - w) / 2,
            y + (CELL - h) / 2,
            x + CELL / 2,
            y + CELL + 18,
            escape(caption)
        );
    }
    Ok(Svg(format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="13"><rect width="100%" height="100%" fill="white"/>{body}</svg>"#
    )))
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

/// Rows: true class, columns: predicted, shaded by the share of the row; class names when few.
pub fn confusion_matrix(evaluation: &Evaluation) -> Svg {
    let n = evaluation.classes.len().max(1);
    let cell = (640 / n).clamp(4, 48) as u32;
    let labels = n <= 30;
    let margin = if labels { 150 } else { 20 };
    let side = margin + cell * n as u32 + 10;
    let mut body = String::new();
    for (i, row) in evaluation.confusion.iter().enumerate() {
        let total = row.iter().sum::<usize>().max(1) as f64;
        for (j, &count) in row.iter().enumerate() {
            let share = count as f64 / total;
            let (x, y) = (margin + j as u32 * cell, margin + i as u32 * cell);
            body += &format!(r##"<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="#1f4e99" fill-opacity="{share:.3}" stroke="#ddd" stroke-width="0.5"><title>{} → {}: {count}</title></rect>"##, escape(&evaluation.classes[i]), escape(&evaluation.classes[j]));
            if labels && cell >= 24 && count > 0 {
                let color = if share > 0.5 { "white" } else { "black" };
                body += &format!(r#"<text x="{}" y="{}" text-anchor="middle" fill="{color}">{count}</text>"#, x + cell / 2, y + cell / 2 + 4);
            }
        }
        if labels {
            let y = margin + i as u32 * cell + cell / 2 + 4;
            body += &format!(r#"<text x="{}" y="{y}" text-anchor="end">{}</text>"#, margin - 6, escape(&evaluation.classes[i]));
            let x = margin + i as u32 * cell + cell / 2;
            body += &format!(r#"<text x="{x}" y="{}" text-anchor="start" transform="rotate(-60 {x} {})">{}</text>"#, margin - 6, margin - 6, escape(&evaluation.classes[i]));
        }
    }
    Svg(format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{side}" height="{side}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/>{body}</svg>"#
    ))
}
