//! The one in-memory form of every dataset: u8 images `[N, C, H, W]`
//! (channel-major, like a CIFAR-10 record) plus class-index labels.

use rand::RngCore;

use crate::rng::{self, Stream};

/// u8 images `[len, channels, height, width]`, channel-major, plus labels (class index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    /// Pixels, `len * channels * height * width` bytes.
    pub images: Vec<u8>,
    /// One class index per image.
    pub labels: Vec<u8>,
    /// Number of images.
    pub len: usize,
    /// Channels per image (3: RGB).
    pub channels: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
}

impl ImageSet {
    /// An empty set of RGB images of the given size.
    pub fn empty(height: usize, width: usize) -> ImageSet {
        ImageSet {
            images: Vec::new(),
            labels: Vec::new(),
            len: 0,
            channels: 3,
            height,
            width,
        }
    }

    /// Bytes per image (`channels * height * width`).
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Image `i`, `[channels, height, width]`.
    ///
    /// # Panics
    /// When `i >= len`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The images at `idx`, in that order.
    ///
    /// # Panics
    /// When an index is out of range.
    pub fn subset(&self, idx: &[usize]) -> ImageSet {
        let n = self.image_len();
        let mut images = Vec::with_capacity(idx.len() * n);
        let mut labels = Vec::with_capacity(idx.len());
        for &i in idx {
            images.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        ImageSet {
            images,
            labels,
            len: idx.len(),
            channels: self.channels,
            height: self.height,
            width: self.width,
        }
    }

    /// Number of images of each class `0..num_classes` (labels beyond are ignored).
    pub fn class_counts(&self, num_classes: usize) -> Vec<usize> {
        let mut counts = vec![0usize; num_classes];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }

    /// Indices of a stratified, seeded subset of at most `limit` images: each class
    /// keeps a share proportional to its count (largest remainders get the rounding),
    /// the images of a class are drawn by a seeded shuffle, and the result is in
    /// ascending index order.
    pub fn stratified_indices(&self, limit: usize, num_classes: usize, seed: u64) -> Vec<usize> {
        if limit >= self.len {
            return (0..self.len).collect();
        }
        let classes = num_classes.max(
            self.labels
                .iter()
                .map(|&l| l as usize + 1)
                .max()
                .unwrap_or(0),
        );
        let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
        for (i, &l) in self.labels.iter().enumerate() {
            by_class[l as usize].push(i);
        }
        // Quotas by largest remainder: floor(limit * n_c / len), then +1 for the
        // largest fractional parts (ties to the lower class index).
        let mut quota: Vec<usize> = by_class
            .iter()
            .map(|v| limit * v.len() / self.len)
            .collect();
        let mut given: usize = quota.iter().sum();
        let mut order: Vec<usize> = (0..classes).collect();
        order.sort_by_key(|&c| {
            let rem = (limit * by_class[c].len()) % self.len;
            (std::cmp::Reverse(rem), c)
        });
        for &c in order.iter().cycle().take(classes * 2) {
            if given >= limit {
                break;
            }
            if quota[c] < by_class[c].len() {
                quota[c] += 1;
                given += 1;
            }
        }
        let mut out = Vec::with_capacity(limit);
        for (c, members) in by_class.iter_mut().enumerate() {
            let mut r = rng::rng(seed, Stream::Subset, c as u64, 0);
            // Partial Fisher-Yates: the first quota[c] slots are a uniform sample.
            let n = members.len();
            for k in 0..quota[c].min(n) {
                let j = k + rng::below(&mut r as &mut dyn RngCore, (n - k) as u32) as usize;
                members.swap(k, j);
            }
            out.extend_from_slice(&members[..quota[c].min(n)]);
        }
        out.sort_unstable();
        out
    }

    /// A stratified, seeded subset of at most `limit` images (see
    /// [`ImageSet::stratified_indices`]); the whole set when `limit >= len`.
    pub fn stratified_subset(&self, limit: usize, num_classes: usize, seed: u64) -> ImageSet {
        if limit >= self.len {
            return self.clone();
        }
        self.subset(&self.stratified_indices(limit, num_classes, seed))
    }

    /// Appends `other` (same image size) to this set.
    ///
    /// # Panics
    /// When the image sizes differ.
    pub fn append(&mut self, other: &ImageSet) {
        assert_eq!(
            (self.channels, self.height, self.width),
            (other.channels, other.height, other.width),
            "image sizes differ"
        );
        self.images.extend_from_slice(&other.images);
        self.labels.extend_from_slice(&other.labels);
        self.len += other.len;
    }
}

/// A named dataset: class names and its train and test splits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// A short name of the source (e.g. `cifar10`, the folder name, `synthetic`).
    pub name: String,
    /// Class names; label `i` is `classes[i]`.
    pub classes: Vec<String>,
    /// The train split.
    pub train: ImageSet,
    /// The test split.
    pub test: ImageSet,
}

impl Dataset {
    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(labels: &[u8]) -> ImageSet {
        ImageSet {
            images: labels
                .iter()
                .enumerate()
                .flat_map(|(i, _)| [i as u8; 12])
                .collect(),
            labels: labels.to_vec(),
            len: labels.len(),
            channels: 3,
            height: 2,
            width: 2,
        }
    }

    #[test]
    fn subset_copies_images_and_labels() {
        let s = set(&[0, 1, 2, 0]);
        let sub = s.subset(&[3, 1]);
        assert_eq!(sub.len, 2);
        assert_eq!(sub.labels, vec![0, 1]);
        assert_eq!(sub.image(0), &[3u8; 12]);
        assert_eq!(sub.image(1), &[1u8; 12]);
    }

    #[test]
    fn stratified_subset_keeps_class_shares_and_is_seeded() {
        // 60 of class 0, 30 of class 1, 10 of class 2.
        let mut labels = vec![0u8; 60];
        labels.extend([1u8; 30]);
        labels.extend([2u8; 10]);
        let s = set(&labels);
        let a = s.stratified_indices(50, 3, 7);
        assert_eq!(a.len(), 50);
        let sub = s.subset(&a);
        assert_eq!(sub.class_counts(3), vec![30, 15, 5]);
        assert_eq!(a, s.stratified_indices(50, 3, 7));
        assert_ne!(a, s.stratified_indices(50, 3, 8));
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        // Remainders: 10 of (60, 30, 10) -> 6, 3, 1 exactly; 11 -> one extra.
        let b = s.subset(&s.stratified_indices(11, 3, 1));
        assert_eq!(b.len, 11);
        assert_eq!(b.class_counts(3).iter().sum::<usize>(), 11);
        assert_eq!(s.stratified_subset(1000, 3, 0), s);
    }
}
