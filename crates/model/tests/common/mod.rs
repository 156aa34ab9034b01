//! Helpers shared by the tests: random tensors and error measures for the custom-op tests
//! (`ops_*.rs`), the golden references and their comparison ([`golden`]), and a metrics sink
//! that stops a training run where a test wants ([`sinks`]).
#![allow(dead_code)]

#[macro_use]
pub mod golden;
pub mod nets;
pub mod sinks;

use candle_core::{Device, Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded generator.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A CPU f32 tensor of uniform values in `[lo, hi)`.
pub fn rand_tensor(rng: &mut ChaCha8Rng, dims: &[usize], lo: f32, hi: f32) -> Result<Tensor> {
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(lo..hi)).collect();
    Tensor::from_vec(v, dims, &Device::Cpu)
}

/// `max |a - b| / max(max |b|, 1e-3)`.
pub fn rel_err(a: &Tensor, b: &Tensor) -> Result<f32> {
    let a = a.flatten_all()?.to_vec1::<f32>()?;
    let b = b.flatten_all()?.to_vec1::<f32>()?;
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    Ok(diff / scale)
}

/// `Σ a ⊙ b` in f64.
pub fn dot(a: &Tensor, b: &Tensor) -> Result<f64> {
    let a = a.flatten_all()?.to_vec1::<f32>()?;
    let b = b.flatten_all()?.to_vec1::<f32>()?;
    Ok(a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum())
}

/// Runs `f` on 1, 2 and 5 threads and asserts that the tensors it returns are the same bit
/// for bit each time.
pub fn assert_same_on_any_thread_count(f: impl Fn() -> Result<Vec<Tensor>> + Sync) -> Result<()> {
    let bits = |threads| -> Result<Vec<Vec<u32>>> {
        with_threads(threads, || {
            f()?.iter()
                .map(|t| {
                    Ok(t.flatten_all()?
                        .to_vec1::<f32>()?
                        .iter()
                        .map(|v| v.to_bits())
                        .collect())
                })
                .collect()
        })
    };
    let one = bits(1)?;
    for threads in [2, 5] {
        assert!(one == bits(threads)?, "results differ on {threads} threads");
    }
    Ok(())
}

/// Runs `f` on a rayon pool of `threads` threads.
pub fn with_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
        .install(f)
}
