//! Deterministic batching: per-epoch shuffles from a seeded stream, per-image
//! augmentation streams keyed by (seed, epoch, image index), batches built in
//! parallel (rayon) and produced ahead of the consumer on a background thread.
//!
//! A batch is a pure function of (seed, epoch, batch index): which thread
//! augments which image, and when, never changes a number.
//!
//! With [`RandomStreams::Pytorch`] the order and the crop/flip draws are instead those of
//! `torch_seed.py train` (`crate::torch_rng`): one generator seeded with the seed, per epoch
//! `randperm(n)`, then per batch `randint` x-offsets, `randint` y-offsets and `rand` flips.
//! An epoch's draws are replayed from the seed, so an epoch can still start anywhere.

use std::sync::Arc;
use std::thread;

use crossbeam_channel::{bounded, Receiver};
use rayon::prelude::*;

use crate::augment::{to_unit, Augment, CropFlip, Normalize, Scratch};
use crate::config::RandomStreams;
use crate::imageset::ImageSet;
use crate::rng::{self, Stream};
use crate::torch_rng::TorchGenerator;

/// How a [`Loader`] batches a set.
#[derive(Debug, Clone)]
pub struct LoaderConfig {
    /// Images per batch (> 0).
    pub batch_size: usize,
    /// Reshuffle every epoch (train) or keep the set's order (test).
    pub shuffle: bool,
    /// Drop the last, smaller batch.
    pub drop_last: bool,
    /// Seed of the shuffles and augmentations.
    pub seed: u64,
    /// Train-time augmentation, `None` for none (test data).
    pub augment: Option<Augment>,
    /// Normalization applied last.
    pub normalize: Normalize,
    /// How many batches the background thread may build ahead (at least 1).
    pub prefetch: usize,
    /// Whose random streams draw the order and the augmentation.
    pub streams: RandomStreams,
}

impl LoaderConfig {
    /// Test-time batching: no shuffle, no augmentation, keep the last batch.
    pub fn eval(batch_size: usize, normalize: Normalize) -> LoaderConfig {
        LoaderConfig {
            batch_size,
            shuffle: false,
            drop_last: false,
            seed: 0,
            augment: None,
            normalize,
            prefetch: 2,
            streams: RandomStreams::Ablate,
        }
    }
}

/// One epoch's image order and, with PyTorch's streams, each position's crop and flip.
#[derive(Debug, Clone, PartialEq)]
struct EpochPlan {
    order: Vec<usize>,
    drawn: Option<Vec<CropFlip>>,
}

/// A batch of normalized images.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// `[size, 3, height, width]`, normalized f32.
    pub images: Vec<f32>,
    /// Class index of each image.
    pub labels: Vec<u32>,
    /// Index of each image in the set.
    pub indices: Vec<usize>,
    /// Images in this batch.
    pub size: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
}

/// Yields the batches of an [`ImageSet`], epoch by epoch.
#[derive(Debug, Clone)]
pub struct Loader {
    set: Arc<ImageSet>,
    cfg: Arc<LoaderConfig>,
}

impl Loader {
    /// A loader over `set`. A `batch_size` of 0 is taken as 1, `prefetch` of 0 as 1.
    pub fn new(set: Arc<ImageSet>, mut cfg: LoaderConfig) -> Loader {
        cfg.batch_size = cfg.batch_size.max(1);
        cfg.prefetch = cfg.prefetch.max(1);
        Loader {
            set,
            cfg: Arc::new(cfg),
        }
    }

    /// The set being batched.
    pub fn set(&self) -> &Arc<ImageSet> {
        &self.set
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.cfg
    }

    /// Batches per epoch.
    pub fn num_batches(&self) -> usize {
        let (n, b) = (self.set.len, self.cfg.batch_size);
        if self.cfg.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// The order of the set's images in `epoch` (a seeded Fisher-Yates shuffle, PyTorch's
    /// `randperm` with its streams, or `0..len` without shuffle).
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        self.plan(epoch).order
    }

    /// The crop offsets and flips of `epoch`'s images in the order of [`Loader::order`] with
    /// PyTorch's streams and an augmentation; `None` otherwise (each image then draws its own).
    pub fn crop_flips(&self, epoch: u64) -> Option<Vec<CropFlip>> {
        self.plan(epoch).drawn
    }

    fn plan(&self, epoch: u64) -> EpochPlan {
        let n = self.set.len;
        match self.cfg.streams {
            RandomStreams::Ablate => {
                let mut order: Vec<usize> = (0..n).collect();
                if self.cfg.shuffle {
                    let mut r = rng::rng(self.cfg.seed, Stream::Shuffle, epoch, 0);
                    for i in (1..order.len()).rev() {
                        let j = rng::below(&mut r, i as u32 + 1) as usize;
                        order.swap(i, j);
                    }
                }
                EpochPlan { order, drawn: None }
            }
            RandomStreams::Pytorch => self.torch_plan(epoch),
        }
    }

