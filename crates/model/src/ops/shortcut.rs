//! The option-A shortcut of a CIFAR ResNet (K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual
//! Learning for Image Recognition", CVPR 2016, Sec. 3.3 and 4.2): the identity subsampled with
//! stride 2, the channels it lacks zero. Composed of candle ops whose gradients are right on
//! every device (the device-generic path and the CPU run the same ops).

use candle_core::{Result, Tensor};

/// Option A: every second row and column from the first (`x[:, :, ::2, ::2]`), then
/// `(Cout - Cin) / 2` zero channels before and the rest after (`F.pad(..., (0, 0, 0, 0, p, p))`
/// for `Cout = 2 Cin`, as the common PyTorch CIFAR ResNets write it). Plain candle ops
/// (reshape, narrow, zero padding), whose gradients are right on every device.
///
/// # Shapes
/// x: `[B, Cin, H, W]` -> `[B, Cout, ceil(H / 2), ceil(W / 2)]`.
pub fn subsample_zero_pad(x: &Tensor, out_channels: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if out_channels < c {
        candle_core::bail!("option-A shortcut: {c} channels cannot be padded to {out_channels}");
    }
    let x = if h % 2 == 1 {
        x.pad_with_zeros(2, 0, 1)?
    } else {
        x.clone()
    };
    let x = if w % 2 == 1 {
        x.pad_with_zeros(3, 0, 1)?
    } else {
        x
    };
    let (h2, w2) = (h.div_ceil(2), w.div_ceil(2));
    let y = x
        .contiguous()?
        .reshape((b, c, h2, 2, w2, 2))?
        .narrow(3, 0, 1)?
        .narrow(5, 0, 1)?
        .reshape((b, c, h2, w2))?;
    let front = (out_channels - c) / 2;
    y.pad_with_zeros(1, front, out_channels - c - front)
}
