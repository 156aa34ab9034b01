//! How training went, per variant: the training loss per iteration and the per-epoch train and
//! test curves. Failed and diverged trials are left out; unfinished ones show how far they got.

use super::Figures;
use crate::charts::curves::{smooth, EpochChart, Line, LossChart};
use crate::charts::stems;
use crate::error::ReportError;
use crate::load;

/// `(trial_id, variant_id)` of the trials whose curves are plotted: everything that did not fail
/// or diverge.
fn curve_trials<'a>(f: &Figures<'a>) -> Vec<(&'a str, &'a str)> {
    f.trials
        .iter()
        .filter(|t| !t.status.is_failure())
        .map(|t| (t.trial_id.as_str(), t.variant_id.as_str()))
        .collect()
}

/// `loss_iterations`: the mean training loss over each variant's seeds, binned and smoothed.
pub(super) fn loss_chart(f: &mut Figures<'_>) -> Result<(), ReportError> {
    let loss = load::read_loss_curves(f.src, &curve_trials(f), f.opts.loss_points)?;
    if loss.is_empty() {
        f.skip(
            "Training loss per iteration",
            "no iteration rows for trials that did not fail",
        );
        return Ok(());
    }
    let lines =
        f.a.variants
            .iter()
            .filter_map(|v| {
                let pts = loss.get(&v.id)?;
                Some(Line {
                    label: Figures::label(v),
                    colour: f.palette.get(&v.id),
                    data: smooth(pts, pts.len() / 200),
                })
            })
            .collect();
    f.draw(
        &LossChart { lines },
        stems::LOSS_ITERATIONS,
        "Training loss per iteration",
        "Mean training loss over the seeds of each variant, averaged over bins of consecutive iterations and smoothed with a centered moving average (about 1% of the run). Failed and diverged trials are left out.",
    )
}

/// `epochs`: train and test loss and accuracy after each epoch, mean and range over seeds.
pub(super) fn epoch_chart(f: &mut Figures<'_>) -> Result<(), ReportError> {
    let epochs = load::read_epoch_curves(f.src, &curve_trials(f))?;
    if epochs.is_empty() {
        f.skip(
            "Per-epoch curves",
            "no epoch rows for trials that did not fail",
        );
        return Ok(());
    }
    let lines =
        f.a.variants
            .iter()
            .filter_map(|v| {
                Some(Line {
                    label: Figures::label(v),
                    colour: f.palette.get(&v.id),
                    data: epochs.get(&v.id)?.clone(),
                })
            })
            .collect();
    f.draw(
        &EpochChart { lines },
        stems::EPOCHS,
        "Per-epoch train and test curves",
        "Train and test loss and accuracy after each epoch: the line is the mean over seeds, the shaded band spans the lowest and highest seed.",
    )
}
