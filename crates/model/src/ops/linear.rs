//! Fully connected layer `y = x·Wᵀ + b` (PyTorch's `nn.Linear`) as one candle custom op with a
//! CPU forward and backward on the `gemm` crate.
//!
//! candle's own path (`x.matmul(&w.t())` then `broadcast_add`) records three autograd nodes,
//! and the weight gradient comes back through the transpose node as a strided tensor that is
//! added into a zeroed one: for `fc1` (2048 x 512) that is several passes over 4 MB per step.
//! Here the weight gradient `dW = dYᵀ·X` is computed directly in `W`'s layout.
//!
//! On a non-CPU device, for non-f32 tensors, or with [`Kernels::Reference`], [`linear`] runs
//! candle's ops ([`linear_reference`]).

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Storage, Tensor};
use gemm::Parallelism;

use super::conv::gemm_rm;
use super::kernels::{bias_or_zeros, cpu_f32, Kernels};

/// `x·Wᵀ + b`.
///
/// # Shapes
/// `x`: `[N, in]`, `weight`: `[out, in]`, `bias`: `[out]`; returns `[N, out]`.
pub fn linear(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    kernels: Kernels,
) -> Result<Tensor> {
    if !kernels.use_fast(x.device(), x.dtype()) {
        return linear_reference(x, weight, bias);
    }
    let (_, fin) = x.dims2()?;
    let (fout, win) = weight.dims2()?;
    if win != fin {
        bail!("linear: input has {fin} features, weight expects {win}")
    }
    let has_bias = bias.is_some();
    let bias = bias_or_zeros(bias, fout, x, "linear")?;
    x.contiguous()?
        .apply_op3(&weight.contiguous()?, &bias, LinearOp { has_bias })
}

/// The reference path: candle's `matmul` with the transposed weight, plus a broadcast bias.
///
/// # Shapes
/// As [`linear`].
pub fn linear_reference(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let y = x.matmul(&weight.t()?)?;
    match bias {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

fn parallelism() -> Parallelism {
    match rayon::current_num_threads() {
        0 | 1 => Parallelism::None,
        n => Parallelism::Rayon(n),
    }
}

/// The custom op: arguments `(x, weight, bias)`.
struct LinearOp {
    has_bias: bool,
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "ablate-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, fin) = l1.shape().dims2()?;
        let (fout, _) = l2.shape().dims2()?;
        let (x, w, b) = (cpu_f32(s1, l1)?, cpu_f32(s2, l2)?, cpu_f32(s3, l3)?);
        let mut y = Vec::with_capacity(n * fout);
        for _ in 0..n {
            y.extend_from_slice(b);
        }
        // y[N, out] += x[N, in] · Wᵀ[in, out]
        gemm_rm(
            parallelism(),
            n,
            fout,
            fin,
            &mut y,
            true,
            x,
            fin,
            1,
            w,
            1,
            fin,
        );
        Ok((CpuStorage::F32(y), Shape::from((n, fout))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (need_dx, need_dw) = (x.track_op(), w.track_op());
        let need_db = self.has_bias && b.track_op();
        if !(need_dx || need_dw || need_db) {
            return Ok((None, None, None));
        }
        let grad = grad.contiguous()?;
        let (n, fin) = x.dims2()?;
        let (fout, _) = w.dims2()?;
        let (dx, dw, db) = {
            let (sx, lx) = x.storage_and_layout();
            let (sw, lw) = w.storage_and_layout();
            let (sg, lg) = grad.storage_and_layout();
            let (Storage::Cpu(sx), Storage::Cpu(sw), Storage::Cpu(sg)) = (&*sx, &*sw, &*sg) else {
                bail!("ablate-linear: backward of the fast kernel needs cpu tensors")
            };
            let (xs, ws, dy) = (cpu_f32(sx, lx)?, cpu_f32(sw, lw)?, cpu_f32(sg, lg)?);
            let par = parallelism();
            let dx = need_dx.then(|| {
                // dX[N, in] = dY[N, out] · W[out, in]
                let mut dx = vec![0f32; n * fin];
                gemm_rm(par, n, fin, fout, &mut dx, false, dy, fout, 1, ws, fin, 1);
                dx
            });
            let dw = need_dw.then(|| {
                // dW[out, in] = dYᵀ[out, N] · X[N, in]
                let mut dw = vec![0f32; fout * fin];
                gemm_rm(par, fout, fin, n, &mut dw, false, dy, 1, fout, xs, fin, 1);
                dw
            });
            let db = need_db.then(|| {
                let mut db = vec![0f32; fout];
                for row in dy.chunks(fout) {
                    for (d, v) in db.iter_mut().zip(row) {
                        *d += v;
                    }
                }
                db
            });
            (dx, dw, db)
        };
        let dev = x.device();
        Ok((
            dx.map(|v| Tensor::from_vec(v, (n, fin), dev)).transpose()?,
            dw.map(|v| Tensor::from_vec(v, (fout, fin), dev))
                .transpose()?,
            db.map(|v| Tensor::from_vec(v, fout, dev)).transpose()?,
        ))
    }
}
