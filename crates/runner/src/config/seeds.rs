//! The `seeds` key: a fixed list (`seeds = [0, 1, 2]`), or seeds chosen by precision
//! (`[seeds] start = 3, max = 20, ci_half_width = 0.3`): every variant starts with seeds
//! `0..start`, and after each round the sweep adds seeds only to the variants whose 95%
//! confidence interval of the difference with the baseline is still wider than
//! `± ci_half_width` points, up to `max` (`crate::commands::seed_rounds`).

use super::errors::ConfigError;
use super::sections::Locate;
use super::suggest;

/// The keys of a `[seeds]` table.
pub const SEED_KEYS: [&str; 3] = ["start", "max", "ci_half_width"];
/// `seeds.start` when not given.
pub const DEFAULT_START: u32 = 3;
/// `seeds.max` when not given.
pub const DEFAULT_MAX: u32 = 20;

/// Seeds chosen by precision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Precision {
    /// Seeds every variant starts with: `0..start` (at least 2).
    pub start: u32,
    /// The most seeds a variant gets: `0..max`.
    pub max: u32,
    /// The target half-width of the 95% interval of the difference with the baseline, in
    /// points of test accuracy.
    pub ci_half_width: f64,
}

/// The experiment's seeds.
#[derive(Debug, Clone, PartialEq)]
pub enum SeedPlan {
    /// Every variant runs every listed seed.
    Fixed(Vec<u64>),
    /// Seeds added by rounds until the comparisons are precise.
    Precision(Precision),
}

impl SeedPlan {
    /// The seeds of the first round: the list, or `0..start`.
    pub fn first_round(&self) -> Vec<u64> {
        match self {
            SeedPlan::Fixed(s) => s.clone(),
            SeedPlan::Precision(p) => (0..u64::from(p.start)).collect(),
        }
    }

    /// The most seeds a variant can run: the list's length, or `max`.
    pub fn most_seeds(&self) -> usize {
        match self {
            SeedPlan::Fixed(s) => s.len(),
            SeedPlan::Precision(p) => p.max as usize,
        }
    }

    /// The precision rule, if seeds are chosen by precision.
    pub fn precision(&self) -> Option<Precision> {
        match self {
            SeedPlan::Precision(p) => Some(*p),
            SeedPlan::Fixed(_) => None,
        }
    }

    /// Parses the `seeds` value: absent (`[0]`), an integer, a list of integers, or a table.
    pub fn parse(value: Option<&toml::Value>, at: &dyn Locate) -> Result<SeedPlan, ConfigError> {
        match value {
            None => Ok(SeedPlan::Fixed(vec![0])),
            Some(toml::Value::Table(t)) => Ok(SeedPlan::Precision(parse_table(t, at)?)),
            Some(v) => Ok(SeedPlan::Fixed(parse_list(v, at)?)),
        }
    }

    /// The value as TOML (what `experiment.toml` records).
    pub fn to_toml(&self) -> toml::Value {
        match self {
            SeedPlan::Fixed(s) => {
                toml::Value::Array(s.iter().map(|&x| toml::Value::Integer(x as i64)).collect())
            }
            SeedPlan::Precision(p) => {
                let mut t = toml::Table::new();
                t.insert("start".into(), toml::Value::Integer(i64::from(p.start)));
                t.insert("max".into(), toml::Value::Integer(i64::from(p.max)));
                t.insert("ci_half_width".into(), toml::Value::Float(p.ci_half_width));
                toml::Value::Table(t)
            }
        }
    }
}

