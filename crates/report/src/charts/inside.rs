//! Charts 7 and 8: feature maps of a few test images and the mean SE gates
//! per class (the analysis of Hu et al., "Squeeze-and-Excitation Networks",
//! CVPR 2018, section 7.2 / figure 6).

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    font, padded_range, series_colour, shorten, tick_decimals, Chart, AXIS_SIZE, TICK_SIZE,
    TITLE_SIZE,
};
use crate::error::DrawError;
use crate::load::{FeatureMap, SampleImage};

/// Viridis (matplotlib) sampled at 9 points, linearly interpolated.
const VIRIDIS: [(u8, u8, u8); 9] = [
    (68, 1, 84),
    (71, 44, 122),
    (59, 81, 139),
    (44, 113, 142),
    (33, 144, 141),
    (39, 173, 129),
    (92, 200, 99),
    (170, 220, 50),
    (253, 231, 37),
];

/// Viridis colour of `t` in [0, 1].
pub fn viridis(t: f64) -> (u8, u8, u8) {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (VIRIDIS.len() - 1) as f64;
    let i = (x.floor() as usize).min(VIRIDIS.len() - 2);
    let f = x - i as f64;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    let m = |p: u8, q: u8| (p as f64 + (q as f64 - p as f64) * f).round() as u8;
    (m(a.0, b.0), m(a.1, b.1), m(a.2, b.2))
}

/// Nearest-neighbour upscale of an `h x w` map, normalized to its own
/// min-max range and coloured with viridis, into a `size x size` RGB buffer.
fn map_bitmap(values: &[f32], h: u32, w: u32, size: u32) -> Vec<u8> {
    let (lo, hi) = values
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let mut buf = Vec::with_capacity((size * size * 3) as usize);
    for y in 0..size {
        let sy = (y * h / size).min(h - 1);
        for x in 0..size {
            let sx = (x * w / size).min(w - 1);
            let v = values[(sy * w + sx) as usize];
            let (r, g, b) = viridis(((v - lo) / span) as f64);
            buf.extend_from_slice(&[r, g, b]);
        }
    }
    buf
}

/// Nearest-neighbour upscale of a `[3, H, W]` channel-major image.
fn image_bitmap(img: &SampleImage, size: u32) -> Vec<u8> {
    let (h, w) = (img.height.max(1), img.width.max(1));
    let plane = (h * w) as usize;
    let mut buf = Vec::with_capacity((size * size * 3) as usize);
    for y in 0..size {
        let sy = (y * h / size).min(h - 1);
        for x in 0..size {
            let sx = (x * w / size).min(w - 1);
            let i = (sy * w + sx) as usize;
            for c in 0..3 {
                buf.push(img.pixels.get(c * plane + i).copied().unwrap_or(0));
            }
        }
    }
    buf
}

/// One model's maps for one sample.
#[derive(Debug, Clone)]
pub struct MapRow {
    /// Variant label.
    pub label: String,
    /// Variant colour (row marker).
    pub colour: RGBColor,
    /// The model's predicted class name for this image.
    pub predicted: String,
    /// Maps of this sample, any block, first channels.
    pub maps: Vec<FeatureMap>,
}

/// One test image and the rows of the compared models.
#[derive(Debug, Clone)]
pub struct FeatureSample {
    /// The image.
    pub image: SampleImage,
    /// Baseline first, then the attention variant.
    pub rows: Vec<MapRow>,
}

/// Chart 7: for each sample, the image and a 3x3 grid of the first conv
/// channels of each block, one row per model.
pub struct FeatureMapChart {
    /// Samples in order.
    pub samples: Vec<FeatureSample>,
    /// Blocks shown (sorted).
    pub blocks: Vec<u32>,
}

const CELL: u32 = 52;
const GAP: u32 = 3;
const GRID: u32 = 3 * CELL + 2 * GAP;
const LABEL_W: u32 = 270;
const IMAGE_W: u32 = 150;
const IMAGE: u32 = 112;
const BLOCK_W: u32 = GRID + 40;
const TOP: u32 = 110;
const ROW_H: u32 = GRID + 14;
const SAMPLE_GAP: u32 = 36;

impl FeatureMapChart {
    fn rows_per_sample(&self) -> u32 {
        self.samples
            .iter()
            .map(|s| s.rows.len() as u32)
            .max()
            .unwrap_or(1)
            .max(1)
    }
}

