//! The end of a residual unit (He et al., "Deep Residual Learning for Image Recognition", CVPR
//! 2016): `relu(a + b)`, the residual branch plus the shortcut, as one candle custom op with a
//! CPU forward and backward.
//!
//! candle's `add` then `relu` are two autograd nodes, each with a `[B, C, H, W]` output and, in
//! the backward, a freshly allocated and zeroed gradient of that size; here the sum never exists
//! and the backward is one pass: `da = db = dy ⊙ (out > 0)` (PyTorch's ReLU gradient, zero at
//! 0). Elementwise in a fixed order: the result does not depend on the number of threads.
//!
//! On a non-CPU device, for non-f32 tensors, or off [`Kernels::Fast`], [`add_relu`] composes
//! candle's `add` with `Kernels::relu` (the generic path's ReLU on the generic path).

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

use super::kernels::{cpu_f32, Kernels};

/// Elements per parallel chunk.
const CHUNK: usize = 1 << 14;

/// `relu(a + b)`.
///
/// # Shapes
/// `a`, `b`: the same shape; returns that shape.
pub fn add_relu(a: &Tensor, b: &Tensor, kernels: Kernels) -> Result<Tensor> {
    if a.dims() != b.dims() {
        bail!("add_relu: shapes {:?} and {:?}", a.dims(), b.dims())
    }
    if !kernels.use_fast(a.device(), a.dtype()) || b.dtype() != a.dtype() {
        return kernels.relu(&(a + b)?);
    }
    a.contiguous()?.apply_op2(&b.contiguous()?, AddRelu)
}

/// `dy ⊙ (out > 0)`: the gradient through a ReLU, from its output `out` and the output's
/// gradient `dy` (PyTorch's rule: zero at 0), in parallel chunks. The ops that end in a ReLU
/// (this one, the attention op and the conv -> BN op with the residual) share it.
pub(crate) fn relu_grad(out: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut d = vec![0f32; dy.len()];
    d.par_chunks_mut(CHUNK)
        .zip(out.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
        .for_each(|(d, (o, g))| {
            for ((d, &o), &g) in d.iter_mut().zip(o).zip(g) {
                *d = if o > 0.0 { g } else { 0.0 };
            }
        });
    d
}

/// The custom op: arguments `(a, b)`.
struct AddRelu;

impl CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        "ablate-add-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (a, b) = (cpu_f32(s1, l1)?, cpu_f32(s2, l2)?);
        let n = a.len();
        let mut out: Vec<f32> = Vec::with_capacity(n);
        out.spare_capacity_mut()[..n]
            .par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
            .for_each(|(o, (a, b))| {
                for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) {
                    o.write((x + y).max(0.0));
                }
            });
        // SAFETY: the chunks above cover all `n` elements.
        unsafe { out.set_len(n) };
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (need_a, need_b) = (a.track_op(), b.track_op());
        if !(need_a || need_b) {
            return Ok((None, None));
        }
        let grad = grad.contiguous()?;
        let masked = {
            let (so, lo) = res.storage_and_layout();
            let (sg, lg) = grad.storage_and_layout();
            let (Storage::Cpu(so), Storage::Cpu(sg)) = (&*so, &*sg) else {
                bail!("ablate-add-relu: backward of the fast kernel needs cpu tensors")
            };
            let d = relu_grad(cpu_f32(so, lo)?, cpu_f32(sg, lg)?);
            Tensor::from_vec(d, res.shape(), res.device())?
        };
        Ok((need_a.then(|| masked.clone()), need_b.then_some(masked)))
    }
}