fn invalid(at: &dyn Locate, path: &[&str], key: &str, message: String) -> ConfigError {
    ConfigError::InvalidValue {
        location: at.locate(&path.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
        key: key.to_string(),
        message,
    }
}

fn parse_table(t: &toml::Table, at: &dyn Locate) -> Result<Precision, ConfigError> {
    for k in t.keys() {
        if !SEED_KEYS.contains(&k.as_str()) {
            return Err(ConfigError::UnknownKey {
                location: at.locate(&["seeds".to_string(), k.clone()]),
                key: format!("seeds.{k}"),
                suggestion: suggest::closest(k, SEED_KEYS).map(str::to_string),
                expected: SEED_KEYS.iter().map(|s| s.to_string()).collect(),
            });
        }
    }
    let int = |key: &str, default: u32| -> Result<u32, ConfigError> {
        match t.get(key) {
            None => Ok(default),
            Some(toml::Value::Integer(n)) if (2..=100_000).contains(n) => Ok(*n as u32),
            Some(other) => Err(invalid(
                at,
                &["seeds", key],
                &format!("seeds.{key}"),
                format!(
                    "expected an integer between 2 and 100000, found {}",
                    super::de::describe(other)
                ),
            )),
        }
    };
    let start = int("start", DEFAULT_START)?;
    let max = int("max", DEFAULT_MAX.max(start))?;
    if max < start {
        return Err(invalid(
            at,
            &["seeds", "max"],
            "seeds.max",
            format!("must be at least seeds.start ({start}), got {max}"),
        ));
    }
    let ci_half_width = match t.get("ci_half_width") {
        Some(toml::Value::Float(x)) if x.is_finite() && *x > 0.0 => *x,
        Some(toml::Value::Integer(n)) if *n > 0 => *n as f64,
        None => {
            return Err(invalid(
                at,
                &["seeds"],
                "seeds.ci_half_width",
                "is required in a [seeds] table: the target half-width of the 95% interval \
                 of the difference with the baseline, in points (e.g. 0.3); a fixed list is \
                 `seeds = [0, 1, 2]`"
                    .into(),
            ))
        }
        Some(other) => {
            return Err(invalid(
                at,
                &["seeds", "ci_half_width"],
                "seeds.ci_half_width",
                format!(
                    "expected a number of points > 0, found {}",
                    super::de::describe(other)
                ),
            ))
        }
    };
    Ok(Precision {
        start,
        max,
        ci_half_width,
    })
}

fn parse_list(value: &toml::Value, at: &dyn Locate) -> Result<Vec<u64>, ConfigError> {
    let items = match value {
        toml::Value::Array(items) => items.as_slice(),
        toml::Value::Integer(_) => std::slice::from_ref(value),
        other => {
            return Err(invalid(
                at,
                &["seeds"],
                "seeds",
                format!(
                    "expected a list of integers such as [0, 1, 2] or a [seeds] table, found {}",
                    super::de::describe(other)
                ),
            ))
        }
    };
    if items.is_empty() {
        return Err(invalid(
            at,
            &["seeds"],
            "seeds",
            "the list is empty: give at least one seed".into(),
        ));
    }
    let mut seeds = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let seed = match item {
            toml::Value::Integer(n) if *n >= 0 => *n as u64,
            other => {
                return Err(ConfigError::InvalidValue {
                    location: at.locate(&["seeds".to_string(), i.to_string()]),
                    key: format!("seeds[{i}]"),
                    message: format!(
                        "expected an integer >= 0, found {}",
                        super::de::describe(other)
                    ),
                })
            }
        };
        if seeds.contains(&seed) {
            return Err(ConfigError::InvalidValue {
                location: at.locate(&["seeds".to_string(), i.to_string()]),
                key: format!("seeds[{i}]"),
                message: format!("seed {seed} is listed twice"),
            });
        }
        seeds.push(seed);
    }
    Ok(seeds)
}

