//! Charts: each one drawn once per backend (SVG and PNG) from the same code.
//!
//! Text uses DejaVu Sans, embedded in the crate and registered with plotters'
//! `ab_glyph` font loader under the family name `sans-serif`, so charts render
//! identically on machines without system fonts (CI).

pub mod classes;
pub mod compare;
pub mod curves;
pub mod differences;
pub mod inside;
pub mod interval_row;
pub mod stems;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{DrawError, ReportError};
use crate::ChartFormats;

/// DejaVu Sans 2.37 (Debian fonts-dejavu-core); license in assets/DejaVuSans-LICENSE.txt.
static FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// The font family every chart uses.
pub const FONT: &str = "sans-serif";
/// Chart title size in pixels.
pub const TITLE_SIZE: u32 = 26;
/// Axis description size.
pub const AXIS_SIZE: u32 = 19;
/// Tick label size.
pub const TICK_SIZE: u32 = 15;
/// Legend label size.
pub const LEGEND_SIZE: u32 = 15;

/// Registers the embedded font once per process.
pub fn ensure_font() -> Result<(), ReportError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(ReportError::Font)
    }
}

/// A chart that can be drawn on any plotters backend.
pub trait Chart {
    /// Pixel size (width, height).
    fn size(&self) -> (u32, u32);
    /// Draws the whole chart onto `root` (already filled white).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError>
    where
        DB::ErrorType: 'static;
}

/// A chart written to disk.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// File stem (e.g. `loss_iterations`).
    pub stem: String,
    /// Heading shown above the chart.
    pub title: String,
    /// One or two sentences on how to read it.
    pub caption: String,
    /// The SVG document, when SVG was drawn.
    pub svg: Option<String>,
    /// The PNG bytes, when PNG was drawn.
    pub png: Option<Vec<u8>>,
    /// Files written.
    pub files: Vec<PathBuf>,
}

fn chart_err(stem: &str) -> impl FnOnce(DrawError) -> ReportError + '_ {
    move |source| ReportError::Chart {
        chart: stem.to_string(),
        source,
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    std::fs::write(path, bytes).map_err(|source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Draws `chart` in the requested formats into `dir/<stem>.{svg,png}`.
pub fn render(
    chart: &impl Chart,
    dir: &Path,
    stem: &str,
    title: &str,
    caption: &str,
    formats: ChartFormats,
) -> Result<Rendered, ReportError> {
    ensure_font()?;
    let (w, h) = chart.size();
    let mut out = Rendered {
        stem: stem.to_string(),
        title: title.to_string(),
        caption: caption.to_string(),
        svg: None,
        png: None,
        files: Vec::new(),
    };
    // The HTML page needs at least one format inline.
    let svg_wanted = formats.svg || !formats.png;
    if svg_wanted {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
            let draw = || -> Result<(), DrawError> {
                root.fill(&WHITE)?;
                chart.draw(&root)?;
                root.present()?;
                Ok(())
            };
            draw().map_err(chart_err(stem))?;
        }
        if formats.svg {
            let path = dir.join(format!("{stem}.svg"));
            write_file(&path, svg.as_bytes())?;
            out.files.push(path);
        }
        out.svg = Some(svg);
    }
    if formats.png {
        let mut buf = vec![0u8; w as usize * h as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
            let draw = || -> Result<(), DrawError> {
                root.fill(&WHITE)?;
                chart.draw(&root)?;
                root.present()?;
                Ok(())
            };
            draw().map_err(chart_err(stem))?;
        }
        let png = encode_png(&buf, w, h).map_err(chart_err(stem))?;
        let path = dir.join(format!("{stem}.png"));
        write_file(&path, &png)?;
        out.files.push(path);
        out.png = Some(png);
    }
    Ok(out)
}

/// Encodes an RGB8 buffer as PNG.
pub fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>, DrawError> {
    use image::ImageEncoder;
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png).write_image(
        rgb,
        w,
        h,
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(png)
}

/// Tableau 10, the matplotlib default cycle: distinguishable and familiar.
const TAB10: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Colour for the i-th series of a chart whose series are not variants
/// (classes, groups of an axis chart).
pub fn series_colour(i: usize) -> RGBColor {
    if i < TAB10.len() {
        TAB10[i]
    } else {
        golden_colour(i)
    }
}

fn golden_colour(i: usize) -> RGBColor {
    // Hues spread by the golden angle, moderately saturated and dark enough on white.
    let h = (i as f64 * 0.618_033_988_75).fract();
    let c = HSLColor(h, 0.65, 0.42);
    let (r, g, b) = c.rgb();
    RGBColor(r, g, b)
}

/// The colour of each variant, the same in every chart: the baseline is
/// near-black, the others follow Tableau 10 in order of first appearance.
#[derive(Debug, Clone, Default)]
pub struct Palette {
    colours: HashMap<String, RGBColor>,
}

impl Palette {
    /// Assigns colours to `(variant_id, order, is_baseline)`.
    pub fn new<'a>(variants: impl IntoIterator<Item = (&'a str, usize, bool)>) -> Self {
        let mut v: Vec<(&str, usize, bool)> = variants.into_iter().collect();
        v.sort_by_key(|x| x.1);
        let mut colours = HashMap::new();
        let mut k = 0;
        for (id, _, baseline) in v {
            let c = if baseline {
                RGBColor(40, 40, 40)
            } else {
                k += 1;
                series_colour(k - 1)
            };
            colours.insert(id.to_string(), c);
        }
        Self { colours }
    }

    /// The colour of a variant.
    pub fn get(&self, variant_id: &str) -> RGBColor {
        self.colours
            .get(variant_id)
            .copied()
            .unwrap_or(RGBColor(100, 100, 100))
    }
}

