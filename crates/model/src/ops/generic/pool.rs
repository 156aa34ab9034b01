//! Max-pooling 2x2 and max reductions on any device, gradient to the first maximum.
//!
//! PyTorch's `F.max_pool2d(x, 2)` scans each window row-major and takes an element when it is
//! greater than the running maximum or NaN (`max_pool2d_with_indices`), then routes the output
//! gradient to that one element; `torch.max(x, dim)` / `adaptive_max_pool2d` route it to the
//! index they return, the first maximum. Both are built here from candle ops:
//!
//! 1. the position of the chosen element is computed from a detached copy of the input
//!    (comparisons and selections, no gradient);
//! 2. a mask of the input's shape marks that one element per window (or per reduced row);
//! 3. the result is `sum(where(mask, x, 0))` over the window, which equals the maximum exactly
//!    (the other terms are zeros) and whose autograd (`where_cond`, then a broadcast of the
//!    sum's gradient) sends the whole gradient to the marked element and nothing elsewhere.

use candle_core::{DType, Result, Tensor, D};

/// `[B, C, H, W] -> [B, C, floor(H/2), floor(W/2)]`, as PyTorch's `F.max_pool2d(x, 2)`.
///
/// # Shapes
/// x: `[B, C, H, W]` float -> `[B, C, H/2, W/2]` (floor).
pub fn max_pool2x2(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (oh, ow) = (h / 2, w / 2);
    // Floor mode: the last row or column of an odd side is never in a window.
    let x = if (h, w) == (2 * oh, 2 * ow) {
        x.clone()
    } else {
        x.narrow(2, 0, 2 * oh)?.narrow(3, 0, 2 * ow)?
    };
    let windows = x.contiguous()?.reshape((b, c, oh, 2, ow, 2))?;
    let mask = first_max_in_window(&windows.detach())?;
    let zeros = Tensor::zeros((), x.dtype(), x.device())?.broadcast_as(windows.shape())?;
    mask.where_cond(&windows, &zeros)?
        .sum_keepdim((3, 5))?
        .reshape((b, c, oh, ow))
}

/// The mask (u8, the shape of `windows`) of the element PyTorch's max-pool picks in each
/// `2 x 2` window: row-major scan, an element replaces the running maximum when greater or NaN.
///
/// # Shapes
/// windows: `[B, C, OH, 2, OW, 2]` -> same, u8.
fn first_max_in_window(windows: &Tensor) -> Result<Tensor> {
    let at =
        |dy: usize, dx: usize| -> Result<Tensor> { windows.narrow(3, dy, 1)?.narrow(5, dx, 1) };
    let mut best = at(0, 0)?;
    let mut pick = best.zeros_like()?.to_dtype(DType::U8)?;
    for (k, (dy, dx)) in [(0, 1), (1, 0), (1, 1)].into_iter().enumerate() {
        let v = at(dy, dx)?;
        // `v > best || isnan(v)`: both comparisons give 0 or 1, their sum is non-zero when
        // either holds.
        let take = (v.gt(&best)? + v.ne(&v)?)?;
        best = take.where_cond(&v, &best)?;
        let code = Tensor::full(k as u8 + 1, pick.shape(), pick.device())?;
        pick = take.where_cond(&code, &pick)?;
    }
    // Window position codes 0 1 / 2 3, broadcast against the chosen code of each window.
    let codes = Tensor::new(&[0u8, 1, 2, 3], windows.device())?.reshape((1, 1, 1, 2, 1, 2))?;
    pick.broadcast_eq(&codes)
}

/// The maximum over `dim` (kept as size 1), gradient to the first maximal element, as PyTorch's
/// `torch.max(x, dim, keepdim=True).values` and `F.adaptive_max_pool2d(x, 1)`.
///
/// # Shapes
/// x: any, `dim` of size >= 1 -> x's shape with `dim` of size 1.
pub fn max_keepdim_first(x: &Tensor, dim: usize) -> Result<Tensor> {
    let n = x.dim(dim)?;
    let xd = x.detach();
    let max = xd.max_keepdim(dim)?;
    let is_max = xd.broadcast_eq(&max)?;
    // Positions along `dim`, broadcast over the other dimensions; the smallest position of a
    // maximal element is the first.
    let mut shape = vec![1usize; x.rank()];
    shape[dim] = n;
    let positions = Tensor::arange(0u32, n as u32, x.device())?
        .reshape(shape)?
        .broadcast_as(x.shape())?;
    let beyond = Tensor::full(n as u32, x.shape(), x.device())?;
    let first = is_max.where_cond(&positions, &beyond)?.min_keepdim(dim)?;
    let mask = positions.broadcast_eq(&first)?;
    let zeros = Tensor::zeros((), x.dtype(), x.device())?.broadcast_as(x.shape())?;
    mask.where_cond(x, &zeros)?.sum_keepdim(dim)
}

/// [`max_keepdim_first`] over the last dimension, without keeping it.
///
/// # Shapes
/// x: `[..., N]` -> `[...]`.
pub fn max_last_first(x: &Tensor) -> Result<Tensor> {
    let last = x.rank() - 1;
    max_keepdim_first(x, last)?.squeeze(D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// PyTorch: `x = torch.tensor([[1., 3., 3., 2.], [5., 5., 5., 5.]], requires_grad=True)`;
    /// `x.max(dim=1, keepdim=True).values.sum().backward()` gives values `[[3], [5]]` and
    /// `x.grad = [[0, 1, 0, 0], [1, 0, 0, 0]]` (the first maximum of each row).
    #[test]
    fn max_reduction_routes_the_gradient_to_the_first_maximum() {
        let x = Var::new(&[[1f32, 3., 3., 2.], [5., 5., 5., 5.]], &Device::Cpu).unwrap();
        let y = max_keepdim_first(x.as_tensor(), 1).unwrap();
        assert_eq!(y.to_vec2::<f32>().unwrap(), [[3.], [5.]]);
        let g = y.sum_all().unwrap().backward().unwrap();
        let dx = g.get(&x).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(dx, [[0., 1., 0., 0.], [1., 0., 0., 0.]]);

        // over the first dimension, and without keeping the last
        let y = max_keepdim_first(x.as_tensor(), 0).unwrap();
        assert_eq!(y.to_vec2::<f32>().unwrap(), [[5., 5., 5., 5.]]);
        let g = y.sum_all().unwrap().backward().unwrap();
        let dx = g.get(&x).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(dx, [[0., 0., 0., 0.], [1., 1., 1., 1.]]);
        let y = max_last_first(x.as_tensor()).unwrap();
        assert_eq!(y.to_vec1::<f32>().unwrap(), [3., 5.]);
    }

    #[test]
    fn infinities_pool_exactly() {
        let x = Tensor::new(
            &[[[
                [f32::NEG_INFINITY, f32::NEG_INFINITY],
                [f32::NEG_INFINITY, f32::INFINITY],
            ]]],
            &Device::Cpu,
        )
        .unwrap();
        let y = max_pool2x2(&x).unwrap().flatten_all().unwrap();
        assert_eq!(y.to_vec1::<f32>().unwrap(), [f32::INFINITY]);
        let x = Tensor::new(&[[[[f32::NEG_INFINITY; 2]; 2]]], &Device::Cpu).unwrap();
        let y = max_pool2x2(&x).unwrap().flatten_all().unwrap();
        assert_eq!(y.to_vec1::<f32>().unwrap(), [f32::NEG_INFINITY]);
    }
}