/// The command line's precision flags (`--ci-half-width`, `--seeds-start`, `--seeds-max`)
/// applied to `plan`: they turn a seed list into seeds by precision (the flag
/// `--ci-half-width` is then required) or change a `[seeds]` table's values.
pub fn apply_flags(
    plan: &SeedPlan,
    ci_half_width: Option<f64>,
    start: Option<u32>,
    max: Option<u32>,
) -> Result<SeedPlan, ConfigError> {
    if ci_half_width.is_none() && start.is_none() && max.is_none() {
        return Ok(plan.clone());
    }
    let err = |text: String, message: String| ConfigError::Override { text, message };
    let base = match plan {
        SeedPlan::Precision(p) => *p,
        SeedPlan::Fixed(_) => {
            let Some(c) = ci_half_width else {
                return Err(err(
                    "--seeds-start/--seeds-max".into(),
                    "the experiment has a fixed seed list; choosing seeds by precision needs \
                     --ci-half-width PTS"
                        .into(),
                ));
            };
            Precision {
                start: DEFAULT_START,
                max: DEFAULT_MAX,
                ci_half_width: c,
            }
        }
    };
    let p = Precision {
        start: start.unwrap_or(base.start),
        max: max.unwrap_or(base.max.max(start.unwrap_or(base.start))),
        ci_half_width: ci_half_width.unwrap_or(base.ci_half_width),
    };
    if !(p.ci_half_width.is_finite() && p.ci_half_width > 0.0) {
        return Err(err(
            format!("--ci-half-width {}", p.ci_half_width),
            "must be a number of points > 0".into(),
        ));
    }
    if p.start < 2 {
        return Err(err(
            format!("--seeds-start {}", p.start),
            "must be at least 2 (a confidence interval needs two seeds)".into(),
        ));
    }
    if p.max < p.start {
        return Err(err(
            format!("--seeds-max {}", p.max),
            format!("must be at least the start ({})", p.start),
        ));
    }
    Ok(SeedPlan::Precision(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::errors::Location;

    struct Nowhere;
    impl Locate for Nowhere {
        fn locate(&self, _: &[String]) -> Location {
            Location::Whole {
                path: "x.toml".into(),
            }
        }
    }

    fn parse(text: &str) -> Result<SeedPlan, ConfigError> {
        let t: toml::Table = toml::from_str(text).unwrap();
        SeedPlan::parse(t.get("seeds"), &Nowhere)
    }

    #[test]
    fn lists_and_tables() {
        assert_eq!(parse("").unwrap(), SeedPlan::Fixed(vec![0]));
        assert_eq!(
            parse("seeds = [3, 1]").unwrap(),
            SeedPlan::Fixed(vec![3, 1])
        );
        let p = parse("[seeds]\nstart = 3\nmax = 20\nci_half_width = 0.3\n").unwrap();
        assert_eq!(
            p,
            SeedPlan::Precision(Precision {
                start: 3,
                max: 20,
                ci_half_width: 0.3
            })
        );
        assert_eq!(p.first_round(), vec![0, 1, 2]);
        assert_eq!(parse(&format!("seeds = {}", p.to_toml())).unwrap(), p);
        let p = parse("seeds = { ci_half_width = 1 }").unwrap();
        assert_eq!(p.precision().unwrap().start, DEFAULT_START);
        assert_eq!(p.precision().unwrap().max, DEFAULT_MAX);
    }

    #[test]
    fn bad_tables_name_the_key() {
        let e = parse("[seeds]\nstart = 3\n").unwrap_err().to_string();
        assert!(
            e.contains("seeds.ci_half_width") && e.contains("required"),
            "{e}"
        );
        let e = parse("[seeds]\nstrat = 3\nci_half_width = 0.3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("seeds.strat") && e.contains("start"), "{e}");
        let e = parse("[seeds]\nstart = 5\nmax = 4\nci_half_width = 0.3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("seeds.max") && e.contains("at least"), "{e}");
        let e = parse("[seeds]\nstart = 1\nci_half_width = 0.3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("seeds.start"), "{e}");
        let e = parse("[seeds]\nci_half_width = -1.0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("seeds.ci_half_width"), "{e}");
        let e = parse("seeds = [1, 1]").unwrap_err().to_string();
        assert!(e.contains("listed twice"), "{e}");
    }

    #[test]
    fn flags_turn_a_list_into_precision() {
        let list = SeedPlan::Fixed(vec![0, 1]);
        assert_eq!(apply_flags(&list, None, None, None).unwrap(), list);
        let p = apply_flags(&list, Some(0.5), None, Some(10)).unwrap();
        assert_eq!(
            p,
            SeedPlan::Precision(Precision {
                start: 3,
                max: 10,
                ci_half_width: 0.5
            })
        );
        assert!(apply_flags(&list, None, Some(4), None).is_err());
        assert!(
            apply_flags(&p, None, Some(12), None)
                .unwrap()
                .precision()
                .unwrap()
                .max
                >= 12
        );
        assert!(apply_flags(&p, None, Some(1), None).is_err());
        assert!(apply_flags(&p, Some(0.0), None, None).is_err());
    }
}
