//! The pictures notebooks and MLflow show: each is a complete SVG with the labels it should carry.

use food101::image::RgbImage;
use food101::predict::Prediction;
use food101::train::{EpochRecord, Evaluation, History, PhaseRecord};
use food101::viz;

fn record(epoch: usize, phase: &str, accuracy: f64) -> EpochRecord {
    EpochRecord {
        epoch,
        phase: phase.into(),
        loss: 1.0 / epoch as f64,
        accuracy,
        top5: 1.0,
        val_loss: 1.2 / epoch as f64,
        val_accuracy: accuracy - 0.05,
        val_top5: 1.0,
        learning_rate: 1e-3,
        seconds: 1.0,
        skipped: 0,
    }
}

fn phase(name: &str, first_epoch: usize) -> PhaseRecord {
    PhaseRecord { name: name.into(), first_epoch, epochs: 2, seconds: 1.0, cache_seconds: 0.0, cache_saved_seconds: 0.0 }
}

fn assert_svg(svg: &viz::Svg, texts: &[&str]) {
    assert!(svg.0.starts_with("<svg") && svg.0.trim_end().ends_with("</svg>"), "{}", &svg.0[..svg.0.len().min(200)]);
    for text in texts {
        assert!(svg.0.contains(text), "`{text}` is not in the SVG");
    }
}

#[test]
fn the_history_chart_marks_where_fine_tuning_starts() {
    let history = History {
        epochs: vec![record(1, "feature_extraction", 0.6), record(2, "feature_extraction", 0.7), record(3, "fine_tune", 0.8), record(4, "fine_tune", 0.85)],
        phases: vec![phase("feature_extraction", 1), phase("fine_tune", 3)],
        evaluation: None,
    };
    assert_svg(&viz::history_chart(&history).unwrap(), &["Accuracy", "Loss", "training", "validation", "fine-tuning starts"]);
    let one_phase = History { epochs: history.epochs[..2].to_vec(), phases: history.phases[..1].to_vec(), evaluation: None };
    let svg = viz::history_chart(&one_phase).unwrap();
    assert!(!svg.0.contains("fine-tuning starts"));
}

#[test]
fn bar_charts_label_every_bar_whatever_their_number() {
    for n in [1, 2, 3, 10, 25] {
        let bars: Vec<(String, f64)> = (0..n).map(|i| (format!("class_{i}"), (n - i) as f64)).collect();
        let svg = viz::bar_chart("Images per class", &bars).unwrap();
        let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        assert_svg(&svg, &labels.iter().map(String::as_str).chain(["Images per class"]).collect::<Vec<_>>());
    }
}

#[test]
fn image_grids_cards_and_confusion_matrices_carry_their_text() {
    let photo = RgbImage::from_fn(64, 48, |x, y| food101::image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
    let grid = viz::image_grid(&[(photo.clone(), "pizza & <sushi>".into()), (photo.clone(), "ramen".into())], 2).unwrap();
    assert_svg(&grid, &["data:image/png;base64,", "pizza &amp; &lt;sushi&gt;", "ramen"]);
    assert_eq!(grid.0.matches("<image").count(), 2);
    let top = vec![Prediction { index: 3, label: "hot_dog".into(), prob: 0.75 }, Prediction { index: 1, label: "burrito".into(), prob: 0.25 }];
    assert_svg(&viz::prediction_card(&photo, &top).unwrap(), &["hot_dog", "75.0%", "burrito", "25.0%"]);
    let mut evaluation = Evaluation::new(vec!["a".into(), "b".into()]);
    let row = |p: [f32; 2]| p.map(f32::ln).to_vec();
    evaluation.update(&[row([0.9, 0.1]), row([0.4, 0.6]), row([0.7, 0.3])], &[0, 1, 1], ["x", "y", "z"].map(Into::into));
    let svg = viz::confusion_matrix(&evaluation);
    assert_svg(&svg, &["a → a: 1", "b → a: 1", "b → b: 1"]);
}

#[test]
fn prediction_grids_mark_the_wrong_answers() {
    let photo = RgbImage::from_fn(40, 30, |x, _| food101::image::Rgb([x as u8 * 6, 80, 160]));
    let photos = vec![(photo.clone(), "pizza".to_string(), "pizza".to_string()), (photo, "sushi".to_string(), "ramen".to_string())];
    let grid = viz::prediction_grid(&photos, 2).unwrap();
    assert_svg(&grid, &["✓ pizza", "✗ ramen (is sushi)", r##"stroke="#d62728""##]);
    assert_eq!(grid.0.matches("stroke=\"#d62728\"").count(), 1, "one frame, for the one wrong answer");
}

#[test]
fn a_confusion_matrix_of_many_classes_shows_the_most_confused_with_their_names() {
    let classes: Vec<String> = (0..30).map(|i| format!("class_{i:02}")).collect();
    let mut evaluation = Evaluation::new(classes);
    // Every class right once; classes 3 and 17 mistaken for each other.
    let one_hot = |i: usize| (0..30).map(|j| if j == i { 0.9f32.ln() } else { (0.1f32 / 29.0).ln() }).collect::<Vec<f32>>();
    let rows: Vec<Vec<f32>> = (0..30).map(one_hot).chain([one_hot(17), one_hot(3)]).collect();
    let labels: Vec<u32> = (0..30).chain([3, 17]).collect();
    evaluation.update(&rows, &labels, (0..32).map(|i| format!("{i}.jpg").into()));
    assert_eq!(evaluation.most_confused(2), [("class_03".to_string(), "class_17".to_string(), 1), ("class_17".to_string(), "class_03".to_string(), 1)]);
    assert!(evaluation.highest_loss(2).iter().all(|p| p.label != p.predicted), "the two mistakes have the highest loss");
    let svg = viz::confusion_matrix(&evaluation);
    assert_svg(&svg, &["The 20 of 30 classes most often confused", "class_03 → class_17: 1", ">class_17</text>"]);
    assert_eq!(svg.0.matches("<rect x=").count(), 20 * 20, "a 20x20 grid");
}

#[test]
fn experiments_share_one_chart_and_a_heat_map_covers_the_photo() {
    let history = |accuracy: f64| History { epochs: (1..=4).map(|e| record(e, "feature_extraction", accuracy + 0.01 * e as f64)).collect(), ..History::default() };
    let chart = viz::compare_histories(&[("baseline".into(), history(0.7)), ("phase 2 at 1e-3".into(), history(0.5))]).unwrap();
    assert_svg(&chart, &["Validation accuracy per experiment", "baseline", "phase 2 at 1e-3"]);
    let photo = RgbImage::from_pixel(64, 32, food101::image::Rgb([128, 128, 128]));
    let overlay = viz::heatmap_overlay(&photo, &[0.0, 1.0], (1, 2));
    assert_eq!(overlay.dimensions(), (64, 32));
    let (left, right) = (overlay.get_pixel(0, 16).0, overlay.get_pixel(63, 16).0);
    assert!(left[2] > left[0] && right[0] > right[2], "blue where low, red where high: {left:?} {right:?}");
}
