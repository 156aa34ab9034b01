//! report.md and the self-contained index.html.

use crate::tables::{
    baseline_sentence, html_escape, md_table, one_line, problem_rows, variant_headers,
    variant_rows, PROBLEM_HEADERS,
};
use crate::verdicts::{
    best_line, comparison_headers, comparison_notes, comparison_rows, pairing_line, variant_line,
};
use crate::Report;

/// Explanation printed under the variant table.
const TABLE_NOTES: &str = "Seeds: completed trials / all trials of the variant; † marks fewer than two completed seeds (no interval, no test). \
Accuracies are in percent, mean ± sample standard deviation over completed seeds; 95% CI: confidence interval of the mean from the t distribution. \
Δ vs baseline, p, the adjusted p and the verdict are the primary analysis of the comparisons table below (paired when the seeds pair, Welch's otherwise, marked); n/a: fewer than two seeds on a side, or no variance. \
★ best: better than the baseline after the adjustment, with the highest mean. \
s/epoch: training seconds per epoch (evaluation excluded); images/s: training throughput. Sorted by mean final test accuracy.";

/// The headline's bullet lines (Markdown with backtick code spans): the best variant, the
/// pairing, then one verdict per compared variant (nested).
fn headline(r: &Report) -> (Vec<(String, String)>, Vec<String>) {
    let a = r.analysis;
    let mut top = vec![("Baseline".to_string(), baseline_sentence(a))];
    let best = if a.top().is_none() {
        "none yet (no completed trial)".to_string()
    } else {
        best_line(a)
    };
    top.push(("Best".into(), best));
    if let Some(p) = pairing_line(a) {
        top.push(("Pairing".into(), p));
    }
    let lines: Vec<String> = a
        .variants
        .iter()
        .filter_map(|v| variant_line(v, a))
        .collect();
    (top, lines)
}

fn verdicts_title(r: &Report) -> String {
    let o = r.analysis.options;
    format!(
        "Verdicts ({}, α = {}; the difference of interest is {} points, `--effect`)",
        o.adjust.name(),
        o.alpha,
        o.effect_points
    )
}

fn summary_line(r: &Report) -> String {
    let c = r.counts;
    format!(
        "{} variants, {} trials: {} completed, {} failed, {} diverged, {} unfinished (running, pending or interrupted).",
        r.analysis.variants.len(),
        r.trials.len(),
        c.completed,
        c.failed,
        c.diverged,
        c.unfinished
    )
}

/// report.md: readable in a terminal and on GitHub.
pub fn markdown(r: &Report) -> String {
    let mut md = String::new();
    markdown_headline(r, &mut md);
    markdown_tables(r, &mut md);
    markdown_problems(r, &mut md);
    markdown_charts(r, &mut md);
    md
}

/// The title, summary line and headline list.
fn markdown_headline(r: &Report, md: &mut String) {
    let title = if r.experiment.is_empty() {
        "Ablation report".to_string()
    } else {
        format!("Ablation report: {}", r.experiment)
    };
    md.push_str(&format!("# {title}\n\n"));
    md.push_str(&summary_line(r));
    md.push_str("\n\n");
    let (top, lines) = headline(r);
    for (k, v) in &top {
        md.push_str(&format!("- {k}: {v}\n"));
    }
    if !lines.is_empty() {
        md.push_str(&format!("- {}:\n", verdicts_title(r)));
        for l in &lines {
            md.push_str(&format!("  - {l}\n"));
        }
    }
}

/// The variants table, the comparisons with the baseline and the noise sources.
fn markdown_tables(r: &Report, md: &mut String) {
    md.push_str("\n## Variants\n\n");
    if r.analysis.variants.is_empty() {
        md.push_str("No trials.\n");
    } else {
        let headers = variant_headers(r.analysis.options.adjust);
        md.push_str(&crate::tables::variant_table_md(
            &headers,
            &variant_rows(r.analysis),
        ));
        md.push('\n');
        md.push_str(TABLE_NOTES);
        md.push('\n');
    }
    let rows = comparison_rows(r.analysis);
    if !rows.is_empty() {
        md.push_str("\n## Comparisons with the baseline\n\n");
        let headers = comparison_headers(r.analysis);
        let h: Vec<&str> = headers.iter().map(String::as_str).collect();
        md.push_str(&md_table(&h, &rows));
        md.push('\n');
        md.push_str(&comparison_notes(r.analysis));
        md.push('\n');
    }
    if let Some(noise) = &r.noise {
        md.push_str("\n## Where the noise comes from\n\n");
        md.push_str(&noise.markdown());
    }
}

