//! Which charts a report gets and the data each is drawn from (how each chart draws is in
//! [`crate::charts`]). A chart whose input is missing or empty is skipped with the reason, which
//! the report lists under "Charts not drawn".
//!
//! | module | charts |
//! | --- | --- |
//! | [`training`] | training loss per iteration, per-epoch train and test curves |
//! | [`comparison`] | final accuracy per variant, differences with the baseline, accuracy against each swept axis, cost and benefit |
//! | [`inside`] | per-class accuracy, confusion matrix, feature maps, channel-attention gates |
//!
//! With more than 20 classes the per-class charts show the top and bottom 10 ([`class_pick`]).

mod class_pick;
mod comparison;
mod inside;
mod training;

use std::path::Path;

use ablate_schema::TrialState;

use crate::analysis::{Analysis, Variant};
use crate::charts::{self, render, Chart, Palette, Rendered};
use crate::error::ReportError;
use crate::load::{Sources, Trial};
use crate::ReportOptions;

/// The charts drawn, and the ones skipped with their reason.
pub(crate) type Drawn = (Vec<Rendered>, Vec<(String, String)>);

/// The charts of one report being drawn.
pub(crate) struct Figures<'a> {
    src: &'a Sources,
    trials: &'a [Trial],
    a: &'a Analysis,
    out: &'a Path,
    opts: &'a ReportOptions,
    palette: Palette,
    charts: Vec<Rendered>,
    skipped: Vec<(String, String)>,
}

impl<'a> Figures<'a> {
    /// Draws `chart` into `<out>/<stem>.{svg,png}`.
    fn draw(
        &mut self,
        chart: &impl Chart,
        stem: &str,
        title: &str,
        caption: &str,
    ) -> Result<(), ReportError> {
        let drawn = render(chart, self.out, stem, title, caption, self.opts.formats)?;
        self.charts.push(drawn);
        Ok(())
    }

    /// Records that the chart `title` was not drawn, and why.
    fn skip(&mut self, title: &str, reason: impl Into<String>) {
        self.skipped.push((title.to_string(), reason.into()));
    }

    /// The variant's label in legends.
    fn label(v: &Variant) -> String {
        charts::baseline_label(&v.label, v.is_baseline)
    }

    /// The completed trials of a variant, by seed.
    fn completed_trials(&self, variant_id: &str) -> Vec<&'a Trial> {
        let mut v: Vec<&Trial> = self
            .trials
            .iter()
            .filter(|t| t.variant_id == variant_id && t.status == TrialState::Completed)
            .collect();
        v.sort_by_key(|t| t.seed);
        v
    }
}

/// Draws every chart of the report into `out`, in the order the report shows them.
pub(crate) fn draw_charts(
    src: &Sources,
    trials: &[Trial],
    a: &Analysis,
    out: &Path,
    opts: &ReportOptions,
) -> Result<Drawn, ReportError> {
    let palette = Palette::new(
        a.variants
            .iter()
            .map(|v| (v.id.as_str(), v.order, v.is_baseline)),
    );
    let mut f = Figures {
        src,
        trials,
        a,
        out,
        opts,
        palette,
        charts: Vec::new(),
        skipped: Vec::new(),
    };
    training::loss_chart(&mut f)?;
    training::epoch_chart(&mut f)?;
    comparison::final_accuracy_chart(&mut f)?;
    comparison::differences_chart(&mut f)?;
    comparison::axis_charts(&mut f)?;
    comparison::cost_chart(&mut f)?;
    let class_names = inside::class_charts(&mut f)?;
    inside::feature_map_chart(&mut f, &class_names)?;
    inside::gate_chart(&mut f, &class_names)?;
    Ok((f.charts, f.skipped))
}
