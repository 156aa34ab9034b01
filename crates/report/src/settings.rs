//! What the report needs from each trial's resolved configuration (the `config` column of
//! trials.parquet, the trial's `config.toml`): whether two trials with the same seed saw the
//! same data stream (so they can be paired), and which source of randomness its seed drove
//! (for the variance split of `crate::noise`).
//!
//! A trial's data stream (which images, in which order, with which crops, flips, jitter and
//! rotations) is a function of the `[data]` table, `train.batch_size`, `train.random_streams`
//! and the seed keys `train.seed_varies` / `train.fixed_seed` together with the seed; never
//! of the model (crates/runner/tests/pairing.rs proves it for the baseline, SE and CBAM). Two
//! trials are paired by design when these inputs and the seed are equal.

use std::collections::HashMap;

use crate::load::Trial;

/// `[data]` keys that change where the data is read from, not what it is.
const STORAGE_KEYS: [&str; 4] = ["cache", "cache_dir", "download", "url"];
/// `[train]` keys the data stream depends on.
const STREAM_TRAIN_KEYS: [&str; 4] = ["batch_size", "random_streams", "seed_varies", "fixed_seed"];
/// `[train]` keys that choose which source of randomness the seed drives.
const SOURCE_KEYS: [&str; 2] = ["seed_varies", "fixed_seed"];
/// `train.seed_varies` when absent: the seed drives every source.
pub const ALL_SOURCES: &str = "all";

/// The parts of one trial's configuration the statistics use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialSettings {
    /// The inputs of the data stream besides the seed, as canonical text: equal keys and
    /// equal seeds mean the same batches.
    pub stream_key: String,
    /// `train.seed_varies`: which source the seed drives (`all`, `init`, `order`, `sample`).
    pub seed_varies: String,
    /// The whole configuration without `train.seed_varies` / `train.fixed_seed`: variants
    /// with the same key differ only in which source their seeds varied.
    pub source_group: String,
}

impl TrialSettings {
    /// Reads the settings from a trial's `config.toml` text; `None` when it is not TOML.
    pub fn from_config_toml(text: &str) -> Option<TrialSettings> {
        let doc: toml::Table = toml::from_str(text).ok()?;
        let empty = toml::Table::new();
        let table = |name: &str| doc.get(name).and_then(|v| v.as_table()).unwrap_or(&empty);
        let (data, model, train) = (table("data"), table("model"), table("train"));
        let mut stream = canonical("data", data, |k| !STORAGE_KEYS.contains(&k));
        stream.push_str(&canonical("train", train, |k| {
            STREAM_TRAIN_KEYS.contains(&k)
        }));
        let mut group = canonical("data", data, |k| !STORAGE_KEYS.contains(&k));
        group.push_str(&canonical("model", model, |_| true));
        group.push_str(&canonical("train", train, |k| !SOURCE_KEYS.contains(&k)));
        let seed_varies = train
            .get("seed_varies")
            .and_then(|v| v.as_str())
            .unwrap_or(ALL_SOURCES)
            .to_string();
        Some(TrialSettings {
            stream_key: stream,
            seed_varies,
            source_group: group,
        })
    }
}

/// One `table.key=value` line per kept key, sorted by key (TOML's own value syntax).
fn canonical(name: &str, table: &toml::Table, keep: impl Fn(&str) -> bool) -> String {
    let mut keys: Vec<&String> = table.keys().filter(|k| keep(k)).collect();
    keys.sort();
    keys.iter()
        .map(|k| format!("{name}.{k}={}\n", table[k.as_str()]))
        .collect()
}

/// The settings of every trial whose `config` (trials.parquet's column) parses, by trial id.
pub fn settings_by_trial(trials: &[Trial]) -> HashMap<String, TrialSettings> {
    trials
        .iter()
        .filter_map(|t| {
            let settings = TrialSettings::from_config_toml(&t.config)?;
            Some((t.trial_id.clone(), settings))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "experiment = \"x\"\nseed = 1\n[data]\ndataset = \"synthetic\"\naugment = [\"crop\", \"flip\"]\ncache = true\n[model]\nattention = \"none\"\n[train]\nepochs = 2\nbatch_size = 64\n";

    #[test]
    fn the_model_and_storage_do_not_change_the_stream() {
        let a = TrialSettings::from_config_toml(BASE).unwrap();
        let se = BASE.replace("attention = \"none\"", "attention = \"se\"");
        let b = TrialSettings::from_config_toml(&se).unwrap();
        assert_eq!(a.stream_key, b.stream_key);
        assert_ne!(a.source_group, b.source_group);
        let uncached = BASE.replace("cache = true", "cache = false");
        assert_eq!(
            TrialSettings::from_config_toml(&uncached)
                .unwrap()
                .stream_key,
            a.stream_key
        );
        assert_eq!(a.seed_varies, "all");
    }

    #[test]
    fn data_batch_and_seed_keys_change_the_stream() {
        let a = TrialSettings::from_config_toml(BASE).unwrap();
        for changed in [
            BASE.replace("[\"crop\", \"flip\"]", "[\"crop\"]"),
            BASE.replace("batch_size = 64", "batch_size = 32"),
            BASE.replace("epochs = 2\n", "epochs = 2\nseed_varies = \"init\"\n"),
        ] {
            let b = TrialSettings::from_config_toml(&changed).unwrap();
            assert_ne!(a.stream_key, b.stream_key, "{changed}");
        }
        let init = BASE.replace("epochs = 2\n", "epochs = 2\nseed_varies = \"init\"\n");
        let b = TrialSettings::from_config_toml(&init).unwrap();
        assert_eq!(b.seed_varies, "init");
        assert_eq!(a.source_group, b.source_group);
        assert_eq!(TrialSettings::from_config_toml("not toml ["), None);
    }
}
