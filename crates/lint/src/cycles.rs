//! Import cycles between sibling modules: `a::x` naming something of `a::y` is an edge from `x`
//! to `y` under `a`; a strongly connected set of two or more siblings is a cycle. A module
//! naming its own parent or child (re-exports, `mod` declarations) makes no edge.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use crate::modules::Module;
use crate::paths::crate_paths;

/// A set of sibling modules that name each other in a circle, with where they do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    /// The modules, sorted (`config::expand`).
    pub modules: Vec<String>,
    /// `file:line -> module` for each edge inside the set.
    pub evidence: Vec<String>,
}

/// The longest prefix of `path` that is a module.
fn module_of<'a>(path: &[String], known: &'a BTreeSet<Vec<String>>) -> Option<&'a Vec<String>> {
    (0..=path.len()).rev().find_map(|n| known.get(&path[..n]))
}

/// The import cycles among the modules of one crate.
pub fn find_cycles(modules: &[Module]) -> io::Result<Vec<Cycle>> {
    let known: BTreeSet<Vec<String>> = modules.iter().map(|m| m.path.clone()).collect();
    // Sibling edge -> where it comes from.
    let mut edges: BTreeMap<(Vec<String>, Vec<String>), BTreeSet<String>> = BTreeMap::new();
    for m in modules {
        let text = std::fs::read_to_string(&m.file)?;
        for r in crate_paths(&m.path, &text) {
            let Some(target) = module_of(&r.path, &known) else {
                continue;
            };
            let common = m
                .path
                .iter()
                .zip(target)
                .take_while(|(a, b)| a == b)
                .count();
            if common == m.path.len() || common == target.len() {
                continue; // itself, an ancestor or a descendant
            }
            let from = m.path[..=common].to_vec();
            let to = target[..=common].to_vec();
            edges.entry((from, to)).or_default().insert(format!(
                "{}:{} -> {}",
                m.file.display(),
                r.line,
                target.join("::")
            ));
        }
    }
    let graph: BTreeMap<&Vec<String>, Vec<&Vec<String>>> =
        edges.keys().fold(BTreeMap::new(), |mut g, (a, b)| {
            g.entry(a).or_default().push(b);
            g
        });
    let mut cycles = Vec::new();
    for scc in strongly_connected(&graph) {
        if scc.len() < 2 {
            continue;
        }
        let set: BTreeSet<&Vec<String>> = scc.iter().copied().collect();
        let evidence = edges
            .iter()
            .filter(|((a, b), _)| set.contains(a) && set.contains(b))
            .flat_map(|(_, e)| e.iter().cloned())
            .collect();
        let mut names: Vec<String> = scc.iter().map(|p| p.join("::")).collect();
        names.sort();
        cycles.push(Cycle {
            modules: names,
            evidence,
        });
    }
    cycles.sort_by(|a, b| a.modules.cmp(&b.modules));
    Ok(cycles)
}

/// Tarjan's strongly connected components.
fn strongly_connected<'a>(
    graph: &BTreeMap<&'a Vec<String>, Vec<&'a Vec<String>>>,
) -> Vec<Vec<&'a Vec<String>>> {
    struct State<'a> {
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        on_stack: BTreeSet<&'a Vec<String>>,
        out: Vec<Vec<&'a Vec<String>>>,
    }
    fn visit<'a>(
        v: &'a Vec<String>,
        graph: &BTreeMap<&'a Vec<String>, Vec<&'a Vec<String>>>,
        s: &mut State<'a>,
    ) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for &w in graph.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(w, graph, s);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                scc.push(w);
                if w == v {
                    break;
                }
            }
            s.out.push(scc);
        }
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for &v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(v, graph, &mut s);
        }
    }
    s.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::crate_modules;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (f, text) in files {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    #[test]
    fn a_cycle_between_siblings_is_found_with_its_lines() {
        let dir = tree(&[
            ("lib.rs", "pub mod cfg;\npub use cfg::a::Thing;\n"),
            ("cfg/mod.rs", "pub mod a;\npub mod b;\npub mod c;\n"),
            ("cfg/a.rs", "use super::b::helper;\npub struct Thing;\n"),
            ("cfg/b.rs", "pub fn helper() { crate::cfg::c::f(); }\n"),
            (
                "cfg/c.rs",
                "pub fn f() {}\nfn g() -> super::a::Thing { todo!() }\n",
            ),
        ]);
        let cycles = find_cycles(&crate_modules(dir.path()).unwrap()).unwrap();
        assert_eq!(cycles.len(), 1, "{cycles:?}");
        assert_eq!(cycles[0].modules, ["cfg::a", "cfg::b", "cfg::c"]);
        assert_eq!(cycles[0].evidence.len(), 3);
        assert!(cycles[0]
            .evidence
            .iter()
            .any(|e| e.ends_with("a.rs:1 -> cfg::b")));
    }

    #[test]
    fn parents_children_and_one_way_edges_are_no_cycle() {
        let dir = tree(&[
            ("lib.rs", "pub mod a;\npub mod b;\npub use a::X;\n"),
            (
                "a/mod.rs",
                "pub mod inner;\npub use inner::X;\nuse crate::b::Y;\n",
            ),
            (
                "a/inner.rs",
                "pub struct X;\nuse super::super::b::Y;\nuse crate::a::X as Z;\n",
            ),
            ("b.rs", "pub struct Y;\nuse crate::X;\n"),
        ]);
        // b names `crate::X`, a re-export at the root: no edge to `a`, so no cycle.
        let cycles = find_cycles(&crate_modules(dir.path()).unwrap()).unwrap();
        assert!(cycles.is_empty(), "{cycles:?}");
    }
}
