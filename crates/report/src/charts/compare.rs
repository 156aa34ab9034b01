//! Charts 3 to 5: final accuracy per variant, accuracy against swept numeric
//! axes, and the cost-benefit scatter.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::interval_row::{IntervalRow, XyChart};
use super::{
    baseline_label, category_tick, clamp_percent, font, padded_range, shorten, text_width, Chart,
    AXIS_SIZE, LEGEND_SIZE, TICK_SIZE, TITLE_SIZE,
};
use crate::error::DrawError;

/// One variant's final accuracy (fractions are converted to percent here).
#[derive(Debug, Clone)]
pub struct AccPoint {
    /// Variant label.
    pub label: String,
    /// Variant colour.
    pub colour: RGBColor,
    /// Mean final test accuracy (fraction), `None` without a completed seed.
    pub mean: Option<f64>,
    /// 95% confidence interval (fractions).
    pub ci: Option<(f64, f64)>,
    /// Each seed's final test accuracy (fractions).
    pub seeds: Vec<f64>,
    /// Baseline variant.
    pub is_baseline: bool,
}

fn dashed<DB: DrawingBackend>(
    chart: &mut XyChart<'_, DB>,
    points: Vec<(f64, f64)>,
    colour: RGBColor,
) -> Result<(), DrawError>
where
    DB::ErrorType: 'static,
{
    chart.draw_series(DashedLineSeries::new(points, 8, 6, colour.stroke_width(2)))?;
    Ok(())
}

/// Chart 3: mean final test accuracy per variant with its 95% CI and the
/// individual seeds; the baseline's mean as a dashed reference line.
pub struct FinalAccChart {
    /// Rows from top to bottom (best first).
    pub rows: Vec<AccPoint>,
}

impl FinalAccChart {
    /// The accuracy axis (%): every seed, CI end and mean, padded, within [0, 100].
    fn x_range(&self) -> (f64, f64) {
        clamp_percent(padded_range(
            self.rows.iter().flat_map(|r| {
                let ci = r.ci.map(|c| [c.0, c.1]).unwrap_or([f64::NAN; 2]);
                r.seeds
                    .iter()
                    .copied()
                    .chain(ci)
                    .chain(r.mean)
                    .map(|v| v * 100.0)
            }),
            0.08,
            (0.0, 100.0),
        ))
    }

    fn labels(&self) -> Vec<String> {
        self.rows
            .iter()
            .map(|r| {
                let mut l = baseline_label(&shorten(&r.label, 60), r.is_baseline);
                if r.mean.is_none() {
                    l.push_str(" (no completed seed)");
                }
                l
            })
            .collect()
    }
}

impl Chart for FinalAccChart {
    fn size(&self) -> (u32, u32) {
        (1200, 160 + 44 * self.rows.len().max(2) as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError>
    where
        DB::ErrorType: 'static,
    {
        let n = self.rows.len();
        let labels = self.labels();
        // Row i (from the top) sits at y = n - 1 - i.
        let by_y: Vec<String> = labels.iter().rev().cloned().collect();
        let label_w = labels
            .iter()
            .map(|l| text_width(root, l, TICK_SIZE))
            .max()
            .unwrap_or(50)
            + 20;
        let base = self
            .rows
            .iter()
            .find(|r| r.is_baseline)
            .and_then(|r| r.mean);
        let (x0, x1) = self.x_range();
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Final test accuracy per variant: mean, 95% CI (t), and each seed",
                font(TITLE_SIZE),
            )
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(label_w.min(700))
            .build_cartesian_2d(x0..x1, -0.5..(n as f64 - 0.5))?;
        chart
            .configure_mesh()
            .x_desc("Final test accuracy (%)")
            .label_style(font(TICK_SIZE))
            .axis_desc_style(font(AXIS_SIZE))
            .light_line_style(RGBColor(235, 235, 235))
            .y_labels(n.max(1))
            .y_label_formatter(&|v| category_tick(&by_y, *v))
            .x_label_formatter(&|v| format!("{v:.1}"))
            .disable_y_mesh()
            .draw()?;
        if let Some(b) = base {
            let b = b * 100.0;
            dashed(
                &mut chart,
                vec![(b, -0.5), (b, n as f64 - 0.5)],
                RGBColor(90, 90, 90),
            )?;
        }
        for (i, r) in self.rows.iter().enumerate() {
            IntervalRow {
                y: (n - 1 - i) as f64,
                colour: r.colour,
                ci: r.ci,
                seeds: &r.seeds,
                mean: r.mean,
                scale: 100.0,
                limits: (0.0, 1.0),
            }
            .draw(&mut chart)?;
        }
        Ok(())
    }
}

/// The accuracy axis (%) of a chart of means (fractions) with their 95% CIs: every CI end
/// (the mean where there is no CI) and the baseline, padded, within [0, 100].
fn accuracy_range(
    means: impl Iterator<Item = (f64, Option<(f64, f64)>)>,
    baseline: Option<f64>,
) -> (f64, f64) {
    clamp_percent(padded_range(
        means
            .flat_map(|(mean, ci)| {
                let (lo, hi) = ci.unwrap_or((mean, mean));
                [lo, hi]
            })
            .chain(baseline)
            .map(|v| v * 100.0),
        0.1,
        (0.0, 100.0),
    ))
}

/// A 95% CI (fractions) as a vertical bar at `x`, cut at 0% and 100%.
fn vertical_ci<DB: DrawingBackend>(
    chart: &mut XyChart<'_, DB>,
    x: f64,
    (lo, hi): (f64, f64),
    colour: RGBColor,
) -> Result<(), DrawError>
where
    DB::ErrorType: 'static,
{
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(x, lo.max(0.0) * 100.0), (x, hi.min(1.0) * 100.0)],
        colour.stroke_width(2),
    )))?;
    Ok(())
}