    /// `torch_seed.py train`'s draws for `epoch` (0-based): the generator seeded with the seed
    /// has made `epoch` whole epochs of draws before.
    fn torch_plan(&self, epoch: u64) -> EpochPlan {
        let n = self.set.len;
        let augment = self.cfg.augment.as_ref().map(Augment::crop_flip_params);
        let perm_draws = if self.cfg.shuffle {
            n.saturating_sub(1)
        } else {
            0
        };
        let per_epoch = perm_draws as u64 + if augment.is_some() { 3 * n as u64 } else { 0 };
        let mut g = TorchGenerator::at(self.cfg.seed, epoch * per_epoch);
        let order = if self.cfg.shuffle {
            g.randperm(n)
        } else {
            (0..n).collect()
        };
        let drawn = augment.map(|(padding, flip_p)| {
            let range = 2 * padding as u32 + 1;
            let mut drawn = Vec::with_capacity(n);
            for start in (0..n).step_by(self.cfg.batch_size) {
                let k = self.cfg.batch_size.min(n - start);
                let left: Vec<u32> = (0..k).map(|_| g.randint(range)).collect();
                let top: Vec<u32> = (0..k).map(|_| g.randint(range)).collect();
                for i in 0..k {
                    drawn.push(CropFlip {
                        top: top[i] as usize,
                        left: left[i] as usize,
                        flip: g.rand_f32() < flip_p,
                    });
                }
            }
            drawn
        });
        EpochPlan { order, drawn }
    }

    /// Batch `b` of `epoch`, built now on the calling thread (rayon inside).
    ///
    /// # Panics
    /// When `b >= num_batches()`.
    pub fn batch(&self, epoch: u64, b: usize) -> Batch {
        let plan = self.plan(epoch);
        build(&self.set, &self.cfg, epoch, &plan, b)
    }

    /// The batches of `epoch`, produced ahead on a background thread; identical
    /// for a given (seed, epoch) whatever the thread count.
    pub fn epoch(&self, epoch: u64) -> impl Iterator<Item = Batch> {
        self.epoch_from(epoch, 0)
    }

    /// Like [`Loader::epoch`], starting at batch `skip` (for resuming mid-epoch):
    /// the skipped batches are neither built nor augmented, and the following
    /// ones are the same as in a full epoch.
    pub fn epoch_from(&self, epoch: u64, skip: usize) -> impl Iterator<Item = Batch> {
        let (tx, rx) = bounded(self.cfg.prefetch);
        let set = Arc::clone(&self.set);
        let cfg = Arc::clone(&self.cfg);
        let n = self.num_batches();
        let plan = self.plan(epoch);
        let handle = thread::Builder::new()
            .name("ablate-data-loader".into())
            .spawn(move || {
                for b in skip..n {
                    let batch = build(&set, &cfg, epoch, &plan, b);
                    if tx.send(batch).is_err() {
                        break; // the consumer went away
                    }
                }
            })
            .ok();
        EpochIter {
            rx,
            fallback: if handle.is_none() {
                Some((self.clone(), epoch, skip))
            } else {
                None
            },
        }
    }
}

/// The iterator of [`Loader::epoch_from`].
struct EpochIter {
    rx: Receiver<Batch>,
    /// When no thread could be spawned: build batches on the caller's thread.
    fallback: Option<(Loader, u64, usize)>,
}

impl Iterator for EpochIter {
    type Item = Batch;
    fn next(&mut self) -> Option<Batch> {
        if let Some((loader, epoch, next)) = &mut self.fallback {
            if *next >= loader.num_batches() {
                return None;
            }
            let b = loader.batch(*epoch, *next);
            *next += 1;
            return Some(b);
        }
        self.rx.recv().ok()
    }
}

/// Builds batch `b` from the epoch's plan.
fn build(set: &ImageSet, cfg: &LoaderConfig, epoch: u64, plan: &EpochPlan, b: usize) -> Batch {
    let start = b * cfg.batch_size;
    let end = (start + cfg.batch_size).min(plan.order.len());
    assert!(start < end, "batch {b} out of range");
    let indices: Vec<usize> = plan.order[start..end].to_vec();
    let drawn = plan.drawn.as_ref().map(|d| &d[start..end]);
    let (c, h, w) = (set.channels, set.height, set.width);
    let n = c * h * w;
    let mut images = vec![0f32; indices.len() * n];
    images
        .par_chunks_mut(n)
        .zip(indices.par_iter())
        .enumerate()
        .for_each_init(Scratch::default, |scratch, (pos, (out, &i))| {
            let src = set.image(i);
            match (&cfg.augment, drawn) {
                (Some(aug), Some(drawn)) => {
                    let x = aug.apply_drawn(src, (c, h, w), &drawn[pos], scratch);
                    cfg.normalize.apply(x, out, h * w);
                }
                (Some(aug), None) => {
                    let mut r = rng::rng(cfg.seed, Stream::Augment, epoch, i as u64);
                    let x = aug.apply(src, c, h, w, &mut r, scratch);
                    cfg.normalize.apply(x, out, h * w);
                }
                (None, _) => {
                    // Scale in place, then normalize in place through a copy-free pass.
                    to_unit(src, out);
                    normalize_in_place(&cfg.normalize, out, h * w);
                }
            }
        });
    let labels = indices.iter().map(|&i| set.labels[i] as u32).collect();
    Batch {
        images,
        labels,
        size: indices.len(),
        indices,
        height: h,
        width: w,
    }
}

