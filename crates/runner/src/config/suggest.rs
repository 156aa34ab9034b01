//! "Did you mean" suggestions for misspelled keys and values.

/// Levenshtein edit distance between two strings (on chars).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `input`, if it is close enough to be a plausible
/// misspelling: an edit distance of at most 2 (or a third of the input's
/// length), or one being a prefix of the other (`flip_probability` for
/// `flip_prob`), at least 3 characters long. Case is ignored.
pub fn closest<'a, I>(input: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let input = input.to_lowercase();
    let limit = 2.max(input.chars().count() / 3);
    candidates
        .into_iter()
        .filter_map(|c| {
            let lc = c.to_lowercase();
            let d = edit_distance(&input, &lc);
            let prefix = lc.len().min(input.len()) >= 3
                && (input.starts_with(&lc) || lc.starts_with(&input));
            (d <= limit || prefix).then_some((d, c))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("augmnt", "augment"), 1);
        assert_eq!(edit_distance("reduciton", "reduction"), 2);
    }

    #[test]
    fn closest_candidate() {
        let keys = ["epochs", "batch_size", "lr", "optimizer"];
        assert_eq!(closest("epoch", keys), Some("epochs"));
        assert_eq!(closest("optimiser", keys), Some("optimizer"));
        assert_eq!(closest("Batch_Size", keys), Some("batch_size"));
        assert_eq!(closest("momentum", keys), None);
        assert_eq!(closest("batch", keys), Some("batch_size"));
        assert_eq!(closest("lr_rate", keys), None);
    }
}
