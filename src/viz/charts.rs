//! Charts with plotters: the accuracy and loss curves of a training (as in the TensorFlow
//! transfer-learning tutorial, with a line where fine-tuning starts) and labelled bar charts.

use plotters::prelude::*;
use plotters::series::DashedLineSeries;

use super::Svg;
use crate::error::{Error, Result};
use crate::train::History;

fn plot_error(e: impl std::fmt::Display) -> Error {
    Error::Io(std::io::Error::other(format!("drawing a chart: {e}")))
}

/// Two panels, accuracy and loss per epoch, training and validation, with a dashed line at the
/// first epoch of every phase after the first.
pub fn history_chart(history: &History) -> Result<Svg> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 380)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let panels = root.split_evenly((1, 2));
        let epochs = history.epochs.len().max(1) as f64;
        let starts: Vec<f64> = history.phases.iter().skip(1).map(|p| p.first_epoch as f64 - 0.5).collect();
        let curves: [(&str, Vec<f64>, Vec<f64>); 2] = [
            ("Accuracy", history.metric(|e| e.accuracy), history.metric(|e| e.val_accuracy)),
            ("Loss (cross-entropy)", history.metric(|e| e.loss), history.metric(|e| e.val_loss)),
        ];
        for (panel, (title, train, validation)) in panels.iter().zip(curves) {
            let finite = train.iter().chain(&validation).copied().filter(|v| v.is_finite());
            let (lo, hi) = finite.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
            let (lo, hi) = if lo > hi { (0.0, 1.0) } else { (lo - 0.05 * (hi - lo + 1e-9), hi + 0.05 * (hi - lo + 1e-9)) };
            let mut chart = ChartBuilder::on(panel)
                .caption(title, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(52)
                .build_cartesian_2d(0.5..epochs + 0.5, lo..hi)
                .map_err(plot_error)?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .x_labels(history.epochs.len().clamp(2, 20))
                .x_label_formatter(&|x| format!("{x:.0}"))
                .max_light_lines(2)
                .draw()
                .map_err(plot_error)?;
            for (name, values, color) in [("training", &train, BLUE), ("validation", &validation, RED)] {
                let points = values.iter().enumerate().map(|(i, v)| ((i + 1) as f64, *v));
                chart
                    .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                    .map_err(plot_error)?
                    .label(name)
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
                chart.draw_series(points.map(|p| Circle::new(p, 3, color.filled()))).map_err(plot_error)?;
            }
            for (i, &x) in starts.iter().enumerate() {
                let line = chart
                    .draw_series(DashedLineSeries::new([(x, lo), (x, hi)], 6, 4, BLACK.mix(0.6).stroke_width(1)))
                    .map_err(plot_error)?;
                if i == 0 {
                    line.label("fine-tuning starts").legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK.mix(0.6)));
                }
            }
            chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK.mix(0.3)).draw().map_err(plot_error)?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(Svg(svg))
}

/// The validation accuracy per epoch of several trainings in one chart, one line each: how
/// experiments compare.
pub fn compare_histories(runs: &[(String, History)]) -> Result<Svg> {
    const COLORS: [RGBColor; 6] = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 400)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let epochs = runs.iter().map(|(_, h)| h.epochs.len()).max().unwrap_or(1).max(1) as f64;
        let values = runs.iter().flat_map(|(_, h)| h.metric(|e| e.val_accuracy)).filter(|v| v.is_finite());
        let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let (lo, hi) = if lo > hi { (0.0, 1.0) } else { ((lo - 0.02).max(0.0), (hi + 0.02).min(1.0)) };
        let mut chart = ChartBuilder::on(&root)
            .caption("Validation accuracy per experiment", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(0.5..epochs + 0.5, lo..hi)
            .map_err(plot_error)?;
        chart.configure_mesh().x_desc("epoch").x_label_formatter(&|x| format!("{x:.0}")).max_light_lines(2).draw().map_err(plot_error)?;
        for (i, (name, history)) in runs.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let points: Vec<(f64, f64)> = history.metric(|e| e.val_accuracy).into_iter().enumerate().map(|(i, v)| ((i + 1) as f64, v)).collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(plot_error)?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
            chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, color.filled()))).map_err(plot_error)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(Svg(svg))
}

/// Horizontal bars, one per `(label, value)`, largest first as given.
pub fn bar_chart(title: &str, bars: &[(String, f64)]) -> Result<Svg> {
    let mut svg = String::new();
    {
        let height = 80 + 22 * bars.len() as u32;
        let root = SVGBackend::with_string(&mut svg, (720, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let max = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-9);
        let n = bars.len().max(1);
        let label_width = bars.iter().map(|b| b.0.len()).max().unwrap_or(4).clamp(4, 32) as u32 * 8;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(label_width)
            .build_cartesian_2d(0.0..max * 1.05, (0..n).into_segmented())
            .map_err(plot_error)?;
        let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => (n - 1).checked_sub(*i).and_then(|k| labels.get(k)).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(plot_error)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
                let y = n - 1 - i;
                Rectangle::new([(0.0, SegmentValue::Exact(y)), (*v, SegmentValue::Exact(y + 1))], BLUE.mix(0.7).filled())
            }))
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(Svg(svg))
}
