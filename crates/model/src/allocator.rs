//! The global allocator the binaries use (mimalloc) and its tuning for training.
//!
//! A training step frees and re-allocates the same large buffers (activations and gradients,
//! several MB each) every few tens of milliseconds. mimalloc's default returns freed memory to
//! the operating system after 10 ms, so every step gets fresh pages that the kernel must clear
//! on first touch: 10-15% of the CPU time of a step on a 2-core machine
//! (`docs/performance.md`). [`configure`] turns purging off, so memory freed in one step is
//! reused by the next. (Delays of 1 s did not suffice in measurements: with one thread the page
//! faults stayed at the default's level; 100 s and "never" removed them.) The process keeps its
//! peak heap, which for a trial is the step's working set, a few hundred MB.
//!
//! Usage, in a binary:
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: ablate_model::allocator::Allocator = ablate_model::allocator::Allocator;
//!
//! fn main() {
//!     ablate_model::allocator::configure();
//! }
//! ```

/// The allocator to declare as `#[global_allocator]`.
pub use mimalloc::MiMalloc as Allocator;

/// How long freed memory stays with the process before it is returned to the OS, in ms
/// (mimalloc: -1 is never).
pub const PURGE_DELAY_MS: i64 = -1;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (mimalloc.h, v2 and v3).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// Sets mimalloc's purge delay to [`PURGE_DELAY_MS`] (never), unless `MIMALLOC_PURGE_DELAY` is set in
/// the environment (then mimalloc's own reading of it stands). Call once, first thing in `main`.
pub fn configure() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mimalloc's documented option setter; options may be changed at any time and
        // the value is a plain integer.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS as std::ffi::c_long) }
    }
}