/// Failed, diverged and unfinished trials, each error on one line.
fn markdown_problems(r: &Report, md: &mut String) {
    md.push_str("\n## Failed, diverged and unfinished trials\n\n");
    let problems = problem_rows(r.trials);
    if problems.is_empty() {
        md.push_str("None: every trial completed.\n");
    } else {
        let rows: Vec<Vec<String>> = problems
            .into_iter()
            .map(|mut row| {
                let e = row.pop().unwrap_or_default();
                row.push(one_line(&e, 160));
                row
            })
            .collect();
        md.push_str(&md_table(&PROBLEM_HEADERS, &rows));
        md.push_str("\nThe full error text is in index.html and in each trial's `status.json` and `log.txt`.\n");
    }
}

/// The charts (PNG where drawn, else SVG) and the ones not drawn with why.
fn markdown_charts(r: &Report, md: &mut String) {
    md.push_str("\n## Charts\n");
    for c in &r.charts {
        let file = if c
            .files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "png"))
        {
            format!("{}.png", c.stem)
        } else {
            format!("{}.svg", c.stem)
        };
        md.push_str(&format!(
            "\n### {}\n\n{}\n\n![{}]({})\n",
            c.title, c.caption, c.title, file
        ));
    }
    if !r.skipped.is_empty() {
        md.push_str("\n### Charts not drawn\n\n");
        for (name, why) in &r.skipped {
            md.push_str(&format!("- {name}: {why}\n"));
        }
    }
}

const CSS: &str = "body{font-family:'DejaVu Sans',Verdana,sans-serif;margin:2em auto;max-width:1500px;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right;vertical-align:top}\
th{background:#f2f2f2}td.l,th.l{text-align:left}tr.best td{background:#fff4c2;font-weight:bold}tr.baseline td{background:#eef3fb}\
.tag{font-size:11px;border-radius:3px;padding:1px 4px;margin-left:4px;font-weight:normal}.tag.base{background:#d5e2f5}.tag.best{background:#f5d76e}\
.few{color:#a33}.notes{font-size:13px;color:#444;max-width:1100px}figure{margin:1.5em 0}figure svg,figure img{max-width:100%;height:auto;border:1px solid #eee}\
figcaption{font-size:14px;color:#444;max-width:1100px;margin-bottom:.5em}pre{white-space:pre-wrap;font-size:12px;margin:0;text-align:left;max-width:700px}";

/// Standard base64 (RFC 4648) for inlining PNG charts.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// Strips an XML declaration so an SVG document can be inlined in HTML.
fn inline_svg(svg: &str) -> &str {
    let s = svg.trim_start();
    if s.starts_with("<?xml") {
        if let Some(i) = s.find("?>") {
            return s[i + 2..].trim_start();
        }
    }
    s
}

