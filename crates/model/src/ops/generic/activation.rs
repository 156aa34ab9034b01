//! ReLU and hard sigmoid on any device, with PyTorch's gradients.
//!
//! - ReLU: PyTorch's backward is `threshold_backward(grad, x, 0)`, zero where `x <= 0`; candle's
//!   `relu` passes the gradient at `x == 0` (`x >= 0`). Here `where(x <= 0, 0, x)`: the same
//!   forward (NaN stays NaN, as `torch.relu`), and `where_cond`'s gradient is PyTorch's.
//! - Hard sigmoid (`torch.nn.Hardsigmoid`): forward `min(max(x + 3, 0), 6) / 6`, gradient `1/6`
//!   strictly inside `(-3, 3)` and 0 elsewhere; candle's `clamp` (via `maximum`/`minimum`)
//!   halves the gradient at the kinks.

use candle_core::{Result, Tensor};

/// `max(x, 0)` with a zero gradient at `x <= 0`.
///
/// # Shapes
/// x: any -> same.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    let zero = Tensor::zeros((), x.dtype(), x.device())?;
    let zeros = zero.broadcast_as(x.shape())?;
    x.broadcast_le(&zero)?.where_cond(&zeros, x)
}

/// `min(max(x + 3, 0), 6) / 6` with a gradient of `1/6` inside `(-3, 3)` and 0 outside.
///
/// # Shapes
/// x: any -> same.
pub fn hard_sigmoid(x: &Tensor) -> Result<Tensor> {
    let scalar = |v: f64| -> Result<Tensor> {
        Tensor::new(v, x.device())?
            .to_dtype(x.dtype())?
            .broadcast_as(x.shape())
    };
    let (lo, hi) = (scalar(-3.0)?, scalar(3.0)?);
    let middle = ((x + 3.0)? / 6.0)?;
    let upper = x.ge(&hi)?.where_cond(&scalar(1.0)?, &middle)?;
    x.le(&lo)?.where_cond(&scalar(0.0)?, &upper)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// PyTorch 2.x, `x = torch.tensor([-4., -3., -1., 0., 2., 3., 5.], requires_grad=True)`:
    /// `torch.relu(x).sum().backward()` gives `x.grad = [0, 0, 0, 0, 1, 1, 1]`;
    /// `F.hardsigmoid(x)` is `[0, 0, 1/3, 1/2, 5/6, 1, 1]` and its gradient
    /// `[0, 0, 1/6, 1/6, 1/6, 0, 0]`.
    #[test]
    fn values_and_gradients_at_the_kinks_follow_pytorch() {
        let v = [-4f32, -3., -1., 0., 2., 3., 5.];
        let x = Var::new(&v, &Device::Cpu).unwrap();
        let y = relu(x.as_tensor()).unwrap();
        assert_eq!(y.to_vec1::<f32>().unwrap(), [0., 0., 0., 0., 2., 3., 5.]);
        let g = y.sum_all().unwrap().backward().unwrap();
        let dx = g.get(&x).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(dx, [0., 0., 0., 0., 1., 1., 1.]);

        let y = hard_sigmoid(x.as_tensor()).unwrap();
        let want = [0., 0., 1. / 3., 0.5, 5. / 6., 1., 1.];
        for (a, b) in y.to_vec1::<f32>().unwrap().iter().zip(want) {
            assert!((a - b).abs() < 1e-7, "{a} vs {b}");
        }
        let g = y.sum_all().unwrap().backward().unwrap();
        let dx = g.get(&x).unwrap().to_vec1::<f32>().unwrap();
        let sixth = 1f32 / 6.;
        for (a, b) in dx.iter().zip([0., 0., sixth, sixth, sixth, 0., 0.]) {
            assert!((a - b).abs() < 1e-7, "{a} vs {b}");
        }
    }

    #[test]
    fn relu_keeps_nan() {
        let x = Tensor::new(&[f32::NAN, -1.0], &Device::Cpu).unwrap();
        let y = relu(&x).unwrap().to_vec1::<f32>().unwrap();
        assert!(y[0].is_nan() && y[1] == 0.0);
    }
}
