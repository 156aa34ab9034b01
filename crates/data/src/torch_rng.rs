//! PyTorch's CPU random streams, reproduced draw for draw.
//!
//! With `random_streams = "pytorch"` (docs/training.md) a trial draws its initial weights,
//! epoch orders, crop offsets, flips and dropout masks exactly as the reference script
//! `../shared/reference/torch_seed.py train` does with the same seed, so the two runs start
//! from the same weights and see the same batches: a paired comparison instead of two
//! independent samples.
//!
//! PyTorch's CPU generator (`CPUGeneratorImpl`) is the 32-bit Mersenne Twister MT19937
//! (Matsumoto and Nishimura, 1998), seeded by the reference `init_genrand` with the low 32 bits
//! of the seed (`torch.manual_seed(s)`, `torch.Generator().manual_seed(s)`). Its CPU kernels
//! turn the 32-bit outputs `r` into values as follows (PyTorch 2.x, checked against PyTorch
//! 2.15.0 by `crates/data/tests/torch_streams.rs`, fixture written by
//! `scripts/torch-streams.py`):
//!
//! | call | draws per value | value |
//! | --- | --- | --- |
//! | `uniform_(from, to)`, `rand` (f32) | 1 | `((r & (2^24 - 1)) * 2^-24) * (to - from) + from`, in f64, rounded to f32 |
//! | `randint(low, high)` (range below 2^32) | 1 | `r % (high - low) + low` |
//! | `randperm(n)` | n - 1 | identity, then for `i` in `0..n-1` swap `i` and `i + r % (n - i)` |
//! | `bernoulli_(p)` (dropout) | 2 (`hi`, `lo`) | `((hi << 32 \| lo) & (2^53 - 1)) * 2^-53 < p` |

/// MT19937's state size in 32-bit words.
const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// PyTorch's CPU generator: MT19937 plus the transforms of its CPU sampling kernels.
///
/// `Copy` on purpose (2.5 KB): a training step hands a copy of the stream's state to the
/// dropout layer and advances its own by the number of draws the step used.
#[derive(Clone, Copy)]
pub struct TorchGenerator {
    state: [u32; N],
    index: usize,
    draws: u64,
}

impl std::fmt::Debug for TorchGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorchGenerator")
            .field("draws", &self.draws)
            .finish_non_exhaustive()
    }
}

impl PartialEq for TorchGenerator {
    fn eq(&self, other: &Self) -> bool {
        self.index == other.index && self.draws == other.draws && self.state == other.state
    }
}

impl TorchGenerator {
    /// The generator after `torch.manual_seed(seed)` (low 32 bits of `seed`, as PyTorch).
    pub fn new(seed: u64) -> TorchGenerator {
        let mut state = [0u32; N];
        state[0] = seed as u32;
        for i in 1..N {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        TorchGenerator {
            state,
            index: N,
            draws: 0,
        }
    }

    /// The generator seeded with `seed` after `draws` 32-bit draws.
    pub fn at(seed: u64, draws: u64) -> TorchGenerator {
        let mut g = TorchGenerator::new(seed);
        g.discard(draws);
        g
    }

    /// 32-bit draws made since seeding.
    pub fn draws(&self) -> u64 {
        self.draws
    }

    fn refill(&mut self) {
        for i in 0..N {
            let y = (self.state[i] & UPPER_MASK) | (self.state[(i + 1) % N] & LOWER_MASK);
            let mut next = self.state[(i + M) % N] ^ (y >> 1);
            if y & 1 != 0 {
                next ^= MATRIX_A;
            }
            self.state[i] = next;
        }
        self.index = 0;
    }

    /// The next 32-bit output (PyTorch's `generator->random()`).
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.refill();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        self.draws += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// Skips `n` 32-bit draws.
    pub fn discard(&mut self, mut n: u64) {
        while n > 0 {
            if self.index >= N {
                self.refill();
            }
            let take = ((N - self.index) as u64).min(n);
            self.index += take as usize;
            self.draws += take;
            n -= take;
        }
    }

    /// One value of `tensor.uniform_(from, to)` on an f32 tensor.
    pub fn uniform_f32(&mut self, from: f32, to: f32) -> f32 {
        let x = f64::from(self.next_u32() & 0x00ff_ffff) * (1.0 / (1u64 << 24) as f64);
        (x * f64::from(to - from) + f64::from(from)) as f32
    }

    /// One value of `torch.rand` (f32).
    pub fn rand_f32(&mut self) -> f32 {
        self.uniform_f32(0.0, 1.0)
    }

    /// One value of `torch.randint(0, range)` for `0 < range < 2^32`.
    pub fn randint(&mut self, range: u32) -> u32 {
        debug_assert!(range > 0);
        self.next_u32() % range
    }

    /// `torch.randperm(n)` (`n` below 2^32).
    pub fn randperm(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in 0..n.saturating_sub(1) {
            let z = (self.next_u32() as usize) % (n - i);
            p.swap(i, i + z);
        }
        p
    }

    /// One element of `tensor.bernoulli_(p)`: whether it is 1.
    pub fn bernoulli(&mut self, p: f64) -> bool {
        let hi = u64::from(self.next_u32());
        let lo = u64::from(self.next_u32());
        let bits = ((hi << 32) | lo) & ((1u64 << 53) - 1);
        (bits as f64) * (1.0 / (1u64 << 53) as f64) < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_matches_the_reference_outputs() {
        // Matsumoto and Nishimura's mt19937ar.c with init_genrand(5489) (C++'s
        // std::mt19937 default): the 10,000th output is 4123659995.
        let mut g = TorchGenerator::new(5489);
        assert_eq!(g.next_u32(), 3_499_211_612);
        g.discard(9_998);
        assert_eq!(g.next_u32(), 4_123_659_995);
        assert_eq!(g.draws(), 10_000);
    }

    #[test]
    fn discard_equals_drawing() {
        let mut a = TorchGenerator::new(3);
        let mut b = TorchGenerator::new(3);
        for _ in 0..1_500 {
            a.next_u32();
        }
        b.discard(1_000);
        b.discard(500);
        assert_eq!(a, b);
        assert_eq!(a.next_u32(), b.next_u32());
        assert_eq!(TorchGenerator::at(3, 1_501), a);
    }
}
