//! Chart `differences`: each variant's difference with the baseline as the verdicts see it
//! (`crate::compare`): the primary analysis' difference with its 95% confidence interval,
//! the per-seed differences when the seeds pair, zero as a dashed line, and `± --effect` as
//! dotted lines; each row's label carries its adjusted verdict. Unlike the final-accuracy
//! chart, the paired interval shows how precisely the difference itself is known.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::interval_row::{IntervalRow, XyChart};
use super::{
    category_tick, font, padded_range, shorten, text_width, Chart, AXIS_SIZE, TICK_SIZE, TITLE_SIZE,
};
use crate::analysis::Analysis;
use crate::comparison::Method;
use crate::error::DrawError;

/// One variant's comparison with the baseline, in points.
#[derive(Debug, Clone)]
pub struct DiffRow {
    /// `label: verdict`.
    pub label: String,
    /// Variant colour.
    pub colour: RGBColor,
    /// The primary difference.
    pub diff: f64,
    /// Its 95% confidence interval.
    pub ci: Option<(f64, f64)>,
    /// Per-seed differences (paired comparisons only).
    pub seeds: Vec<f64>,
}

/// The chart: one row per compared variant, in table order.
pub struct DiffChart {
    /// Rows from top to bottom.
    pub rows: Vec<DiffRow>,
    /// The difference of interest (`--effect`), in points.
    pub effect: f64,
    /// The adjustment's name for the title.
    pub adjust: String,
}

impl DiffChart {
    /// The rows of every variant with a comparison; `None` when there is none.
    pub fn from_analysis(a: &Analysis, colour: impl Fn(&str) -> RGBColor) -> Option<DiffChart> {
        let rows: Vec<DiffRow> = a
            .variants
            .iter()
            .filter_map(|v| {
                let c = v.comparison.as_ref()?;
                let how = match c.method {
                    Method::Paired => format!("paired, {}", c.n),
                    Method::Welch => format!("Welch, {} vs {}", c.n, c.n_baseline),
                };
                Some(DiffRow {
                    label: format!("{} ({how}): {}", shorten(&v.label, 50), c.verdict.as_str()),
                    colour: colour(&v.id),
                    diff: c.diff_points,
                    ci: c.ci_points,
                    seeds: c.seed_diffs.clone(),
                })
            })
            .collect();
        (!rows.is_empty()).then(|| DiffChart {
            rows,
            effect: a.options.effect_points,
            adjust: a.options.adjust.name().to_string(),
        })
    }
}

impl Chart for DiffChart {
    fn size(&self) -> (u32, u32) {
        (1200, 160 + 44 * self.rows.len().max(2) as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError>
    where
        DB::ErrorType: 'static,
    {
        let n = self.rows.len();
        let by_y: Vec<String> = self.rows.iter().rev().map(|r| r.label.clone()).collect();
        let label_w = by_y
            .iter()
            .map(|l| text_width(root, l, TICK_SIZE))
            .max()
            .unwrap_or(50)
            + 20;
        let (x0, x1) = self.x_range();
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "Difference with the baseline: 95% CI and verdict ({})",
                    self.adjust
                ),
                font(TITLE_SIZE),
            )
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(label_w.min(800))
            .build_cartesian_2d(x0..x1, -0.5..(n as f64 - 0.5))?;
        chart
            .configure_mesh()
            .x_desc("Final test accuracy, variant minus baseline (points)")
            .label_style(font(TICK_SIZE))
            .axis_desc_style(font(AXIS_SIZE))
            .light_line_style(RGBColor(235, 235, 235))
            .y_labels(n.max(1))
            .y_label_formatter(&|v| category_tick(&by_y, *v))
            .x_label_formatter(&|v| format!("{v:+.1}"))
            .disable_y_mesh()
            .draw()?;
        self.draw_references(&mut chart, n as f64 - 0.5)?;
        for (i, r) in self.rows.iter().enumerate() {
            IntervalRow {
                y: (n - 1 - i) as f64,
                colour: r.colour,
                ci: r.ci,
                seeds: &r.seeds,
                mean: Some(r.diff),
                scale: 1.0,
                limits: (f64::NEG_INFINITY, f64::INFINITY),
            }
            .draw(&mut chart)?;
        }
        Ok(())
    }
}

impl DiffChart {
    /// The difference axis (points): every seed, CI end and difference, zero and the effect
    /// size either side, padded.
    fn x_range(&self) -> (f64, f64) {
        padded_range(
            self.rows
                .iter()
                .flat_map(|r| {
                    let ci = r.ci.map(|c| [c.0, c.1]).unwrap_or([f64::NAN; 2]);
                    r.seeds.iter().copied().chain(ci).chain([r.diff])
                })
                .chain([0.0, -self.effect, self.effect]),
            0.08,
            (-100.0, 100.0),
        )
    }

    /// Dashed lines up to `top`: no difference, and the effect size either side.
    fn draw_references<DB: DrawingBackend>(
        &self,
        chart: &mut XyChart<'_, DB>,
        top: f64,
    ) -> Result<(), DrawError>
    where
        DB::ErrorType: 'static,
    {
        chart.draw_series(DashedLineSeries::new(
            vec![(0.0, -0.5), (0.0, top)],
            8,
            6,
            RGBColor(60, 60, 60).stroke_width(2),
        ))?;
        for e in [-self.effect, self.effect] {
            chart.draw_series(DashedLineSeries::new(
                vec![(e, -0.5), (e, top)],
                2,
                5,
                RGBColor(150, 150, 150).stroke_width(1),
            ))?;
        }
        Ok(())
    }
}
