//! Custom candle ops for layers whose stock kernels are wrong or slow.
//!
//! Each op has a CPU forward and backward and falls back to candle's own ops on other devices,
//! so the `cuda` build still works.

pub mod block;
pub mod bn_relu;
pub mod channel_pool;
pub mod conv;
pub mod kernels;
pub mod linear;
pub mod maxpool;
pub mod scale;
mod scratch;
mod se_excite;

pub use maxpool::max_pool2x2;
