//! Pictures for notebooks and reports: training curves and bar charts drawn with plotters, image
//! grids, prediction cards and confusion matrices, all as SVG. Every picture has an
//! `evcxr_display()`, so a notebook cell that ends with one shows it (as `image/svg+xml`; evcxr
//! keeps one rich output per MIME type and cell), and a `save()` for files and MLflow artifacts.

mod charts;
mod images;

pub use charts::{bar_chart, compare_histories, history_chart};
pub use images::{confusion_matrix, heatmap_overlay, image_grid, prediction_card, prediction_grid};

use std::path::Path;

use crate::error::Result;

/// An SVG document.
#[derive(Debug, Clone, PartialEq)]
pub struct Svg(pub String);

impl Svg {
    /// What a notebook shows for it.
    pub fn evcxr_display(&self) {
        evcxr_output("image/svg+xml", &self.0);
    }

    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::cache::write_atomic(path.as_ref(), self.0.as_bytes())
    }
}

/// An HTML fragment (tables).
#[derive(Debug, Clone, PartialEq)]
pub struct Html(pub String);

impl Html {
    pub fn evcxr_display(&self) {
        evcxr_output("text/html", &self.0);
    }
}

/// The evcxr kernel's protocol for rich output: a MIME block on stdout.
pub fn evcxr_output(mime: &str, content: &str) {
    println!("EVCXR_BEGIN_CONTENT {mime}\n{content}\nEVCXR_END_CONTENT");
}

/// Text made safe for SVG and HTML.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// An HTML table from a header and rows.
pub fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> Html {
    let cells = |tag: &str, row: &[String]| row.iter().map(|c| format!("<{tag}>{}</{tag}>", escape(c))).collect::<String>();
    let head = cells("th", &header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    let body: String = rows.into_iter().map(|r| format!("<tr>{}</tr>", cells("td", &r))).collect();
    Html(format!("<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"))
}
