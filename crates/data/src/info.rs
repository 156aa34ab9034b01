//! `ablate data info`: counts per split and class, image size, per-channel
//! mean and std (in [0, 1] units, over every pixel of the split).

use std::fmt;

use rayon::prelude::*;

use crate::imageset::{Dataset, ImageSet};

/// Summary of one split.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitInfo {
    /// `train` or `test`.
    pub split: String,
    /// Number of images.
    pub count: usize,
    /// Images per class, in class order.
    pub per_class: Vec<usize>,
    /// Per-channel mean of pixel / 255.
    pub mean: Vec<f64>,
    /// Per-channel (population) std of pixel / 255.
    pub std: Vec<f64>,
}

/// Summary of a dataset (see [`info`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DataInfo {
    /// Dataset name.
    pub name: String,
    /// Class names.
    pub classes: Vec<String>,
    /// Channels, height, width of the images.
    pub image_size: (usize, usize, usize),
    /// The train and test splits.
    pub splits: Vec<SplitInfo>,
}

fn split_info(name: &str, set: &ImageSet, classes: usize) -> SplitInfo {
    let c = set.channels;
    let plane = set.height * set.width;
    // Exact integer sums per channel, in parallel over images.
    let (sum, sq) = (0..set.len)
        .into_par_iter()
        .fold(
            || (vec![0u64; c], vec![0u64; c]),
            |(mut s, mut q), i| {
                for (ch, px) in set.image(i).chunks_exact(plane).enumerate() {
                    for &p in px {
                        s[ch] += p as u64;
                        q[ch] += (p as u64) * (p as u64);
                    }
                }
                (s, q)
            },
        )
        .reduce(
            || (vec![0u64; c], vec![0u64; c]),
            |(mut a, mut b), (x, y)| {
                for k in 0..c {
                    a[k] += x[k];
                    b[k] += y[k];
                }
                (a, b)
            },
        );
    let n = (set.len * plane) as f64;
    let mean: Vec<f64> = sum
        .iter()
        .map(|&s| if n > 0.0 { s as f64 / n / 255.0 } else { 0.0 })
        .collect();
    let std: Vec<f64> = sq
        .iter()
        .zip(&mean)
        .map(|(&q, &m)| {
            if n > 0.0 {
                (q as f64 / n / (255.0 * 255.0) - m * m).max(0.0).sqrt()
            } else {
                0.0
            }
        })
        .collect();
    SplitInfo {
        split: name.to_string(),
        count: set.len,
        per_class: set.class_counts(classes),
        mean,
        std,
    }
}

/// Counts per split and class, image size, per-channel mean and std.
pub fn info(ds: &Dataset) -> DataInfo {
    DataInfo {
        name: ds.name.clone(),
        classes: ds.classes.clone(),
        image_size: (ds.train.channels, ds.train.height, ds.train.width),
        splits: vec![
            split_info("train", &ds.train, ds.classes.len()),
            split_info("test", &ds.test, ds.classes.len()),
        ],
    }
}

impl fmt::Display for DataInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (c, h, w) = self.image_size;
        writeln!(f, "dataset: {}", self.name)?;
        writeln!(f, "images:  {c} x {h} x {w} (channels x height x width)")?;
        writeln!(f, "classes: {}", self.classes.len())?;
        writeln!(f)?;
        let width = self
            .classes
            .iter()
            .map(|s| s.len())
            .max()
            .unwrap_or(5)
            .max(5);
        write!(f, "{:<width$}", "class")?;
        for s in &self.splits {
            write!(f, " {:>8}", s.split)?;
        }
        writeln!(f)?;
        for (i, name) in self.classes.iter().enumerate() {
            write!(f, "{name:<width$}")?;
            for s in &self.splits {
                write!(f, " {:>8}", s.per_class.get(i).copied().unwrap_or(0))?;
            }
            writeln!(f)?;
        }
        write!(f, "{:<width$}", "total")?;
        for s in &self.splits {
            write!(f, " {:>8}", s.count)?;
        }
        writeln!(f)?;
        writeln!(f)?;
        for s in &self.splits {
            let fmt3 = |v: &[f64]| {
                v.iter()
                    .map(|x| format!("{x:.4}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            writeln!(
                f,
                "{:<5} mean ({})  std ({})",
                s.split,
                fmt3(&s.mean),
                fmt3(&s.std)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_statistics() {
        // Two 1x1 images: R = 0 and 255 (mean 0.5, std 0.5), G = 51 both (0.2, 0), B = 255 both.
        let set = ImageSet {
            images: vec![0, 51, 255, 255, 51, 255],
            labels: vec![1, 1],
            len: 2,
            channels: 3,
            height: 1,
            width: 1,
        };
        let ds = Dataset {
            name: "t".into(),
            classes: vec!["a".into(), "b".into()],
            train: set.clone(),
            test: set.subset(&[0]),
        };
        let i = info(&ds);
        assert_eq!(i.splits[0].per_class, vec![0, 2]);
        assert_eq!(i.splits[1].count, 1);
        let m = &i.splits[0].mean;
        let s = &i.splits[0].std;
        assert!(
            (m[0] - 0.5).abs() < 1e-12 && (m[1] - 0.2).abs() < 1e-12 && (m[2] - 1.0).abs() < 1e-12
        );
        assert!((s[0] - 0.5).abs() < 1e-12 && s[1].abs() < 1e-6 && s[2].abs() < 1e-6);
        let text = i.to_string();
        assert!(
            text.contains("total") && text.contains("mean (0.5000, 0.2000, 1.0000)"),
            "{text}"
        );
    }
}
