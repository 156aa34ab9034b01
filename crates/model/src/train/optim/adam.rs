//! Adam's update (Kingma & Ba, ICLR 2015) with `torch.optim.Adam`'s exact rule: the fused
//! in-place CPU kernel over host moments, and the same formulas as tensor ops for every other
//! device (and for `Kernels::Generic` on the CPU).

use std::cell::RefCell;

use candle_core::{bail, CpuStorage, InplaceOp2, Layout, Result, Tensor};
use rayon::prelude::*;

use super::{contiguous_grad, param_and_grad, Buffers, OptimizerParams, ParamSlot, CHUNK};

/// Adam's scalar factors for step `t`, computed in f64 as PyTorch does.
struct AdamScalars {
    wd: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    neg_step_size: f32,
    bc2_sqrt: f32,
    eps: f32,
}

impl AdamScalars {
    fn new(p: &OptimizerParams, lr: f64, t: u64) -> Self {
        let [b1, b2] = p.betas;
        let bc1 = 1.0 - b1.powi(t.min(i32::MAX as u64) as i32);
        let bc2 = 1.0 - b2.powi(t.min(i32::MAX as u64) as i32);
        Self {
            wd: p.weight_decay as f32,
            one_minus_beta1: (1.0 - b1) as f32,
            beta2: b2 as f32,
            one_minus_beta2: (1.0 - b2) as f32,
            neg_step_size: (-(lr / bc1)) as f32,
            bc2_sqrt: bc2.sqrt() as f32,
            eps: p.eps as f32,
        }
    }
}

/// In-place fused Adam on one f32 CPU parameter; the moments live in `m`, `v`.
struct AdamKernel<'a> {
    s: AdamScalars,
    m: RefCell<&'a mut [f32]>,
    v: RefCell<&'a mut [f32]>,
}

impl InplaceOp2 for AdamKernel<'_> {
    fn name(&self) -> &'static str {
        "adam-fused"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let (param, grad) = param_and_grad("adam-fused", s1, l1, s2, l2)?;
        let mut m = self.m.borrow_mut();
        let mut v = self.v.borrow_mut();
        if m.len() != param.len() || v.len() != param.len() {
            bail!("adam-fused: size mismatch");
        }
        let s = &self.s;
        param
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .for_each(|(((p, g), m), v)| {
                for i in 0..p.len() {
                    let mut gi = g[i];
                    if s.wd != 0.0 {
                        gi += s.wd * p[i];
                    }
                    // exp_avg.lerp_(grad, 1 - beta1): PyTorch's lerp for weight < 0.5.
                    m[i] += s.one_minus_beta1 * (gi - m[i]);
                    // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                    v[i] = v[i] * s.beta2 + s.one_minus_beta2 * gi * gi;
                    // denom = exp_avg_sq.sqrt() / bias_correction2_sqrt + eps
                    let denom = v[i].sqrt() / s.bc2_sqrt + s.eps;
                    // param.addcdiv_(exp_avg, denom, value=-step_size)
                    p[i] += s.neg_step_size * m[i] / denom;
                }
            });
        Ok(())
    }
}

pub(super) fn adam_host(
    slot: &mut ParamSlot,
    grad: &Tensor,
    p: &OptimizerParams,
    lr: f64,
) -> Result<()> {
    let n = slot.var.elem_count();
    if matches!(slot.buffers, Buffers::Empty) {
        slot.buffers = Buffers::Host {
            a: vec![0.0; n],
            b: vec![0.0; n],
        };
    }
    let Buffers::Host { a, b } = &mut slot.buffers else {
        unreachable!("host buffers set above");
    };
    let grad = contiguous_grad(grad)?;
    let op = AdamKernel {
        s: AdamScalars::new(p, lr, slot.step),
        m: RefCell::new(a.as_mut_slice()),
        v: RefCell::new(b.as_mut_slice()),
    };
    slot.var.as_tensor().inplace_op2(&grad, &op)
}

pub(super) fn adam_tensor(
    slot: &mut ParamSlot,
    grad: &Tensor,
    p: &OptimizerParams,
    lr: f64,
) -> Result<()> {
    let theta = slot.var.as_detached_tensor();
    let grad = grad.detach();
    let g = if p.weight_decay != 0.0 {
        (&grad + theta.affine(p.weight_decay, 0.0)?)?
    } else {
        grad
    };
    let [b1, b2] = p.betas;
    let (m, v) = match std::mem::replace(&mut slot.buffers, Buffers::Empty) {
        Buffers::Device { a, b: Some(b) } => (a, b),
        Buffers::Empty => (g.zeros_like()?, g.zeros_like()?),
        _ => bail!("adam: inconsistent state for {}", slot.name),
    };
    // m + (1 - beta1) * (g - m)
    let m = (&m + (&g - &m)?.affine(1.0 - b1, 0.0)?)?;
    let v = (v.affine(b2, 0.0)? + g.sqr()?.affine(1.0 - b2, 0.0)?)?;
    let t = slot.step.min(i32::MAX as u64) as i32;
    let bc1 = 1.0 - b1.powi(t);
    let bc2_sqrt = (1.0 - b2.powi(t)).sqrt();
    let denom = v.sqrt()?.affine(1.0 / bc2_sqrt, p.eps)?;
    let upd = (m.affine(-(lr / bc1), 0.0)? / denom)?;
    slot.var.set(&(theta + upd)?)?;
    slot.buffers = Buffers::Device { a: m, b: Some(v) };
    Ok(())
}
