//! Custom candle ops for layers whose stock kernels are wrong or slow, and the choice between
//! them ([`kernels::Kernels`]).
//!
//! The fused ops (`block`, `conv`, `bn_relu`, `bn_add_relu`, `linear`, `attention`, `maxpool`,
//! `residual`, `shortcut`) have
//! CPU forwards and backwards; on other devices, and with `Kernels::Generic` on the CPU, the
//! layers run the device-generic path (`generic`): candle ops and small custom ops whose
//! gradients follow PyTorch's.

pub mod attention;
pub mod block;
pub mod bn_add_relu;
pub mod bn_relu;
mod bn_sums;
mod channel_gate;
pub mod conv;
mod direct3x3;
pub mod generic;
mod im2col;
pub mod kernels;
pub mod linear;
pub mod maxpool;
pub mod residual;
mod scratch;
pub mod shortcut;
mod winograd;

pub use maxpool::max_pool2x2;