impl Chart for FeatureMapChart {
    fn size(&self) -> (u32, u32) {
        let w = 30 + IMAGE_W + LABEL_W + BLOCK_W * self.blocks.len().max(1) as u32 + 20;
        let per = self.rows_per_sample() * ROW_H + SAMPLE_GAP;
        (w, TOP + per * self.samples.len().max(1) as u32 + 20)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError>
    where
        DB::ErrorType: 'static,
    {
        self.draw_headers(root)?;
        let rows = self.rows_per_sample();
        for (si, s) in self.samples.iter().enumerate() {
            let y0 = TOP + si as u32 * (rows * ROW_H + SAMPLE_GAP);
            draw_sample_image(root, s, y0 + rows * ROW_H / 2)?;
            for (ri, row) in s.rows.iter().enumerate() {
                self.draw_row(root, y0 + ri as u32 * ROW_H, row, &s.image.class)?;
            }
        }
        Ok(())
    }
}

/// Where the columns of the feature-map chart start: the test image, the model labels, the
/// first block's grid.
const X_IMG: u32 = 30;
const X_LABEL: u32 = X_IMG + IMAGE_W;
const X_BLOCKS: u32 = X_LABEL + LABEL_W;

fn centered() -> Pos {
    Pos::new(HPos::Center, VPos::Center)
}

fn left() -> Pos {
    Pos::new(HPos::Left, VPos::Center)
}

/// A sample's test image and class, centred on `mid_y`.
fn draw_sample_image<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: &FeatureSample,
    mid_y: u32,
) -> Result<(), DrawError>
where
    DB::ErrorType: 'static,
{
    let iy = mid_y - IMAGE / 2 - 10;
    root.draw(
        &BitMapElement::with_owned_buffer(
            (X_IMG as i32, iy as i32),
            (IMAGE, IMAGE),
            image_bitmap(&s.image, IMAGE),
        )
        .ok_or("image buffer of the wrong size")?,
    )?;
    root.draw(&Text::new(
        format!("class: {}", shorten(&s.image.class, 14)),
        ((X_IMG + IMAGE / 2) as i32, (iy + IMAGE + 16) as i32),
        font(TICK_SIZE).pos(centered()),
    ))?;
    Ok(())
}

impl FeatureMapChart {
    /// The title, the subtitle and the column headers (each block with its map size).
    fn draw_headers<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawError>
    where
        DB::ErrorType: 'static,
    {
        let (w, _) = self.size();
        root.draw(&Text::new(
            "Feature maps: conv output (before BN) of each block, first 9 channels",
            ((w / 2) as i32, 24),
            font(TITLE_SIZE).pos(centered()),
        ))?;
        root.draw(&Text::new(
            "Each map scaled to its own min-max range (viridis: dark = low, yellow = high)",
            ((w / 2) as i32, 54),
            font(TICK_SIZE).pos(centered()),
        ))?;
        root.draw(&Text::new(
            "Test image",
            ((X_IMG + IMAGE / 2) as i32, 92),
            font(AXIS_SIZE - 2).pos(centered()),
        ))?;
        root.draw(&Text::new(
            "Model (prediction)",
            ((X_LABEL + 4) as i32, 92),
            font(AXIS_SIZE - 2).pos(left()),
        ))?;
        for (bi, block) in self.blocks.iter().enumerate() {
            let hw = self
                .samples
                .iter()
                .flat_map(|s| s.rows.iter().flat_map(|r| r.maps.iter()))
                .find(|m| m.block == *block)
                .map(|m| format!(" ({}x{})", m.height, m.width))
                .unwrap_or_default();
            root.draw(&Text::new(
                format!("Block {block}{hw}"),
                ((X_BLOCKS + bi as u32 * BLOCK_W + GRID / 2) as i32, 92),
                font(AXIS_SIZE - 2).pos(centered()),
            ))?;
        }
        Ok(())
    }

    /// One model's row at height `ry`: its colour, label and prediction (red when it is not
    /// `class`), then a 3x3 grid of its first nine maps per block.
    fn draw_row<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        ry: u32,
        row: &MapRow,
        class: &str,
    ) -> Result<(), DrawError>
    where
        DB::ErrorType: 'static,
    {
        let mid = (ry + GRID / 2) as i32;
        root.draw(&Rectangle::new(
            [(X_LABEL as i32, mid - 30), ((X_LABEL + 6) as i32, mid + 30)],
            row.colour.filled(),
        ))?;
        root.draw(&Text::new(
            shorten(&row.label, 28),
            ((X_LABEL + 14) as i32, mid - 12),
            font(TICK_SIZE).pos(left()),
        ))?;
        let ok = row.predicted == class;
        root.draw(&Text::new(
            format!(
                "predicted: {}{}",
                shorten(&row.predicted, 14),
                if ok { "" } else { " (wrong)" }
            ),
            ((X_LABEL + 14) as i32, mid + 12),
            font(TICK_SIZE).pos(left()).color(&if ok {
                RGBColor(30, 110, 30)
            } else {
                RGBColor(180, 30, 30)
            }),
        ))?;
        for (bi, block) in self.blocks.iter().enumerate() {
            let bx = X_BLOCKS + bi as u32 * BLOCK_W;
            for m in row.maps.iter().filter(|m| m.block == *block).take(9) {
                let k = m.channel.min(8);
                let (gx, gy) = (k % 3, k / 3);
                let px = bx + gx * (CELL + GAP);
                let py = ry + gy * (CELL + GAP);
                let buf = map_bitmap(&m.values, m.height.max(1), m.width.max(1), CELL);
                root.draw(
                    &BitMapElement::with_owned_buffer((px as i32, py as i32), (CELL, CELL), buf)
                        .ok_or("feature map buffer of the wrong size")?,
                )?;
            }
        }
        Ok(())
    }
}

