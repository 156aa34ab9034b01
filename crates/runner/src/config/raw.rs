//! Pass 1: the raw TOML document, with the position of every key and value.
//!
//! Values are parsed into a plain [`toml::Table`]; a second, spanned parse
//! (`toml::de::DeTable`) records where each key and value sits in the text, so
//! that every later error can name `FILE:LINE:COLUMN`.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use super::errors::{ConfigError, Location};

/// Where one key and its value are in the text (byte ranges).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spans {
    /// The key (for an array element: the element itself).
    pub key: Range<usize>,
    /// The value.
    pub value: Range<usize>,
}

/// A parsed TOML file: its text, its values, and the spans of its keys.
///
/// Span paths are key segments as written: the grid key `"model.reduction"`
/// is one segment; array elements are their decimal index.
#[derive(Debug, Clone)]
pub struct RawDoc {
    /// The file the text came from (as given, for messages).
    pub path: PathBuf,
    /// The file's text.
    pub text: String,
    /// The parsed values.
    pub table: toml::Table,
    spans: HashMap<Vec<String>, Spans>,
}

impl RawDoc {
    /// Reads and parses a TOML file.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, text)
    }

    /// Parses TOML text that came from `path`.
    pub fn parse(path: &Path, text: String) -> Result<Self, ConfigError> {
        let syntax = |e: toml::de::Error, doc: &str| ConfigError::Syntax {
            location: match e.span() {
                Some(span) => location_in(path, doc, span.start),
                None => Location::Whole {
                    path: path.to_path_buf(),
                },
            },
            message: e.message().trim().to_string(),
        };
        let spanned = DeTable::parse(&text).map_err(|e| syntax(e, &text))?;
        let mut spans = HashMap::new();
        let mut prefix = Vec::new();
        collect_table(spanned.get_ref(), &mut prefix, &mut spans);
        let table: toml::Table = toml::from_str(&text).map_err(|e| syntax(e, &text))?;
        Ok(RawDoc {
            path: path.to_path_buf(),
            text,
            table,
            spans,
        })
    }

    /// The spans of the key at `path` (segments as written), if it is in the file.
    pub fn spans<S: AsRef<str>>(&self, path: &[S]) -> Option<&Spans> {
        let key: Vec<String> = path.iter().map(|s| s.as_ref().to_string()).collect();
        self.spans.get(&key)
    }

    /// The location of the key at `path`, or of its longest prefix present in
    /// the file, or the file as a whole. `value` picks the value's position
    /// instead of the key's for the exact match.
    pub fn locate<S: AsRef<str>>(&self, path: &[S], value: bool) -> Location {
        for n in (1..=path.len()).rev() {
            if let Some(s) = self.spans(&path[..n]) {
                let offset = if value && n == path.len() {
                    s.value.start
                } else {
                    s.key.start
                };
                return self.location(offset);
            }
        }
        Location::Whole {
            path: self.path.clone(),
        }
    }

    /// The line and column of a byte offset.
    pub fn location(&self, offset: usize) -> Location {
        location_in(&self.path, &self.text, offset)
    }
}

/// 1-based line and column (in characters) of `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

fn location_in(path: &Path, text: &str, offset: usize) -> Location {
    let (line, column) = line_col(text, offset);
    Location::File {
        path: path.to_path_buf(),
        line,
        column,
    }
}

fn collect_table(
    table: &DeTable<'_>,
    prefix: &mut Vec<String>,
    out: &mut HashMap<Vec<String>, Spans>,
) {
    for (key, value) in table.iter() {
        prefix.push(key.get_ref().to_string());
        out.insert(
            prefix.clone(),
            Spans {
                key: key.span(),
                value: value.span(),
            },
        );
        collect_value(value.get_ref(), prefix, out);
        prefix.pop();
    }
}

fn collect_value(
    value: &DeValue<'_>,
    prefix: &mut Vec<String>,
    out: &mut HashMap<Vec<String>, Spans>,
) {
    match value {
        DeValue::Table(t) => collect_table(t, prefix, out),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                prefix.push(i.to_string());
                out.insert(
                    prefix.clone(),
                    Spans {
                        key: item.span(),
                        value: item.span(),
                    },
                );
                collect_value(item.get_ref(), prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        let t = "a = 1\nbé = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(line_col(t, 10), (2, 4));
    }

    #[test]
    fn spans_of_keys_tables_and_arrays() {
        let text = "name = 'x'\n\n[model]\nreduction = 8\n\n[[grid]]\n\n[[grid]]\n\"model.reduction\" = [2, 4]\n";
        let doc = RawDoc::parse(Path::new("e.toml"), text.to_string()).unwrap();
        let at = |p: &[&str], v: bool| doc.locate(p, v).to_string();
        assert_eq!(at(&["name"], false), "e.toml:1:1");
        assert_eq!(at(&["model", "reduction"], false), "e.toml:4:1");
        assert_eq!(at(&["model", "reduction"], true), "e.toml:4:13");
        assert_eq!(at(&["grid", "1", "model.reduction"], false), "e.toml:9:1");
        assert_eq!(
            at(&["grid", "1", "model.reduction", "1"], true),
            "e.toml:9:25"
        );
        // Not in the file: the longest prefix that is.
        assert_eq!(at(&["model", "placement"], false), "e.toml:3:2");
        assert_eq!(at(&["train", "epochs"], false), "e.toml");
    }

    #[test]
    fn syntax_error_has_position() {
        let e = RawDoc::parse(Path::new("e.toml"), "a = 1\nb = \n".to_string()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("e.toml:2:"), "{msg}");
    }
}