/// One line of an axis chart: the variants that share every other swept value.
#[derive(Debug, Clone)]
pub struct AxisGroup {
    /// The other axes' values (`k=v ...`), or the axis name when there are none.
    pub label: String,
    /// Line colour.
    pub colour: RGBColor,
    /// Sorted by axis value.
    pub points: Vec<AxisPoint>,
}

/// `(axis value, mean accuracy, 95% CI)`; fractions.
pub type AxisPoint = (f64, f64, Option<(f64, f64)>);

/// Chart 4: final test accuracy against one swept numeric axis.
pub struct AxisChart {
    /// The swept key (e.g. `model.reduction`).
    pub key: String,
    /// Plot the axis on a log2 scale (positive values spanning 8x or more).
    pub log2: bool,
    /// Lines.
    pub groups: Vec<AxisGroup>,
    /// The baseline's mean final accuracy (fraction), as a reference line.
    pub baseline: Option<f64>,
}

impl Chart for AxisChart {
    fn size(&self) -> (u32, u32) {
        (1100, 700)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError>
    where
        DB::ErrorType: 'static,
    {
        let log2 = self.log2;
        let ((x0, x1), (y0, y1)) = self.ranges();
        let x_fmt = move |v: &f64| axis_tick(log2, *v);
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("Final test accuracy against {}", self.key),
                font(TITLE_SIZE),
            )
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(75)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(if log2 {
                format!("{} (log2 scale)", self.key)
            } else {
                self.key.clone()
            })
            .y_desc("Final test accuracy (%), mean and 95% CI")
            .label_style(font(TICK_SIZE))
            .axis_desc_style(font(AXIS_SIZE))
            .light_line_style(RGBColor(235, 235, 235))
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&|v| format!("{v:.1}"))
            .draw()?;
        if let Some(b) = self.baseline {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(x0, b * 100.0), (x1, b * 100.0)],
                    8,
                    6,
                    RGBColor(40, 40, 40).stroke_width(2),
                ))?
                .label("baseline (mean)")
                .legend(|(x, y)| {
                    PathElement::new(
                        vec![(x, y), (x + 24, y)],
                        RGBColor(40, 40, 40).stroke_width(2),
                    )
                });
        }
        self.draw_groups(&mut chart, (x1 - x0) * 0.006)?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.4))
            .label_font(font(LEGEND_SIZE))
            .draw()?;
        Ok(())
    }
}

impl AxisChart {
    /// An axis value where it is plotted: its log2 on a log2 scale.
    fn plotted(&self, x: f64) -> f64 {
        if self.log2 {
            x.log2()
        } else {
            x
        }
    }

    /// The plotted axis values, and the accuracies (%) with their CIs and the baseline,
    /// padded.
    fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let x = padded_range(
            self.groups
                .iter()
                .flat_map(|g| g.points.iter().map(|p| self.plotted(p.0))),
            0.08,
            (0.0, 1.0),
        );
        let y = accuracy_range(
            self.groups
                .iter()
                .flat_map(|g| g.points.iter().map(|p| (p.1, p.2))),
            self.baseline,
        );
        (x, y)
    }

    /// Each group's CIs (offset by `span` per group so that they do not hide each other)
    /// and its line, with a legend entry.
    fn draw_groups<DB: DrawingBackend>(
        &self,
        chart: &mut XyChart<'_, DB>,
        span: f64,
    ) -> Result<(), DrawError>
    where
        DB::ErrorType: 'static,
    {
        let ng = self.groups.len() as f64;
        for (gi, g) in self.groups.iter().enumerate() {
            let c = g.colour;
            for p in &g.points {
                if let Some(ci) = p.2 {
                    let x = self.plotted(p.0) + span * (gi as f64 - (ng - 1.0) / 2.0);
                    vertical_ci(chart, x, ci, c)?;
                }
            }
            chart
                .draw_series(
                    LineSeries::new(
                        g.points.iter().map(|p| (self.plotted(p.0), p.1 * 100.0)),
                        c.stroke_width(2),
                    )
                    .point_size(5),
                )?
                .label(g.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3))
                });
        }
        Ok(())
    }
}

