//! The attention op followed by a residual unit's end (K. He et al., CVPR 2016; the module at
//! the `standard` integration point of J. Hu et al., "Squeeze-and-Excitation Networks", TPAMI
//! 2019, Fig. 5): `relu(attend(x) + r)` as one candle custom op with arguments
//! `(x, packed, r)`.
//!
//! Composed, the attention op's output is a `[B, C, H, W]` tensor of its own, read again by
//! `super::super::residual::add_relu`, and in the backward candle allocates, zeroes and adds its
//! gradient. Here each image's re-weighted map gets the residual and the ReLU while it is in
//! cache, and the backward masks the output gradient once (`dz = dy ⊙ (out > 0)`, PyTorch's
//! ReLU gradient, zero at 0), which is both the residual's gradient and the attention backward's
//! input. The arithmetic is the composition's, term for term: `(out + r).max(0)`.

use std::mem::MaybeUninit;

use super::AttendOp;
use crate::ops::kernels::cpu_f32;
use crate::ops::residual::relu_grad;
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Storage, Tensor};

/// `relu(op(x, packed) + r)`.
///
/// # Shapes
/// `x`, `r`: `[B, C, H, W]` (the op must not pool); returns `[B, C, H, W]`.
pub(super) fn apply(x: &Tensor, packed: &Tensor, r: &Tensor, op: AttendOp) -> Result<Tensor> {
    if op.pool {
        bail!("attention: the residual and the pool exclude each other")
    }
    if r.dims() != x.dims() || r.dtype() != x.dtype() || !r.device().same_device(x.device()) {
        bail!(
            "attention: residual {:?} ({:?}), expected {:?} ({:?}) on the map's device",
            r.dims(),
            r.dtype(),
            x.dims(),
            x.dtype()
        )
    }
    x.apply_op3(packed, &r.contiguous()?, AttendAddRelu(op))
}

/// One image's output `o` (written by the attention forward) becomes `relu(o + r)`.
pub(super) fn add_relu_image(o: &mut [MaybeUninit<f32>], r: &[f32]) {
    for (o, &rv) in o.iter_mut().zip(r) {
        // SAFETY: the attention forward wrote every element of the image's output.
        let v = unsafe { o.assume_init_read() };
        o.write((v + rv).max(0.0));
    }
}

/// The op: [`AttendOp`] with the residual and the ReLU after it.
struct AttendAddRelu(AttendOp);

impl CustomOp3 for AttendAddRelu {
    fn name(&self) -> &'static str {
        "ablate-attention-add-relu"
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
        let r = cpu_f32(s3, l3)?;
        self.0
            .forward_cpu(l1, cpu_f32(s1, l1)?, cpu_f32(s2, l2)?, Some(r))
    }

    fn bwd(
        &self,
        x: &Tensor,
        packed: &Tensor,
        r: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (need_x, need_p, need_r) = (x.track_op(), packed.track_op(), r.track_op());
        if !(need_x || need_p || need_r) {
            return Ok((None, None, None));
        }
        let grad = grad.contiguous()?;
        let dz = {
            let (so, lo) = res.storage_and_layout();
            let (sg, lg) = grad.storage_and_layout();
            let (Storage::Cpu(so), Storage::Cpu(sg)) = (&*so, &*sg) else {
                bail!("attention: the backward needs cpu tensors")
            };
            let d = relu_grad(cpu_f32(so, lo)?, cpu_f32(sg, lg)?);
            Tensor::from_vec(d, res.shape(), res.device())?
        };
        let (dx, dp) = if need_x || need_p {
            let (dx, dp) = self.0.backward(x, packed, &dz)?;
            (need_x.then_some(dx), need_p.then_some(dp))
        } else {
            (None, None)
        };
        Ok((dx, dp, need_r.then_some(dz)))
    }
}
