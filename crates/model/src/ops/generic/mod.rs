//! The device-generic path: the ops every non-CPU device runs, with PyTorch's gradients.
//!
//! candle's own autograd is right for most ops but not for all of the ones the models use, and
//! the fast kernels (`super::block`, `super::conv`, ...) exist for the CPU only. This folder holds
//! the ops whose candle versions differ from PyTorch, each built from candle ops whose autograd
//! is right (or a custom op with a CPU and a CUDA forward and a backward made of such ops):
//!
//! - `pool.rs`: 2x2 max-pooling and max reductions whose gradient goes to the first maximum
//!   (PyTorch's `max_pool2d` and `max(dim)`); candle's `max_pool2d` backward spreads it over the
//!   window, and its `max` reduction hands it to every tied element.
//! - `activation.rs`: ReLU with a zero gradient at 0 (candle passes it), hard sigmoid with
//!   PyTorch's gradient at the kinks.
//! - `conv.rs`: the 2-D convolution with a backward that computes the input gradient as a forward
//!   convolution (flipped, transposed kernel) instead of candle's slow direct
//!   `conv_transpose2d` kernel on CUDA, and skips it when the input needs none; ECA's 1-D
//!   convolution across the channels as shifted products (no `conv1d`, whose backward has a
//!   width bug in candle).
//!
//! Everything else the generic path runs is a plain candle op whose gradient is right (matmul,
//! broadcast arithmetic, means and sums, `exp`/`log`, sigmoid, `gather`, `cat`).
//! [`super::kernels::Kernels::Generic`] runs this path on the CPU too, so the golden tests check
//! the exact op set a CUDA device runs.

mod activation;
mod conv;
mod pool;

pub use activation::{hard_sigmoid, relu};
pub use conv::{conv1d_channels, conv2d, conv2d_strided};
pub use pool::{max_keepdim_first, max_last_first, max_pool2x2};
