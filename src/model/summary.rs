//! `model.summary()`: the layer table as Keras prints it, as HTML for notebooks, and as JSON.

use std::fmt;

use serde::Serialize;

use super::layers::{LayerInfo, LayerKind};
use super::MobileNetV2;

/// A snapshot of the layer table with its totals.
#[derive(Debug, Clone)]
pub struct Summary {
    pub name: String,
    pub layers: Vec<LayerInfo>,
    /// The ImageNet classifier outside the base: `(classes, params)`.
    pub classifier: Option<(usize, usize)>,
}

#[derive(Serialize)]
struct Row<'a> {
    name: &'a str,
    kind: LayerKind,
    output_shape: [usize; 3],
    params: usize,
    trainable_params: usize,
    trainable: bool,
}

#[derive(Serialize)]
struct Json<'a> {
    model: &'a str,
    layers: Vec<Row<'a>>,
    total_params: usize,
    trainable_params: usize,
    non_trainable_params: usize,
}

impl MobileNetV2 {
    pub fn summary(&self) -> Summary {
        let classifier = self.has_classifier().then(|| {
            let classes = self.config().classes.unwrap_or(0);
            (classes, (self.feature_dim() + 1) * classes)
        });
        Summary { name: self.name(), layers: self.layers().to_vec(), classifier }
    }
}

/// `1234567` → `1,234,567`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Keras reports parameter memory at 4 bytes each.
fn bytes(params: usize) -> String {
    let b = params as f64 * 4.0;
    if b >= 1024.0 * 1024.0 {
        format!("{:.2} MB", b / (1024.0 * 1024.0))
    } else {
        format!("{:.2} KB", b / 1024.0)
    }
}

impl Summary {
    pub fn total_params(&self) -> usize {
        self.layers.iter().map(|l| l.params).sum()
    }

    pub fn trainable_params(&self) -> usize {
        self.layers.iter().map(LayerInfo::trainable_params).sum()
    }

    fn shape(&self, l: &LayerInfo) -> String {
        let [h, w, c] = l.output_shape;
        format!("(None, {h}, {w}, {c})")
    }

    fn totals(&self) -> [(&'static str, usize); 3] {
        let total = self.total_params();
        let trainable = self.trainable_params();
        [("Total params", total), ("Trainable params", trainable), ("Non-trainable params", total - trainable)]
    }

    /// `{"layers": [{"name", "kind", "output_shape", "params", "trainable_params", "trainable"}...],
    /// "total_params", "trainable_params", "non_trainable_params"}` (base layers only).
    pub fn to_json(&self) -> serde_json::Value {
        let layers = self
            .layers
            .iter()
            .map(|l| Row {
                name: &l.name,
                kind: l.kind,
                output_shape: l.output_shape,
                params: l.params,
                trainable_params: l.trainable_params(),
                trainable: l.trainable,
            })
            .collect();
        let [total, trainable, frozen] = self.totals().map(|(_, n)| n);
        serde_json::to_value(Json {
            model: &self.name,
            layers,
            total_params: total,
            trainable_params: trainable,
            non_trainable_params: frozen,
        })
        .expect("plain data serialises")
    }

    /// An HTML table; frozen layers are greyed out.
    pub fn to_html(&self) -> String {
        let mut html = format!(
            "<div><b>Model: \"{}\"</b><table style=\"font-family:monospace;font-size:12px\">\
             <tr><th>#</th><th style=\"text-align:left\">Layer (type)</th><th>Output Shape</th>\
             <th style=\"text-align:right\">Param #</th><th>Trainable</th></tr>",
            self.name
        );
        for (i, l) in self.layers.iter().enumerate() {
            let style = if l.trainable { "" } else { " style=\"color:#999\"" };
            html += &format!(
                "<tr{style}><td>{i}</td><td style=\"text-align:left\">{} ({})</td><td>{}</td>\
                 <td style=\"text-align:right\">{}</td><td>{}</td></tr>",
                l.name,
                l.kind,
                self.shape(l),
                thousands(l.params),
                if l.trainable { "Y" } else { "N" }
            );
        }
        html += "</table>";
        for (label, n) in self.totals() {
            html += &format!("<div><b>{label}:</b> {} ({})</div>", thousands(n), bytes(n));
        }
        if let Some((classes, params)) = self.classifier {
            html += &format!("<div>ImageNet classifier <i>predictions</i> (Dense, {classes} classes): {} params, not trained</div>", thousands(params));
        }
        html + "</div>"
    }

    /// Shows the HTML table as the cell's output in an evcxr notebook.
    pub fn evcxr_display(&self) {
        println!("EVCXR_BEGIN_CONTENT text/html\n{}\nEVCXR_END_CONTENT", self.to_html());
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.layers.iter().map(|l| format!("{} ({})", l.name, l.kind)).collect();
        let w0 = names.iter().map(String::len).max().unwrap_or(0).max(14);
        let w1 = self.layers.iter().map(|l| self.shape(l).len()).max().unwrap_or(0).max(14);
        let rule = |c: char| c.to_string().repeat(w0 + w1 + 36);
        writeln!(f, "Model: \"{}\"", self.name)?;
        writeln!(f, "{}", rule('='))?;
        writeln!(f, "{:<w0$}  {:<w1$}  {:>14}  {:>12}", "Layer (type)", "Output Shape", "Param #", "Trainable")?;
        writeln!(f, "{}", rule('='))?;
        for (name, l) in names.iter().zip(&self.layers) {
            let trainable = if l.trainable { "Y" } else { "N" };
            writeln!(f, "{name:<w0$}  {:<w1$}  {:>14}  {trainable:>12}", self.shape(l), thousands(l.params))?;
        }
        writeln!(f, "{}", rule('='))?;
        for (label, n) in self.totals() {
            writeln!(f, " {label}: {} ({})", thousands(n), bytes(n))?;
        }
        if let Some((classes, params)) = self.classifier {
            writeln!(f, " ImageNet classifier `predictions` (Dense, {classes} classes): {} params, not trained", thousands(params))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_and_bytes_read_like_keras() {
        assert_eq!(super::thousands(2257984), "2,257,984");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::bytes(2257984), "8.61 MB");
        assert_eq!(super::bytes(34112), "133.25 KB");
    }
}
