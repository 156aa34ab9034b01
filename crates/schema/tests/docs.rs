//! docs/results.md lists exactly the tables, columns and types that `ablate_schema::tables`
//! defines, and the schema version this build writes.

use std::collections::BTreeMap;

use ablate_schema::tables::ALL;
use ablate_schema::SCHEMA_VERSION;

/// `table -> [(column, type as written)]`, from the markdown tables under each `## x.parquet`
/// heading (or an `x.parquet:` line, for a section that documents two tables).
fn documented_tables(text: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let heading = line
            .strip_prefix("## ")
            .and_then(|h| h.split_whitespace().next())
            .or_else(|| line.strip_suffix(':').filter(|l| !l.contains(' ')));
        if let Some(h) = heading {
            current = h
                .trim_end_matches(':')
                .strip_suffix(".parquet")
                .map(str::to_string);
            continue;
        }
        let (Some(table), Some(row)) = (&current, line.strip_prefix('|')) else {
            continue;
        };
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        if cells.len() < 2 || cells[0] == "column" || cells[0].starts_with("---") {
            continue;
        }
        // `List(UInt64): counts...`, `UInt32 (1-based)`: the type is the first word.
        let ty = cells[1]
            .split([' ', ':'])
            .next()
            .unwrap_or_default()
            .to_string();
        for name in cells[0].split(',') {
            out.entry(table.clone())
                .or_default()
                .push((name.trim().to_string(), ty.clone()));
        }
    }
    out
}

#[test]
fn results_md_documents_every_table_column_and_type() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/results.md");
    let text = std::fs::read_to_string(path).expect("docs/results.md");
    let docs = documented_tables(&text);
    let names: Vec<&str> = ALL.iter().map(|t| t.name).collect();
    assert_eq!(
        docs.keys().map(String::as_str).collect::<Vec<_>>(),
        {
            let mut n = names.clone();
            n.sort();
            n
        },
        "tables in docs/results.md"
    );
    for table in ALL {
        let mut listed = docs[table.name].clone();
        if table.axes_after.is_some() {
            let axis = listed
                .iter()
                .position(|(n, _)| n == "axis.<key>")
                .unwrap_or_else(|| panic!("{}: no `axis.<key>` row", table.name));
            assert_eq!(
                Some(listed[axis - 1].0.as_str()),
                table.axes_after,
                "{}: where `axis.<key>` stands",
                table.name
            );
            listed.remove(axis);
        }
        let defined: Vec<(String, String)> = table
            .columns
            .iter()
            .map(|c| (c.name.to_string(), c.ty.doc_name().to_string()))
            .collect();
        assert_eq!(listed, defined, "{}.parquet in docs/results.md", table.name);
    }
    let version = format!("(version {SCHEMA_VERSION})");
    assert!(
        text.lines().next().is_some_and(|l| l.contains(&version)),
        "the title of docs/results.md names {version}"
    );
    assert!(text.contains(&format!("currently `{SCHEMA_VERSION}`")));
}
