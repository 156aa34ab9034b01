//! One row of the interval charts (final accuracy per variant, difference with the baseline):
//! a 95% CI as a bar with end caps, each seed as a small open circle, the mean as a dot.

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::error::DrawError;

/// A chart with two linear axes.
pub type XyChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// One row at height `y`, values in their own units (`scale` turns them into plot units: 100
/// for fractions shown in percent).
pub struct IntervalRow<'a> {
    /// The row's height (category index from the bottom).
    pub y: f64,
    /// The variant's colour.
    pub colour: RGBColor,
    /// The 95% CI.
    pub ci: Option<(f64, f64)>,
    /// Each seed's value.
    pub seeds: &'a [f64],
    /// The mean.
    pub mean: Option<f64>,
    /// Value to plot units.
    pub scale: f64,
    /// Where a CI is cut (an accuracy below 0% or above 100%); an end past it gets no cap.
    pub limits: (f64, f64),
}

impl IntervalRow<'_> {
    /// Draws the CI with its caps, the seeds just above the row, the mean on it.
    pub fn draw<DB: DrawingBackend>(&self, chart: &mut XyChart<'_, DB>) -> Result<(), DrawError>
    where
        DB::ErrorType: 'static,
    {
        let (y, c, k) = (self.y, self.colour, self.scale);
        if let Some((lo, hi)) = self.ci {
            let (lo_c, hi_c) = (lo.max(self.limits.0), hi.min(self.limits.1));
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(lo_c * k, y), (hi_c * k, y)],
                c.stroke_width(3),
            )))?;
            let inside = |x: &f64| (self.limits.0..=self.limits.1).contains(x);
            for x in [lo, hi].into_iter().filter(inside) {
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(x * k, y - 0.18), (x * k, y + 0.18)],
                    c.stroke_width(3),
                )))?;
            }
        }
        chart.draw_series(
            self.seeds
                .iter()
                .map(|s| Circle::new((s * k, y + 0.22), 4, c.stroke_width(1))),
        )?;
        if let Some(m) = self.mean {
            chart.draw_series(std::iter::once(Circle::new((m * k, y), 7, c.filled())))?;
        }
        Ok(())
    }
}
