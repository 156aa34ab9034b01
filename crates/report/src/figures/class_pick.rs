//! Which classes a per-class chart shows: every class up to [`SHOW_ALL_UP_TO`]; beyond (e.g.
//! CIFAR-100's 100 classes) the [`EACH_END`] ranked highest and the [`EACH_END`] ranked lowest
//! by the quantity the chart ranks, with a caption line saying so, instead of a 100-row chart.

/// A chart shows every class up to this many.
pub(super) const SHOW_ALL_UP_TO: usize = 20;
/// With more classes, this many from each end of the ranking.
pub(super) const EACH_END: usize = 10;

/// The classes a chart shows, and the caption line saying which when not all.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Shown {
    /// Class indices in the order drawn: all in class order, or the top classes (highest
    /// first) then the bottom ones (highest first, so the lowest is last).
    pub indices: Vec<usize>,
    /// The caption line, `None` when every class is shown.
    pub note: Option<String>,
}

impl Shown {
    /// `caption`, with the note appended when there is one.
    pub fn caption(&self, caption: &str) -> String {
        match &self.note {
            Some(n) => format!("{caption} {n}"),
            None => caption.to_string(),
        }
    }

    /// The entries of `all` (indexed by class) at the shown classes, in the order shown.
    pub fn select<T: Clone>(&self, all: &[T]) -> Vec<T> {
        self.indices
            .iter()
            .filter_map(|&i| all.get(i).cloned())
            .collect()
    }
}

/// Picks the classes to show from `score` (one per class; higher ranks first). `ranked_by`
/// completes "the 10 classes with the highest ...". A class whose score is not finite ranks
/// below every other; ties keep class order.
pub(super) fn pick(score: &[f64], ranked_by: &str) -> Shown {
    let n = score.len();
    if n <= SHOW_ALL_UP_TO {
        return Shown {
            indices: (0..n).collect(),
            note: None,
        };
    }
    let key = |i: usize| {
        if score[i].is_finite() {
            score[i]
        } else {
            f64::NEG_INFINITY
        }
    };
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b)));
    let mut indices = order[..EACH_END].to_vec();
    indices.extend_from_slice(&order[n - EACH_END..]);
    Shown {
        indices,
        note: Some(format!(
            "With {n} classes the chart shows only the {EACH_END} with the highest {ranked_by} \
             and then the {EACH_END} with the lowest, highest first; the other {} are left out \
             (they are in the Parquet tables).",
            n - 2 * EACH_END
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_classes_are_all_shown_in_class_order() {
        let s = pick(&[0.3, 0.9, 0.1], "accuracy");
        assert_eq!(s.indices, vec![0, 1, 2]);
        assert_eq!(s.note, None);
        assert_eq!(s.caption("Bars."), "Bars.");
        assert_eq!(pick(&[0.5; 20], "x").indices.len(), 20);
    }

    #[test]
    fn many_classes_show_the_top_and_bottom_ten() {
        // Class i scores (i * 37) % 100: a permutation of 0..100.
        let score: Vec<f64> = (0..100).map(|i| ((i * 37) % 100) as f64).collect();
        let s = pick(&score, "accuracy");
        let shown: Vec<f64> = s.indices.iter().map(|&i| score[i]).collect();
        let want: Vec<f64> = (90..100)
            .rev()
            .chain((0..10).rev())
            .map(f64::from)
            .collect();
        assert_eq!(shown, want);
        let note = s.note.clone().unwrap();
        assert!(
            note.contains("With 100 classes")
                && note.contains("the 10 with the highest accuracy")
                && note.contains("the other 80"),
            "{note}"
        );
        assert_eq!(s.caption("Bars."), format!("Bars. {note}"));
        let names: Vec<String> = (0..100).map(|i| format!("c{i}")).collect();
        // The highest score, 99, is class 27 (27 * 37 = 999).
        assert_eq!(s.select(&names)[0], "c27");
    }

    #[test]
    fn missing_scores_rank_last() {
        let mut score = vec![0.5; 30];
        score[3] = f64::NAN;
        score[7] = 0.9;
        let s = pick(&score, "x");
        assert_eq!(s.indices[0], 7);
        assert_eq!(*s.indices.last().unwrap(), 3);
    }
}
