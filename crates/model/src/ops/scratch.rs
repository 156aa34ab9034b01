//! A small process-wide pool of `f32` buffers for what the custom ops keep between their forward
//! and backward (a block's convolution output, several MB per step).
//!
//! Freed large allocations go back to the operating system and come back as fresh pages that the
//! kernel must clear on first touch: for the buffers a training step allocates anew every step
//! this costs more than the arithmetic on them. A buffer taken here is returned when its owner is
//! dropped and handed out again at the next step.

use std::sync::Mutex;

/// At most this many spare buffers are kept.
const MAX_SPARE: usize = 16;

static SPARE: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// An empty vector with capacity for at least `len` elements: the smallest spare buffer large
/// enough, else a new allocation.
pub(crate) fn take(len: usize) -> Vec<f32> {
    SPARE
        .lock()
        .ok()
        .and_then(|mut spare| take_from(&mut spare, len))
        .unwrap_or_else(|| Vec::with_capacity(len))
}

/// Returns `v` to the pool (when the pool is full, its smallest buffer is dropped).
pub(crate) fn give(v: Vec<f32>) {
    if v.capacity() == 0 {
        return;
    }
    if let Ok(mut spare) = SPARE.lock() {
        put(&mut spare, v);
    }
}

fn take_from(spare: &mut Vec<Vec<f32>>, len: usize) -> Option<Vec<f32>> {
    let (i, _) = spare
        .iter()
        .enumerate()
        .filter(|(_, v)| v.capacity() >= len)
        .min_by_key(|(_, v)| v.capacity())?;
    let mut v = spare.swap_remove(i);
    v.clear();
    Some(v)
}

fn put(spare: &mut Vec<Vec<f32>>, v: Vec<f32>) {
    spare.push(v);
    if spare.len() > MAX_SPARE {
        if let Some((i, _)) = spare.iter().enumerate().min_by_key(|(_, v)| v.capacity()) {
            spare.swap_remove(i);
        }
    }
}

/// A vector that goes back to the pool when dropped.
#[derive(Debug, Default)]
pub(crate) struct Pooled(pub(crate) Vec<f32>);

impl Drop for Pooled {
    fn drop(&mut self) {
        give(std::mem::take(&mut self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_large_enough_buffer_is_reused() {
        let mut spare = Vec::new();
        for cap in [100, 1000, 10] {
            put(&mut spare, Vec::with_capacity(cap));
        }
        let v = take_from(&mut spare, 50).unwrap();
        assert!(v.capacity() >= 100 && v.capacity() < 1000 && v.is_empty());
        assert!(take_from(&mut spare, 5000).is_none());
        assert_eq!(spare.len(), 2);
    }

    #[test]
    fn a_full_pool_drops_its_smallest_buffer() {
        let mut spare = Vec::new();
        for cap in 1..=MAX_SPARE + 1 {
            put(&mut spare, Vec::with_capacity(cap * 10));
        }
        assert_eq!(spare.len(), MAX_SPARE);
        assert!(spare.iter().all(|v| v.capacity() >= 20));
    }
}
