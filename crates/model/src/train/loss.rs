//! Cross-entropy with optional label smoothing (Szegedy et al., "Rethinking the
//! Inception Architecture for Computer Vision", CVPR 2016), with the formula of
//! PyTorch's `F.cross_entropy(logits, target, label_smoothing=eps)`:
//!
//! `loss_i = (1 - eps) * (-log p_i[y_i]) + eps * mean_k(-log p_i[k])`,
//! averaged over the batch (`reduction="mean"`).

use candle_core::{bail, DType, Result, Tensor, D};

/// Mean cross-entropy of `logits` against class indices `targets`.
///
/// # Shapes
/// - `logits`: `[B, K]`, float
/// - `targets`: `[B]`, u32 (or any integer type, converted)
/// - returns a scalar (rank 0) tensor, differentiable with respect to `logits`
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, label_smoothing: f64) -> Result<Tensor> {
    let (b, k) = logits.dims2()?;
    if targets.dims() != [b] {
        bail!(
            "cross_entropy: targets have shape {:?}, expected [{b}]",
            targets.dims()
        );
    }
    if b == 0 || k == 0 {
        bail!("cross_entropy: empty batch or no classes ([{b}, {k}])");
    }
    let targets = if targets.dtype() == DType::U32 {
        targets.clone()
    } else {
        targets.to_dtype(DType::U32)?
    };
    let log_p = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let picked = log_p.gather(&targets.unsqueeze(1)?, 1)?; // [B, 1]
    let nll = picked.sum_all()?.affine(-1.0 / b as f64, 0.0)?;
    if label_smoothing == 0.0 {
        return Ok(nll);
    }
    let smooth = log_p.sum_all()?.affine(-1.0 / (b * k) as f64, 0.0)?;
    nll.affine(1.0 - label_smoothing, 0.0)? + smooth.affine(label_smoothing, 0.0)?
}

/// Sum (not mean) of the plain cross-entropy of each row, without building a
/// gradient graph; for evaluation.
///
/// # Shapes
/// - `logits`: `[B, K]`; `targets`: `[B]` u32; returns per-row losses `[B]` (f32)
pub fn cross_entropy_per_row(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let logits = logits.detach();
    let log_p = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    log_p
        .gather(&targets.unsqueeze(1)?, 1)?
        .squeeze(1)?
        .neg()?
        .to_dtype(DType::F32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Reference values computed in f64 with Python's `math` module from the
    /// formula above (the one PyTorch's `cross_entropy` documents for
    /// `label_smoothing`), on logits [[1,2,3],[0,0,0],[2.5,-1,0.5]], targets [2,0,1]:
    /// eps 0 -> 1.7197988200782595, eps 0.1 -> 1.6975765978560373,
    /// eps 1 -> 1.4975765978560374; PyTorch 2.15.0's `F.cross_entropy` in float64
    /// gives the same digits.
    #[test]
    fn matches_hand_computed_values() {
        let dev = Device::Cpu;
        let logits = Tensor::new(&[[1f32, 2., 3.], [0., 0., 0.], [2.5, -1., 0.5]], &dev).unwrap();
        let targets = Tensor::new(&[2u32, 0, 1], &dev).unwrap();
        for (eps, want) in [
            (0.0, 1.719_798_820_078_259_5),
            (0.1, 1.697_576_597_856_037_3),
            (1.0, 1.497_576_597_856_037_4),
        ] {
            let got = cross_entropy(&logits, &targets, eps)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                (f64::from(got) - want).abs() < 1e-6,
                "eps {eps}: {got} vs {want}"
            );
        }
        let rows = cross_entropy_per_row(&logits, &targets).unwrap();
        let sum: f32 = rows.to_vec1::<f32>().unwrap().iter().sum();
        assert!((f64::from(sum) / 3.0 - 1.719_798_820_078_259_5).abs() < 1e-6);
    }

    /// d loss / d logits = (softmax - q) / B with q = (1 - eps) onehot + eps / K.
    #[test]
    fn gradient_is_softmax_minus_smoothed_target() {
        let dev = Device::Cpu;
        let v = candle_core::Var::new(&[[1f32, 2., 3.], [0., 0., 0.]], &dev).unwrap();
        let targets = Tensor::new(&[2u32, 0], &dev).unwrap();
        let eps = 0.1;
        let loss = cross_entropy(v.as_tensor(), &targets, eps).unwrap();
        let g = loss.backward().unwrap();
        let g = g.get(v.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
        let rows = [[1f64, 2., 3.], [0., 0., 0.]];
        for (i, row) in rows.iter().enumerate() {
            let z: f64 = row.iter().map(|x| x.exp()).sum();
            for k in 0..3 {
                let q = if k == [2, 0][i] { 1.0 - eps } else { 0.0 } + eps / 3.0;
                let want = (row[k].exp() / z - q) / 2.0;
                assert!((f64::from(g[i][k]) - want).abs() < 1e-6, "{i},{k}");
            }
        }
    }

    #[test]
    fn rejects_mismatched_targets() {
        let dev = Device::Cpu;
        let logits = Tensor::zeros((2, 3), DType::F32, &dev).unwrap();
        let targets = Tensor::new(&[0u32, 1, 2], &dev).unwrap();
        assert!(cross_entropy(&logits, &targets, 0.0).is_err());
    }
}