fn normalize_in_place(norm: &Normalize, img: &mut [f32], plane: usize) {
    for (c, ch) in img.chunks_exact_mut(plane).enumerate() {
        let k = c.min(2);
        let (mean, std) = (norm.mean[k], norm.std[k]);
        for x in ch {
            *x = (*x - mean) / std;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DataConfig;
    use crate::synthetic;

    fn loader(seed: u64, bs: usize, drop_last: bool) -> Loader {
        let ds = synthetic::generate(103, 10, 0);
        let cfg = DataConfig::default();
        Loader::new(
            Arc::new(ds.train),
            LoaderConfig {
                batch_size: bs,
                shuffle: true,
                drop_last,
                seed,
                augment: Augment::from_config(&cfg),
                normalize: Normalize::from_config(&cfg),
                prefetch: 2,
                streams: RandomStreams::Ablate,
            },
        )
    }

    #[test]
    fn epoch_covers_every_image_once_and_reshuffles() {
        let l = loader(3, 10, false);
        assert_eq!(l.num_batches(), 11);
        let batches: Vec<Batch> = l.epoch(0).collect();
        assert_eq!(batches.len(), 11);
        assert_eq!(batches[10].size, 3);
        let mut seen: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
        assert_ne!(seen, (0..103).collect::<Vec<_>>());
        seen.sort();
        assert_eq!(seen, (0..103).collect::<Vec<_>>());
        assert_ne!(l.order(0), l.order(1));
        assert_eq!(l.order(1), loader(3, 10, false).order(1));
        assert_ne!(l.order(1), loader(4, 10, false).order(1));
        let d = loader(3, 10, true);
        assert_eq!(d.num_batches(), 10);
        assert_eq!(d.epoch(0).count(), 10);
        let b = &batches[0];
        assert_eq!(b.images.len(), 10 * 3 * 32 * 32);
        assert_eq!(b.labels.len(), 10);
        assert_eq!(b.labels[0], l.set().labels[b.indices[0]] as u32);
    }

    #[test]
    fn batches_do_not_depend_on_thread_count() {
        let l = loader(11, 16, false);
        let full: Vec<Batch> = l.epoch(2).collect();
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let single: Vec<Batch> =
            one.install(|| (0..l.num_batches()).map(|b| l.batch(2, b)).collect());
        let three = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let multi: Vec<Batch> =
            three.install(|| (0..l.num_batches()).map(|b| l.batch(2, b)).collect());
        assert_eq!(full, single);
        assert_eq!(full, multi);
        // A different epoch augments the same image differently.
        let other = l.batch(3, 0);
        assert_ne!(other.images, full[0].images);
    }

    #[test]
    fn epoch_from_skips_without_changing_the_rest() {
        let l = loader(5, 20, false);
        let full: Vec<Batch> = l.epoch(1).collect();
        let resumed: Vec<Batch> = l.epoch_from(1, 3).collect();
        assert_eq!(resumed.len(), full.len() - 3);
        assert_eq!(&full[3..], &resumed[..]);
        assert_eq!(l.epoch_from(1, 99).count(), 0);
        // Dropping the iterator early stops the producer (no hang).
        let mut it = l.epoch(0);
        assert!(it.next().is_some());
        drop(it);
    }

    #[test]
    fn eval_loader_is_in_order_and_normalized() {
        let ds = synthetic::generate(10, 5, 0);
        let norm = Normalize {
            mean: [0.5; 3],
            std: [0.25; 3],
        };
        let l = Loader::new(Arc::new(ds.test.clone()), LoaderConfig::eval(4, norm));
        let b: Vec<Batch> = l.epoch(0).collect();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].indices, vec![0, 1, 2, 3]);
        let px = ds.test.image(1)[7] as f32 / 255.0;
        let got = b[0].images[3 * 32 * 32 + 7];
        assert!((got - (px - 0.5) / 0.25).abs() < 1e-5);
    }
}
