//! Convolutions on any device: the 2-D convolution with its own backward, and ECA's 1-D
//! convolution across channels as shifted products.
//!
//! candle's `conv2d` backward computes the input gradient with `conv_transpose2d`, which on CUDA
//! is a slow direct kernel, and computes it also for the network's input, which needs none.
//! [`conv2d`] keeps candle's forward (im2col + gemm on CUDA) and gives the op a backward that
//!
//! - computes the input gradient, when the input takes part in autograd, as the forward
//!   convolution of the output gradient with the kernel flipped in both spatial dimensions and
//!   its channel axes swapped, padded by `k - 1 - p`: for stride 1 and `p <= k - 1` this is
//!   exactly the transposed convolution, through the fast forward path;
//! - computes the weight gradient as candle does (a convolution of the input, channels as the
//!   batch, with the output gradient as the kernel).
//!
//! The forward is candle's convolution computed outside the graph and handed to a custom op
//! ([`ConvGrad`]) that returns it unchanged (one device copy) and owns the backward.
//!
//! [`conv2d_strided`] (the ResNets' downsampling layers) keeps candle's strided forward; its
//! backward spreads the output gradient onto the stride-1 output grid (zeros between, the
//! positions a stride-1 convolution computes and the strided one skips) and takes the stride-1
//! gradients above from it: a strided convolution is the stride-1 one subsampled.
//!
//! [`conv1d_channels`] is ECA's convolution across the channel descriptor: a cross-correlation
//! of each row of `[B, C]` with a `k`-tap kernel, zero padding `(k - 1) / 2`, written as a sum of
//! `k` shifted rows times one tap each, so its gradient is that of plain products and sums
//! (candle's `conv1d` backward underflows when the kernel is wider than the channel count).

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

/// `x * weight + bias`, stride 1, `padding` zeros on each side (PyTorch's `nn.Conv2d` with
/// stride 1, dilation 1, groups 1).
///
/// # Shapes
/// x: `[N, Cin, H, W]`, weight `[Cout, Cin, kh, kw]`, bias `[Cout]` ->
/// `[N, Cout, H + 2p - kh + 1, W + 2p - kw + 1]`.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    padding: usize,
) -> Result<Tensor> {
    let (_, c_in, h, w) = x.dims4()?;
    let (c_out, wc_in, kh, kw) = weight.dims4()?;
    if wc_in != c_in {
        bail!("conv2d: input has {c_in} channels, weight expects {wc_in}")
    }
    if h + 2 * padding < kh || w + 2 * padding < kw {
        bail!("conv2d: kernel {kh}x{kw} larger than padded input {h}x{w} (padding {padding})")
    }
    let y = x
        .detach()
        .conv2d(&weight.detach(), padding, 1, 1, 1)?
        .contiguous()?;
    let y = if x.track_op() || weight.track_op() {
        x.apply_op3(weight, &y, ConvGrad { padding, stride: 1 })?
    } else {
        y
    };
    match bias {
        Some(b) if b.dims() == [c_out] => y.broadcast_add(&b.reshape((1, c_out, 1, 1))?),
        Some(b) => bail!("conv2d: bias shape {:?}, expected [{c_out}]", b.dims()),
        None => Ok(y),
    }
}

/// [`conv2d`] with a stride: PyTorch's `nn.Conv2d(..., stride=stride, padding=padding)`.
///
/// # Shapes
/// x: `[N, Cin, H, W]`, weight `[Cout, Cin, kh, kw]`, bias `[Cout]` ->
/// `[N, Cout, (H + 2p - kh) / stride + 1, (W + 2p - kw) / stride + 1]`.
pub fn conv2d_strided(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    padding: usize,
    stride: usize,
) -> Result<Tensor> {
    if stride == 1 {
        return conv2d(x, weight, bias, padding);
    }
    let (_, c_in, h, w) = x.dims4()?;
    let (c_out, wc_in, kh, kw) = weight.dims4()?;
    if wc_in != c_in {
        bail!("conv2d: input has {c_in} channels, weight expects {wc_in}")
    }
    if h + 2 * padding < kh || w + 2 * padding < kw || stride == 0 {
        bail!("conv2d: kernel {kh}x{kw} larger than padded input {h}x{w} (padding {padding}) or stride 0")
    }
    let y = x
        .detach()
        .conv2d(&weight.detach(), padding, stride, 1, 1)?
        .contiguous()?;
    let y = if x.track_op() || weight.track_op() {
        x.apply_op3(weight, &y, ConvGrad { padding, stride })?
    } else {
        y
    };
    match bias {
        Some(b) if b.dims() == [c_out] => y.broadcast_add(&b.reshape((1, c_out, 1, 1))?),
        Some(b) => bail!("conv2d: bias shape {:?}, expected [{c_out}]", b.dims()),
        None => Ok(y),
    }
}

/// The gradient of a strided convolution's output placed on the stride-1 output grid of
/// `(lh, lw)` positions: `dz[.., y * s, x * s] = grad[.., y, x]`, zero elsewhere.
///
/// # Shapes
/// grad: `[N, C, OH, OW]` -> `[N, C, lh, lw]` (`lh > (OH - 1) * s`, `lw > (OW - 1) * s`).
fn spread(grad: &Tensor, s: usize, lh: usize, lw: usize) -> Result<Tensor> {
    let (n, c, oh, ow) = grad.dims4()?;
    let rows = grad
        .unsqueeze(3)?
        .pad_with_zeros(3, 0, s - 1)?
        .reshape((n, c, oh * s, ow))?
        .narrow(2, 0, lh)?;
    rows.unsqueeze(4)?
        .pad_with_zeros(4, 0, s - 1)?
        .reshape((n, c, lh, ow * s))?
        .narrow(3, 0, lw)?
        .contiguous()
}

