//! The modules of a library crate from its file tree: `src/lib.rs` is the root, `src/a.rs` or
//! `src/a/mod.rs` is `a`, `src/a/b.rs` is `a::b`. Binary targets (`src/main.rs`, `src/bin/`) are
//! crates of their own and are left out; modules declared inline (`mod tests { .. }`) belong to
//! their file.

use std::io;
use std::path::{Path, PathBuf};

/// One file module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Its path from the crate root (empty for the root).
    pub path: Vec<String>,
    /// Its file.
    pub file: PathBuf,
}

impl Module {
    /// `a::b`, or `crate` for the root.
    pub fn name(&self) -> String {
        if self.path.is_empty() {
            "crate".to_string()
        } else {
            self.path.join("::")
        }
    }
}

/// The file modules of the library crate whose source folder is `src` (none without a
/// `lib.rs`), sorted by path.
pub fn crate_modules(src: &Path) -> io::Result<Vec<Module>> {
    if !src.join("lib.rs").is_file() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    walk(src, src, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk(src: &Path, dir: &Path, out: &mut Vec<Module>) -> io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    entries.sort();
    for path in entries {
        let rel = path.strip_prefix(src).unwrap_or(&path);
        if path.is_dir() {
            if rel != Path::new("bin") {
                walk(src, &path, out)?;
            }
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") || rel == Path::new("main.rs") {
            continue;
        }
        let mut segs: Vec<String> = rel
            .with_extension("")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if segs.last().is_some_and(|s| s == "mod" || s == "lib") {
            segs.pop();
        }
        out.push(Module {
            path: segs,
            file: path.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_layout_gives_module_paths() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path();
        for f in [
            "lib.rs",
            "main.rs",
            "a.rs",
            "b/mod.rs",
            "b/c.rs",
            "bin/tool.rs",
        ] {
            let p = src.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        let names: Vec<String> = crate_modules(src)
            .unwrap()
            .iter()
            .map(Module::name)
            .collect();
        assert_eq!(names, ["crate", "a", "b", "b::c"]);
    }
}
