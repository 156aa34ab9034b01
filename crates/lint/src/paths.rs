//! The crate-relative paths a source file names: `crate::a::b`, `super::x`, `self::y`, in `use`
//! trees (`use super::{a, b::{c, d}}`) and inline (`super::de::describe(v)`). Comments, string
//! and character literals and the unit tests at the end of a file (`#[cfg(test)] mod tests`)
//! are left out.

/// One path named by a file, resolved from the crate root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRef {
    /// 1-based line where the path starts.
    pub line: usize,
    /// Its segments from the crate root (module names, then item names).
    pub path: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Other(char),
}

/// The text with comments and literal contents blanked (newlines kept, so line numbers hold),
/// cut before the unit tests.
fn code_only(text: &str) -> String {
    let cut = unit_tests_start(text).unwrap_or(text.len());
    let chars: Vec<char> = text[..cut].chars().collect();
    let mut out = String::with_capacity(cut);
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                out.push(blank(chars[i]));
                i += 1;
            }
            i += 2;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if let Some(&c) = chars.get(i) {
                    out.push(blank(c));
                }
                i += 1;
            }
            i += 1;
        } else if c == '\'' && (chars.get(i + 2) == Some(&'\'') || next == Some('\\')) {
            // A character literal (a lifetime has no closing quote).
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(' ');
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Byte offset of a `#[cfg(test)]` line followed by a `mod` line.
fn unit_tests_start(text: &str) -> Option<usize> {
    let mut offset = 0;
    let mut pending: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if let Some(start) = pending {
            if t.starts_with("mod ") {
                return Some(start);
            }
            if !t.is_empty() && !t.starts_with("#[") {
                pending = None;
            }
        }
        if t == "#[cfg(test)]" {
            pending = Some(offset);
        }
        offset += line.len();
    }
    None
}

fn tokens(code: &str) -> Vec<(usize, Token)> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((line, Token::Ident(chars[start..i].iter().collect())));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push((line, Token::PathSep));
            i += 2;
        } else {
            out.push((
                line,
                match c {
                    '{' => Token::Open,
                    '}' => Token::Close,
                    ',' => Token::Comma,
                    other => Token::Other(other),
                },
            ));
            i += 1;
        }
    }
    out
}

/// Parses a path (with `::{...}` groups) from `toks[*i]`, which is an identifier; returns every
/// full path it names, relative to where it starts.
fn parse_tree(toks: &[(usize, Token)], i: &mut usize) -> Vec<Vec<String>> {
    let mut prefix = Vec::new();
    loop {
        match toks.get(*i) {
            Some((_, Token::Ident(s))) => {
                prefix.push(s.clone());
                *i += 1;
            }
            _ => return vec![prefix],
        }
        if toks.get(*i).map(|t| &t.1) != Some(&Token::PathSep) {
            return vec![prefix];
        }
        *i += 1;
        if toks.get(*i).map(|t| &t.1) == Some(&Token::Open) {
            *i += 1;
            let mut out = Vec::new();
            while let Some((_, t)) = toks.get(*i) {
                match t {
                    Token::Close => {
                        *i += 1;
                        break;
                    }
                    Token::Comma => *i += 1,
                    Token::Ident(s) if s == "self" => {
                        out.push(prefix.clone());
                        *i += 1;
                    }
                    Token::Ident(_) => {
                        for sub in parse_tree(toks, i) {
                            out.push(prefix.iter().cloned().chain(sub).collect());
                        }
                    }
                    _ => *i += 1,
                }
            }
            return out;
        }
    }
}

/// The crate-relative paths named by the file of module `module` (its path from the crate
/// root), each resolved from the crate root. A `super` above the root is dropped.
pub fn crate_paths(module: &[String], text: &str) -> Vec<PathRef> {
    let toks = tokens(&code_only(text));
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let starts = matches!(&toks[i].1, Token::Ident(s) if s == "crate" || s == "super" || s == "self")
            && toks.get(i + 1).map(|t| &t.1) == Some(&Token::PathSep)
            && (i == 0 || !matches!(toks[i - 1].1, Token::PathSep | Token::Other('$')));
        if !starts {
            i += 1;
            continue;
        }
        let line = toks[i].0;
        for rel in parse_tree(&toks, &mut i) {
            if let Some(path) = resolve(module, &rel) {
                out.push(PathRef { line, path });
            }
        }
    }
    out
}

/// `crate::a`, `super::super::b`, `self::c` from `module`, as a path from the crate root.
fn resolve(module: &[String], rel: &[String]) -> Option<Vec<String>> {
    let mut base: Vec<String> = module.to_vec();
    let mut rest = rel;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        _ => {
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(module: &[&str], text: &str) -> Vec<String> {
        let m: Vec<String> = module.iter().map(|s| s.to_string()).collect();
        crate_paths(&m, text)
            .into_iter()
            .map(|p| format!("{}:{}", p.line, p.path.join("::")))
            .collect()
    }

    #[test]
    fn use_trees_and_inline_paths_resolve_from_the_root() {
        let text = "use super::{a, b::{c, self}};\n\
                    use crate::x::Y;\n\
                    fn f() { super::super::z::g(); self::inner::h(); }\n";
        assert_eq!(
            paths(&["p", "q"], text),
            [
                "1:p::a",
                "1:p::b::c",
                "1:p::b",
                "2:x::Y",
                "3:z::g",
                "3:p::q::inner::h"
            ]
        );
    }

    #[test]
    fn comments_strings_macros_and_unit_tests_are_left_out() {
        let text = "// use crate::a;\n/* crate::b */\nlet s = \"crate::c\";\nlet c = ':';\n\
                    macro_rules! m { () => { $crate::d } }\nuse crate::e;\n\
                    #[cfg(test)]\nmod tests {\n    use crate::f;\n}\n";
        assert_eq!(paths(&["m"], text), ["6:e"]);
    }
}
