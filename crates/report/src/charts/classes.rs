//! Chart 6: per-class test accuracy and the confusion matrix.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{category_tick, font, Chart, AXIS_SIZE, LEGEND_SIZE, TICK_SIZE, TITLE_SIZE};
use crate::error::DrawError;

/// Per-class accuracy of one variant (mean over its seeds).
#[derive(Debug, Clone)]
pub struct ClassSeries {
    /// Variant label.
    pub label: String,
    /// Variant colour.
    pub colour: RGBColor,
    /// Accuracy per class index (fraction); NaN where missing.
    pub accuracy: Vec<f64>,
}

/// Grouped bars: one group per class, one bar per variant (baseline and best).
pub struct ClassChart {
    /// Class names by index.
    pub classes: Vec<String>,
    /// The compared variants.
    pub series: Vec<ClassSeries>,
}

impl Chart for ClassChart {
    fn size(&self) -> (u32, u32) {
        ((110 * self.classes.len() as u32).clamp(900, 2400), 700)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError>
    where
        DB::ErrorType: 'static,
    {
        let n = self.classes.len();
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Per-class test accuracy (mean over seeds)",
                font(TITLE_SIZE),
            )
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(75)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), 0.0..105.0)?;
        chart
            .configure_mesh()
            .x_desc("True class")
            .y_desc("Test accuracy (%)")
            .label_style(font(TICK_SIZE))
            .axis_desc_style(font(AXIS_SIZE))
            .light_line_style(RGBColor(235, 235, 235))
            .x_labels(n.max(1))
            .x_label_formatter(&|v| category_tick(&self.classes, *v))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .disable_x_mesh()
            .draw()?;
        let k = self.series.len().max(1) as f64;
        let group = 0.8;
        let w = group / k;
        for (si, s) in self.series.iter().enumerate() {
            let c = s.colour;
            let bars: Vec<Rectangle<(f64, f64)>> = s
                .accuracy
                .iter()
                .enumerate()
                .filter(|(_, a)| a.is_finite())
                .map(|(ci, a)| {
                    let x = ci as f64 - group / 2.0 + si as f64 * w;
                    Rectangle::new([(x + 0.02, 0.0), (x + w - 0.02, a * 100.0)], c.filled())
                })
                .collect();
            chart
                .draw_series(bars)?
                .label(s.label.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], c.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.4))
            .label_font(font(LEGEND_SIZE))
            .draw()?;
        Ok(())
    }
}

/// Confusion matrix of one variant, rows normalized to the true class.
pub struct ConfusionChart {
    /// Variant label.
    pub label: String,
    /// Class names by index.
    pub classes: Vec<String>,
    /// Counts `[true][predicted]`, summed over the variant's seeds (of the classes shown).
    pub counts: Vec<Vec<u64>>,
    /// Test images of each true class shown, over every predicted class (also those not
    /// shown): what a row's shares are of.
    pub row_totals: Vec<u64>,
}

impl Chart for ConfusionChart {
    fn size(&self) -> (u32, u32) {
        let n = self.classes.len() as u32;
        let side = (70 * n).clamp(500, 1600);
        (side + 260, side + 200)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError>
    where
        DB::ErrorType: 'static,
    {
        let n = self.classes.len();
        let rev: Vec<String> = self.classes.iter().rev().cloned().collect();
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "Confusion matrix (% of each true class): {}",
                    super::shorten(&self.label, 50)
                ),
                font(TITLE_SIZE - 4),
            )
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(130)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), -0.5..(n as f64 - 0.5))?;
        chart
            .configure_mesh()
            .x_desc("Predicted class")
            .y_desc("True class")
            .label_style(font(TICK_SIZE - 1))
            .axis_desc_style(font(AXIS_SIZE))
            .x_labels(n.max(1))
            .y_labels(n.max(1))
            .x_label_formatter(&|v| category_tick(&self.classes, *v))
            .y_label_formatter(&|v| category_tick(&rev, *v))
            .disable_mesh()
            .draw()?;
        let cell_font = font(TICK_SIZE - 2).pos(Pos::new(HPos::Center, VPos::Center));
        for (t, row) in self.counts.iter().enumerate().take(n) {
            let total = self.row_totals.get(t).copied().unwrap_or(0);
            let y = (n - 1 - t) as f64;
            for (p, &count) in row.iter().enumerate().take(n) {
                let frac = if total > 0 {
                    count as f64 / total as f64
                } else {
                    0.0
                };
                // White to dark blue.
                let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * frac).round() as u8;
                let fill = RGBColor(mix(247, 8), mix(251, 48), mix(255, 107));
                let x = p as f64;
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)],
                    fill.filled(),
                )))?;
                let text_colour = if frac > 0.5 { WHITE } else { BLACK };
                chart.draw_series(std::iter::once(Text::new(
                    format!("{:.0}", frac * 100.0),
                    (x, y),
                    cell_font.color(&text_colour),
                )))?;
            }
        }
        Ok(())
    }
}
