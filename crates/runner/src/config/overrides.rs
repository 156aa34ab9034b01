//! `--set key=value` overrides.

use std::fmt;
use std::str::FromStr;

use super::errors::ConfigError;

/// One `--set key=value`: a dotted key and a TOML value.
///
/// The value is parsed as a TOML value (`2`, `1e-3`, `true`, `[0, 1]`,
/// `"text"`); a value that is not valid TOML and does not start like an array,
/// table or quoted string is taken as a bare string, so `--set
/// model.attention=se` works without quotes.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The key's segments, e.g. `["train", "epochs"]`.
    pub key: Vec<String>,
    /// The value.
    pub value: toml::Value,
    /// The argument as given, for messages.
    pub text: String,
}

impl Override {
    /// The dotted key, e.g. `train.epochs`.
    pub fn dotted_key(&self) -> String {
        self.key.join(".")
    }

    /// Sets this override's value in `table`, creating intermediate tables.
    pub fn apply(&self, table: &mut toml::Table) -> Result<(), ConfigError> {
        let (last, parents) = self.key.split_last().expect("key is never empty");
        let mut cur = table;
        for (i, seg) in parents.iter().enumerate() {
            let entry = cur
                .entry(seg.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            cur = match entry {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(ConfigError::Override {
                        text: self.text.clone(),
                        message: format!("`{}` is not a table", self.key[..=i].join(".")),
                    })
                }
            };
        }
        cur.insert(last.clone(), self.value.clone());
        Ok(())
    }
}

impl fmt::Display for Override {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Override {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |message: String| ConfigError::Override {
            text: text.to_string(),
            message,
        };
        if text.trim().is_empty() {
            return Err(err(
                "the override is empty; expected KEY=VALUE, e.g. `train.epochs=2`".to_string(),
            ));
        }
        let (key, raw) = text
            .split_once('=')
            .ok_or_else(|| err("expected KEY=VALUE, e.g. `train.epochs=2`".to_string()))?;
        let key = key.trim();
        let segments: Vec<String> = key.split('.').map(|s| s.trim().to_string()).collect();
        if segments.iter().any(|s| {
            s.is_empty()
                || !s
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        }) {
            return Err(err(format!(
                "`{key}` is not a dotted key such as `train.epochs`"
            )));
        }
        if raw.trim().is_empty() {
            return Err(err(format!(
                "the value of `{key}` is empty; for an empty string write `{key}=\"\"` (in a \
                 shell: --set '{key}=\"\"')"
            )));
        }
        let value = parse_value(raw.trim()).map_err(err)?;
        Ok(Override {
            key: segments,
            value,
            text: text.to_string(),
        })
    }
}

/// Parses a command-line value as TOML, falling back to a bare string.
pub fn parse_value(raw: &str) -> Result<toml::Value, String> {
    let doc = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) if t.len() == 1 => Ok(t.remove("v").expect("one key `v`")),
        Ok(_) => Err(format!("`{raw}` is more than one value")),
        Err(e) => {
            let looks_structured = raw.starts_with(['[', '{', '"', '\'']);
            if looks_structured || raw.contains('\n') {
                Err(format!(
                    "`{raw}` is not a valid toml value: {}",
                    e.message().trim()
                ))
            } else {
                Ok(toml::Value::String(raw.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(s: &str) -> Override {
        s.parse().unwrap()
    }

    #[test]
    fn parses_typed_values() {
        assert_eq!(o("train.epochs=2").value, toml::Value::Integer(2));
        assert_eq!(o("train.lr=1e-3").value, toml::Value::Float(1e-3));
        assert_eq!(o("x.flag=true").value, toml::Value::Boolean(true));
        assert_eq!(
            o("seeds=[0, 1]").value,
            toml::Value::Array(vec![0.into(), 1.into()])
        );
        assert_eq!(
            o("model.attention=se").value,
            toml::Value::String("se".into())
        );
        assert_eq!(
            o("model.attention=\"se\"").value,
            toml::Value::String("se".into())
        );
        assert_eq!(
            o("data.path=data/c.tar.gz").value,
            toml::Value::String("data/c.tar.gz".into())
        );
        assert_eq!(o(" train.epochs = 3 ").key, vec!["train", "epochs"]);
        assert_eq!(o("a.b=x=y").value, toml::Value::String("x=y".into()));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "epochs",
            "",
            "  ",
            "train.epochs=",
            "data.path= ",
            "=3",
            "train..epochs=1",
            "train.ep chs=1",
            "seeds=[0,",
            "a=\"x",
        ] {
            let e = bad.parse::<Override>().unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("invalid override `--set {bad}`")),
                "{e}"
            );
        }
    }

    #[test]
    fn applies_into_nested_tables() {
        let mut t: toml::Table = toml::from_str("[train]\nepochs = 5\n").unwrap();
        o("train.epochs=1").apply(&mut t).unwrap();
        o("model.reduction=4").apply(&mut t).unwrap();
        assert_eq!(t["train"]["epochs"].as_integer(), Some(1));
        assert_eq!(t["model"]["reduction"].as_integer(), Some(4));
        let e = o("train.epochs.x=1").apply(&mut t).unwrap_err();
        assert!(
            e.to_string().contains("`train.epochs` is not a table"),
            "{e}"
        );
    }
}