/// Text style of the given size in the chart font.
pub fn font(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

/// A padded range around values; `fallback` when there are none.
pub fn padded_range(
    values: impl IntoIterator<Item = f64>,
    pad: f64,
    fallback: (f64, f64),
) -> (f64, f64) {
    let (lo, hi) = values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return fallback;
    }
    let span = hi - lo;
    let span = if span > 0.0 {
        span
    } else {
        lo.abs().max(1e-3) * 0.1
    };
    (lo - pad * span, hi + pad * span)
}

/// Label text width in pixels for a label-area size.
pub fn text_width<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, text: &str, size: u32) -> u32 {
    area.estimate_text_size(text, &font(size))
        .map(|(w, _)| w)
        .unwrap_or((text.chars().count() as u32) * size * 6 / 10)
}

/// Shortens a label to `max` characters with an ellipsis.
pub fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Decimals that keep about `ticks` evenly spaced labels over `lo..hi`
/// distinct (0.51, 0.515, 0.52 rather than 0.51, 0.51, 0.52).
pub fn tick_decimals(lo: f64, hi: f64, ticks: usize) -> usize {
    let step = (hi - lo).abs() / ticks.max(1) as f64;
    if !step.is_finite() || step <= 0.0 {
        return 2;
    }
    (-step.log10().floor()).clamp(0.0, 6.0) as usize
}

/// The part of a percent range that accuracies can take: a confidence
/// interval of the mean from two seeds can reach past 0 or 100.
pub fn clamp_percent((lo, hi): (f64, f64)) -> (f64, f64) {
    let lo = lo.max(0.0);
    let hi = hi.min(100.0);
    if hi > lo {
        (lo, hi)
    } else {
        (0.0, 100.0)
    }
}

/// Appends ` (baseline)` to a baseline's label unless the label is `baseline` itself (the
/// runner's label of a variant with no swept key).
pub fn baseline_label(label: &str, is_baseline: bool) -> String {
    if is_baseline && label != "baseline" {
        format!("{label} (baseline)")
    } else {
        label.to_string()
    }
}

/// Formats an accuracy tick in percent.
pub fn pct_tick(v: &f64) -> String {
    format!("{v:.0}")
}

/// Integer tick label from a list of category names.
pub fn category_tick(labels: &[String], v: f64) -> String {
    let r = v.round();
    if (v - r).abs() < 1e-6 && r >= 0.0 && (r as usize) < labels.len() {
        labels[r as usize].clone()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_decimals_follow_the_step() {
        assert_eq!(tick_decimals(0.0, 100.0, 10), 0);
        assert_eq!(tick_decimals(0.48, 0.53, 10), 3);
        assert_eq!(tick_decimals(0.4, 0.6, 10), 2);
    }

    #[test]
    fn percent_ranges_are_clamped() {
        assert_eq!(clamp_percent((-6.0, 48.0)), (0.0, 48.0));
        assert_eq!(clamp_percent((90.0, 104.0)), (90.0, 100.0));
    }

    #[test]
    fn baseline_is_marked_once() {
        assert_eq!(baseline_label("baseline", true), "baseline");
        assert_eq!(
            baseline_label("attention=none", true),
            "attention=none (baseline)"
        );
        assert_eq!(baseline_label("attention=se", false), "attention=se");
    }
}