/// The identity on its third argument (the convolution's output, computed outside the graph),
/// with the convolution's gradients for the first two (input and weight).
struct ConvGrad {
    padding: usize,
    stride: usize,
}

impl CustomOp3 for ConvGrad {
    fn name(&self) -> &'static str {
        "ablate-conv2d-generic"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        y: &CpuStorage,
        y_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let Some((start, end)) = y_l.contiguous_offsets() else {
            bail!("conv2d: non-contiguous output")
        };
        let copy = match y {
            CpuStorage::F32(v) => CpuStorage::F32(v[start..end].to_vec()),
            CpuStorage::F64(v) => CpuStorage::F64(v[start..end].to_vec()),
            CpuStorage::F16(v) => CpuStorage::F16(v[start..end].to_vec()),
            CpuStorage::BF16(v) => CpuStorage::BF16(v[start..end].to_vec()),
            _ => bail!("conv2d: unsupported dtype (floats only)"),
        };
        Ok((copy, y_l.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
        y: &candle_core::CudaStorage,
        y_l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use candle_core::backend::BackendStorage;
        Ok((y.try_clone(y_l)?, y_l.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _y: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let p = self.padding;
        let (_, _, kh, kw) = weight.dims4()?;
        let spread_grad;
        let grad = if self.stride > 1 {
            let (_, _, h, w) = x.dims4()?;
            spread_grad = spread(grad, self.stride, h + 2 * p + 1 - kh, w + 2 * p + 1 - kw)?;
            &spread_grad
        } else {
            grad
        };
        let grad_x = if x.track_op() {
            Some(input_grad(grad, weight, p, x.dims4()?)?)
        } else {
            None
        };
        let grad_w = if weight.track_op() {
            let g = x
                .transpose(0, 1)?
                .conv2d(&grad.transpose(0, 1)?, p, 1, 1, 1)?
                .transpose(0, 1)?;
            let (_, _, gh, gw) = g.dims4()?;
            Some(if (gh, gw) != (kh, kw) {
                g.narrow(2, 0, kh)?.narrow(3, 0, kw)?
            } else {
                g
            })
        } else {
            None
        };
        Ok((grad_x, grad_w, None))
    }
}

/// The input gradient of a stride-1 convolution with padding `p`.
///
/// # Shapes
/// grad: `[N, Cout, OH, OW]`, weight `[Cout, Cin, kh, kw]` -> `[N, Cin, H, W]` (`in_dims`).
fn input_grad(
    grad: &Tensor,
    weight: &Tensor,
    p: usize,
    in_dims: (usize, usize, usize, usize),
) -> Result<Tensor> {
    let (_, _, kh, kw) = weight.dims4()?;
    let (_, _, h, w) = in_dims;
    if p + 1 > kh || p + 1 > kw || kh != kw {
        // Not expressible as a forward convolution with non-negative padding: candle's
        // transposed convolution.
        let (_, _, oh, _) = grad.dims4()?;
        let out_padding = h - ((oh - 1) + (kh - 1) + 1 - 2 * p);
        return grad.conv_transpose2d(weight, p, out_padding, 1, 1);
    }
    // dx[n, ci, y, x] = Σ_co Σ_i Σ_j dy[n, co, y + p - i, x + p - j] · w[co, ci, i, j]
    //                 = (dy padded by k-1-p) ⋆ w' with w'[ci, co, i, j] = w[co, ci, k-1-i, k-1-j].
    let flipped = weight.flip(&[2, 3])?.transpose(0, 1)?.contiguous()?;
    let g = grad.contiguous()?.conv2d(&flipped, kh - 1 - p, 1, 1, 1)?;
    let (_, _, gh, gw) = g.dims4()?;
    if (gh, gw) != (h, w) {
        bail!("conv2d backward: input gradient {gh}x{gw}, expected {h}x{w}")
    }
    Ok(g)
}

/// ECA's convolution across channels: `y[b, c] = Σ_j w[j] · s[b, c + j - (k-1)/2]` (zero outside
/// `0..C`), plus `bias`; PyTorch's `nn.Conv1d(1, 1, k, padding=(k-1)//2)` on `s` as `[B, 1, C]`.
///
/// # Shapes
/// s: `[B, C]`, weight `[1, 1, k]` (k odd), bias `[1]` -> `[B, C]`.
pub fn conv1d_channels(s: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (_, c) = s.dims2()?;
    let k = match weight.dims() {
        &[1, 1, k] if k % 2 == 1 => k,
        d => bail!("conv1d: weight {d:?}, expected [1, 1, k] with k odd"),
    };
    let half = (k - 1) / 2;
    let padded = s.pad_with_zeros(1, half, half)?;
    let taps = weight.reshape(k)?;
    let tap = |j: usize| -> Result<Tensor> {
        padded
            .narrow(1, j, c)?
            .broadcast_mul(&taps.narrow(0, j, 1)?)
    };
    let mut y = tap(0)?;
    for j in 1..k {
        y = (y + tap(j)?)?;
    }
    match bias {
        Some(b) if b.dims() == [1] => y.broadcast_add(b),
        Some(b) => bail!("conv1d: bias {:?}, expected [1]", b.dims()),
        None => Ok(y),
    }
}