/// A plain HTML table; the first `left` columns are left-aligned.
pub(crate) fn html_table(headers: &[String], rows: &[Vec<String>], left: usize) -> String {
    let e = html_escape;
    let cls = |i: usize| if i < left { " class=\"l\"" } else { "" };
    let mut h = String::from("<table><thead><tr>");
    for (i, head) in headers.iter().enumerate() {
        h.push_str(&format!("<th{}>{}</th>", cls(i), e(head)));
    }
    h.push_str("</tr></thead><tbody>\n");
    for row in rows {
        h.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            h.push_str(&format!("<td{}>{}</td>", cls(i), e(cell)));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table>\n");
    h
}

/// index.html: one page, no external resources.
pub fn html(r: &Report) -> String {
    let mut h = String::new();
    html_headline(r, &mut h);
    html_variants(r, &mut h);
    html_comparisons(r, &mut h);
    html_problems(r, &mut h);
    html_charts(r, &mut h);
    h.push_str("</body></html>\n");
    h
}

/// The page's head, title, summary line and headline list.
fn html_headline(r: &Report, h: &mut String) {
    let e = html_escape;
    let title = if r.experiment.is_empty() {
        "Ablation report".to_string()
    } else {
        format!("Ablation report: {}", r.experiment)
    };
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str(&format!(
        "<title>{}</title><style>{CSS}</style></head><body>\n",
        e(&title)
    ));
    h.push_str(&format!(
        "<h1>{}</h1>\n<p>{}</p>\n<ul>",
        e(&title),
        e(&summary_line(r))
    ));
    let code = |s: String| {
        // Render `x` spans as <code>.
        let mut out = String::new();
        for (i, part) in e(&s).split('`').enumerate() {
            if i % 2 == 1 {
                out.push_str(&format!("<code>{part}</code>"));
            } else {
                out.push_str(part);
            }
        }
        out
    };
    let (top, lines) = headline(r);
    for (k, v) in top {
        h.push_str(&format!("<li>{}: {}</li>", e(&k), code(v)));
    }
    if !lines.is_empty() {
        h.push_str(&format!("<li>{}:<ul>", code(verdicts_title(r))));
        for l in lines {
            h.push_str(&format!("<li>{}</li>", code(l)));
        }
        h.push_str("</ul></li>");
    }
    h.push_str("</ul>\n");
}

/// The variants table.
fn html_variants(r: &Report, h: &mut String) {
    let e = html_escape;
    h.push_str("<h2>Variants</h2>\n");
    if r.analysis.variants.is_empty() {
        h.push_str("<p>No trials.</p>\n");
    } else {
        h.push_str("<table><thead><tr>");
        for (i, head) in variant_headers(r.analysis.options.adjust)
            .iter()
            .enumerate()
        {
            let cls = if i < 2 { " class=\"l\"" } else { "" };
            h.push_str(&format!("<th{cls}>{}</th>", e(head)));
        }
        h.push_str("</tr></thead><tbody>\n");
        for row in variant_rows(r.analysis) {
            let cls = match (row.best, row.baseline) {
                (true, _) => " class=\"best\"",
                (false, true) => " class=\"baseline\"",
                _ => "",
            };
            h.push_str(&format!("<tr{cls}>"));
            for (i, cell) in row.cells.iter().enumerate() {
                let mut content = e(cell);
                if i == 0 {
                    if row.baseline {
                        content.push_str("<span class=\"tag base\">baseline</span>");
                    }
                    if row.best {
                        content.push_str("<span class=\"tag best\">best</span>");
                    }
                }
                if i == 2 && row.too_few {
                    content = format!("<span class=\"few\" title=\"fewer than two completed seeds: no interval or test\">{content} †</span>");
                }
                let cls = if i < 2 { " class=\"l\"" } else { "" };
                h.push_str(&format!("<td{cls}>{content}</td>"));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</tbody></table>\n");
        h.push_str(&format!("<p class=\"notes\">{}</p>\n", e(TABLE_NOTES)));
    }
}

/// The comparisons with the baseline and the noise sources.
fn html_comparisons(r: &Report, h: &mut String) {
    let e = html_escape;
    let rows = comparison_rows(r.analysis);
    if !rows.is_empty() {
        h.push_str("<h2>Comparisons with the baseline</h2>\n");
        h.push_str(&html_table(&comparison_headers(r.analysis), &rows, 1));
        h.push_str(&format!(
            "<p class=\"notes\">{}</p>\n",
            e(&comparison_notes(r.analysis))
        ));
    }
    if let Some(noise) = &r.noise {
        h.push_str("<h2>Where the noise comes from</h2>\n");
        h.push_str(&noise.html());
    }
}

/// Failed, diverged and unfinished trials, each error folded under its first line.
fn html_problems(r: &Report, h: &mut String) {
    let e = html_escape;
    h.push_str("<h2>Failed, diverged and unfinished trials</h2>\n");
    let problems = problem_rows(r.trials);
    if problems.is_empty() {
        h.push_str("<p>None: every trial completed.</p>\n");
    } else {
        h.push_str("<table><thead><tr>");
        for head in PROBLEM_HEADERS {
            h.push_str(&format!("<th class=\"l\">{}</th>", e(head)));
        }
        h.push_str("</tr></thead><tbody>\n");
        for row in problems {
            h.push_str("<tr>");
            let last = row.len() - 1;
            for (i, cell) in row.iter().enumerate() {
                if i == last {
                    if cell.trim().is_empty() {
                        h.push_str("<td class=\"l\">—</td>");
                    } else {
                        h.push_str(&format!(
                            "<td class=\"l\"><details><summary>{}</summary><pre>{}</pre></details></td>",
                            e(&one_line(cell, 100)),
                            e(cell)
                        ));
                    }
                } else {
                    h.push_str(&format!("<td class=\"l\">{}</td>", e(cell)));
                }
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</tbody></table>\n");
    }
}

/// The charts, inline, and the ones not drawn with why.
fn html_charts(r: &Report, h: &mut String) {
    let e = html_escape;
    h.push_str("<h2>Charts</h2>\n");
    for c in &r.charts {
        h.push_str(&format!(
            "<figure id=\"{}\"><h3>{}</h3><figcaption>{}</figcaption>\n",
            e(&c.stem),
            e(&c.title),
            e(&c.caption)
        ));
        if let Some(svg) = &c.svg {
            h.push_str(inline_svg(svg));
        } else if let Some(png) = &c.png {
            h.push_str(&format!(
                "<img alt=\"{}\" src=\"data:image/png;base64,{}\">",
                e(&c.title),
                base64(png)
            ));
        }
        h.push_str("\n</figure>\n");
    }
    if !r.skipped.is_empty() {
        h.push_str("<h3>Charts not drawn</h3><ul>");
        for (name, why) in &r.skipped {
            h.push_str(&format!("<li>{}: {}</li>", e(name), e(why)));
        }
        h.push_str("</ul>\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4648 section 10 test vectors.
    #[test]
    fn base64_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn xml_declaration_is_stripped() {
        assert_eq!(inline_svg("<?xml version=\"1.0\"?>\n<svg/>"), "<svg/>");
        assert_eq!(inline_svg("<svg/>"), "<svg/>");
    }
}
