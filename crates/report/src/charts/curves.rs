//! Charts 1 and 2: training loss per iteration and per-epoch curves.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{font, padded_range, Chart, AXIS_SIZE, LEGEND_SIZE, TICK_SIZE, TITLE_SIZE};
use crate::error::DrawError;
use crate::load::{Band, EpochPoint};

/// One variant's line.
#[derive(Debug, Clone)]
pub struct Line<T> {
    /// Legend label.
    pub label: String,
    /// Variant colour.
    pub colour: RGBColor,
    /// The data.
    pub data: T,
}

/// Centered moving average over `2k + 1` points (fewer at the ends).
pub fn smooth(points: &[(f64, f64)], k: usize) -> Vec<(f64, f64)> {
    if k == 0 || points.len() < 3 {
        return points.to_vec();
    }
    let mut prefix = Vec::with_capacity(points.len() + 1);
    prefix.push(0.0);
    for p in points {
        prefix.push(prefix.last().copied().unwrap_or(0.0) + p.1);
    }
    (0..points.len())
        .map(|i| {
            let lo = i.saturating_sub(k);
            let hi = (i + k + 1).min(points.len());
            (points[i].0, (prefix[hi] - prefix[lo]) / (hi - lo) as f64)
        })
        .collect()
}

/// Chart 1: smoothed training loss per iteration, one line per variant.
pub struct LossChart {
    /// Binned (and then smoothed) loss per variant.
    pub lines: Vec<Line<Vec<(f64, f64)>>>,
}

impl Chart for LossChart {
    fn size(&self) -> (u32, u32) {
        (1200, 700)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError>
    where
        DB::ErrorType: 'static,
    {
        let (x0, x1) = padded_range(
            self.lines.iter().flat_map(|l| l.data.iter().map(|p| p.0)),
            0.0,
            (0.0, 1.0),
        );
        let (y0, y1) = padded_range(
            self.lines.iter().flat_map(|l| l.data.iter().map(|p| p.1)),
            0.05,
            (0.0, 1.0),
        );
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Training loss per iteration (mean over seeds, smoothed)",
                font(TITLE_SIZE),
            )
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(75)
            .build_cartesian_2d(x0.min(0.0)..x1.max(1.0), y0..y1)?;
        chart
            .configure_mesh()
            .x_desc("Training iteration (optimizer step)")
            .y_desc("Training loss (cross-entropy per image)")
            .label_style(font(TICK_SIZE))
            .axis_desc_style(font(AXIS_SIZE))
            .light_line_style(RGBColor(235, 235, 235))
            .x_label_formatter(&|v| format!("{:.0}", v))
            .draw()?;
        for line in &self.lines {
            let c = line.colour;
            chart
                .draw_series(LineSeries::new(
                    line.data.iter().copied(),
                    c.stroke_width(2),
                ))?
                .label(line.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3))
                });
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

/// Which per-epoch metric a panel shows.
#[derive(Debug, Clone, Copy)]
enum Metric {
    TrainLoss,
    TestLoss,
    TrainAcc,
    TestAcc,
}

impl Metric {
    fn band(self, p: &EpochPoint) -> Band {
        match self {
            Metric::TrainLoss => p.train_loss,
            Metric::TestLoss => p.test_loss,
            Metric::TrainAcc => p.train_acc,
            Metric::TestAcc => p.test_acc,
        }
    }

    fn scale(self) -> f64 {
        match self {
            Metric::TrainAcc | Metric::TestAcc => 100.0,
            _ => 1.0,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Metric::TrainLoss => "Train loss",
            Metric::TestLoss => "Test loss",
            Metric::TrainAcc => "Train accuracy",
            Metric::TestAcc => "Test accuracy",
        }
    }

    fn y_desc(self) -> &'static str {
        match self {
            Metric::TrainLoss | Metric::TestLoss => "Loss (cross-entropy per image)",
            Metric::TrainAcc | Metric::TestAcc => "Accuracy (%)",
        }
    }
}

/// Chart 2: train/test loss and accuracy per epoch, mean with min-max band.
pub struct EpochChart {
    /// Per-variant epoch points.
    pub lines: Vec<Line<Vec<EpochPoint>>>,
}

impl EpochChart {
    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        metric: Metric,
        legend: bool,
    ) -> Result<(), DrawError>
    where
        DB::ErrorType: 'static,
    {
        let s = metric.scale();
        let max_epoch = self
            .lines
            .iter()
            .flat_map(|l| l.data.iter().map(|p| p.epoch))
            .max()
            .unwrap_or(1);
        let (y0, y1) = padded_range(
            self.lines.iter().flat_map(|l| {
                l.data.iter().flat_map(move |p| {
                    let b = metric.band(p);
                    [b.min * s, b.max * s]
                })
            }),
            0.05,
            (0.0, 1.0),
        );
        let x1 = (max_epoch as f64).max(2.0);
        let mut chart = ChartBuilder::on(area)
            .caption(metric.title(), font(TITLE_SIZE - 4))
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(1.0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc("Epoch")
            .y_desc(metric.y_desc())
            .label_style(font(TICK_SIZE))
            .axis_desc_style(font(AXIS_SIZE - 2))
            .light_line_style(RGBColor(235, 235, 235))
            .x_label_formatter(&|v| format!("{:.0}", v))
            .x_labels((max_epoch as usize).clamp(2, 10))
            .draw()?;
        for line in &self.lines {
            let c = line.colour;
            let pts: Vec<(f64, Band)> = line
                .data
                .iter()
                .map(|p| (p.epoch as f64, metric.band(p)))
                .filter(|(_, b)| b.mean.is_finite() && b.min.is_finite() && b.max.is_finite())
                .collect();
            if pts.len() > 1 {
                let mut poly: Vec<(f64, f64)> = pts.iter().map(|(x, b)| (*x, b.max * s)).collect();
                poly.extend(pts.iter().rev().map(|(x, b)| (*x, b.min * s)));
                chart.draw_series(std::iter::once(Polygon::new(poly, c.mix(0.15).filled())))?;
            }
            let series = chart.draw_series(
                LineSeries::new(pts.iter().map(|(x, b)| (*x, b.mean * s)), c.stroke_width(2))
                    .point_size(if pts.len() <= 30 { 3 } else { 0 }),
            )?;
            if legend {
                series.label(line.label.clone()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3))
                });
            }
        }
        if legend {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK.mix(0.4))
                .label_font(font(LEGEND_SIZE - 2))
                .draw()?;
        }
        Ok(())
    }
}

impl Chart for EpochChart {
    fn size(&self) -> (u32, u32) {
        (1400, 1000)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError>
    where
        DB::ErrorType: 'static,
    {
        let root = root.titled(
            "Per-epoch curves: mean over seeds (line) and min-max across seeds (band)",
            font(TITLE_SIZE),
        )?;
        let panels = root.split_evenly((2, 2));
        let metrics = [
            Metric::TrainLoss,
            Metric::TestLoss,
            Metric::TrainAcc,
            Metric::TestAcc,
        ];
        for (area, m) in panels.iter().zip(metrics) {
            self.panel(area, m, matches!(m, Metric::TestAcc))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_is_a_centered_mean() {
        let p: Vec<(f64, f64)> = (0..5).map(|i| (i as f64, i as f64)).collect();
        let s = smooth(&p, 1);
        assert_eq!(s[0], (0.0, 0.5));
        assert_eq!(s[2], (2.0, 2.0));
        assert_eq!(s[4], (4.0, 3.5));
        assert_eq!(smooth(&p, 0), p);
    }
}