/// An axis tick: on a log2 scale the value `2^v` (whole numbers without decimals), else `v`
/// without trailing zeros.
fn axis_tick(log2: bool, v: f64) -> String {
    if log2 {
        let x = 2f64.powf(v);
        if (x - x.round()).abs() < 1e-6 {
            format!("{}", x.round())
        } else {
            format!("{x:.2}")
        }
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// One variant in the cost-benefit scatter.
#[derive(Debug, Clone)]
pub struct CostPoint {
    /// Variant label.
    pub label: String,
    /// Variant colour.
    pub colour: RGBColor,
    /// Trainable parameters.
    pub params: Option<u64>,
    /// MACs per image.
    pub macs: Option<u64>,
    /// Mean final test accuracy (fraction).
    pub mean: f64,
    /// 95% CI (fractions).
    pub ci: Option<(f64, f64)>,
}

/// Chart 5: accuracy against parameters and against MACs.
pub struct CostChart {
    /// Variants with a completed seed.
    pub points: Vec<CostPoint>,
    /// The baseline's mean final accuracy (fraction).
    pub baseline: Option<f64>,
}

/// A variant's cost in millions: MACs per image, or parameters.
fn cost(p: &CostPoint, macs: bool) -> Option<f64> {
    if macs {
        p.macs.map(|v| v as f64 / 1e6)
    } else {
        p.params.map(|v| v as f64 / 1e6)
    }
}

impl CostChart {
    /// The costs, and the accuracies (%) with their CIs and the baseline, padded.
    fn ranges(&self, macs: bool) -> ((f64, f64), (f64, f64)) {
        let x = padded_range(
            self.points.iter().filter_map(|p| cost(p, macs)),
            0.1,
            (0.0, 1.0),
        );
        let y = accuracy_range(self.points.iter().map(|p| (p.mean, p.ci)), self.baseline);
        (x, y)
    }

    /// Each variant with a cost: its CI and its mean, with a legend entry when asked.
    fn draw_points<DB: DrawingBackend>(
        &self,
        chart: &mut XyChart<'_, DB>,
        macs: bool,
        legend: bool,
    ) -> Result<(), DrawError>
    where
        DB::ErrorType: 'static,
    {
        for p in &self.points {
            let Some(x) = cost(p, macs) else { continue };
            let c = p.colour;
            if let Some(ci) = p.ci {
                vertical_ci(chart, x, ci, c)?;
            }
            let s = chart.draw_series(std::iter::once(Circle::new(
                (x, p.mean * 100.0),
                7,
                c.filled(),
            )))?;
            if legend {
                s.label(shorten(&p.label, 50))
                    .legend(move |(x, y)| Circle::new((x + 8, y), 6, c.filled()));
            }
        }
        Ok(())
    }

    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        macs: bool,
        legend: bool,
    ) -> Result<(), DrawError>
    where
        DB::ErrorType: 'static,
    {
        let ((x0, x1), (y0, y1)) = self.ranges(macs);
        let mut chart = ChartBuilder::on(area)
            .caption(
                if macs {
                    "Accuracy against compute"
                } else {
                    "Accuracy against model size"
                },
                font(TITLE_SIZE - 4),
            )
            .margin(15)
            .x_label_area_size(55)
            .y_label_area_size(75)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(if macs {
                "Multiply-accumulates per image (millions)"
            } else {
                "Trainable parameters (millions)"
            })
            .y_desc("Final test accuracy (%), mean and 95% CI")
            .label_style(font(TICK_SIZE))
            .axis_desc_style(font(AXIS_SIZE - 2))
            .light_line_style(RGBColor(235, 235, 235))
            .x_label_formatter(&|v| format!("{v:.3}"))
            .y_label_formatter(&|v| format!("{v:.1}"))
            .draw()?;
        if let Some(b) = self.baseline {
            dashed(
                &mut chart,
                vec![(x0, b * 100.0), (x1, b * 100.0)],
                RGBColor(90, 90, 90),
            )?;
        }
        self.draw_points(&mut chart, macs, legend)?;
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

impl Chart for CostChart {
    fn size(&self) -> (u32, u32) {
        (1500, 700)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError>
    where
        DB::ErrorType: 'static,
    {
        let root = root.titled(
            "Cost and benefit: final test accuracy against parameters and MACs (dashed: baseline mean)",
            font(TITLE_SIZE),
        )?;
        let (left, right) = root.split_horizontally(root.dim_in_pixel().0 / 2);
        self.panel(&left, false, false)?;
        self.panel(&right, true, true)?;
        Ok(())
    }
}