/// Chart 8: mean gate per channel for each class, one panel per block.
pub struct GateChart {
    /// The SE variant's label.
    pub label: String,
    /// Class names by index.
    pub classes: Vec<String>,
    /// `(block, gates[class][channel])`.
    pub blocks: Vec<(u32, Vec<Vec<f64>>)>,
}

impl Chart for GateChart {
    fn size(&self) -> (u32, u32) {
        (1300, 120 + 330 * self.blocks.len().max(1) as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError>
    where
        DB::ErrorType: 'static,
    {
        let root = root.titled(
            &format!(
                "Mean excitation (gate) per channel and class: {}",
                shorten(&self.label, 50)
            ),
            font(TITLE_SIZE),
        )?;
        let (w, _) = root.dim_in_pixel();
        let (plots, legend) = root.split_horizontally(w - 190);
        let panels = plots.split_evenly((self.blocks.len().max(1), 1));
        for ((block, gates), area) in self.blocks.iter().zip(panels.iter()) {
            let channels = gates.iter().map(|g| g.len()).max().unwrap_or(1);
            let (y0, y1) = padded_range(gates.iter().flatten().copied(), 0.05, (0.0, 1.0));
            let mut chart = ChartBuilder::on(area)
                .caption(format!("Block {block}"), font(AXIS_SIZE))
                .margin(10)
                .x_label_area_size(50)
                .y_label_area_size(70)
                .build_cartesian_2d(-0.5..(channels as f64 - 0.5), y0.max(0.0)..y1.min(1.0))?;
            let decimals = tick_decimals(y0.max(0.0), y1.min(1.0), 10);
            chart
                .configure_mesh()
                .x_desc("Channel index")
                .y_desc("Mean gate (0-1)")
                .label_style(font(TICK_SIZE))
                .axis_desc_style(font(AXIS_SIZE - 2))
                .light_line_style(RGBColor(235, 235, 235))
                .x_label_formatter(&|v| format!("{v:.0}"))
                .y_label_formatter(&|v| format!("{v:.decimals$}"))
                .draw()?;
            for (ci, g) in gates.iter().enumerate() {
                let c = series_colour(ci);
                chart.draw_series(LineSeries::new(
                    g.iter()
                        .enumerate()
                        .filter(|(_, v)| v.is_finite())
                        .map(|(i, v)| (i as f64, *v)),
                    c.stroke_width(2),
                ))?;
            }
        }
        let left = Pos::new(HPos::Left, VPos::Center);
        legend.draw(&Text::new("Class", (10, 70), font(AXIS_SIZE - 2).pos(left)))?;
        for (ci, name) in self.classes.iter().enumerate() {
            let y = 100 + 26 * ci as i32;
            let c = series_colour(ci);
            legend.draw(&PathElement::new(vec![(10, y), (40, y)], c.stroke_width(3)))?;
            legend.draw(&Text::new(
                shorten(name, 16),
                (48, y),
                font(TICK_SIZE).pos(left),
            ))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viridis_ends() {
        assert_eq!(viridis(0.0), (68, 1, 84));
        assert_eq!(viridis(1.0), (253, 231, 37));
        assert_eq!(viridis(f64::NAN), (68, 1, 84));
    }

    #[test]
    fn bitmaps_have_the_requested_size() {
        let v: Vec<f32> = (0..16).map(|i| i as f32).collect();
        assert_eq!(map_bitmap(&v, 4, 4, 10).len(), 300);
        let img = SampleImage {
            sample: 0,
            class_index: 3,
            class: "cat".into(),
            predicted: 0,
            height: 2,
            width: 2,
            pixels: vec![255, 0, 0, 0, 0, 255, 0, 0, 0, 0, 255, 0],
        };
        let b = image_bitmap(&img, 4);
        assert_eq!(b.len(), 48);
        // Top-left pixel is (255, 0, 0): red.
        assert_eq!(&b[0..3], &[255, 0, 0]);
    }
}
