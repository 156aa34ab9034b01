//! SGD with momentum and Nesterov (Sutskever et al., ICML 2013) with `torch.optim.SGD`'s
//! exact rule (`dampening = 0`): the fused in-place CPU kernel over a host momentum buffer, and
//! the same formulas as tensor ops for every other device.

use std::cell::RefCell;

use candle_core::{bail, CpuStorage, InplaceOp2, Layout, Result, Tensor};
use rayon::prelude::*;

use super::{contiguous_grad, param_and_grad, Buffers, OptimizerParams, ParamSlot, CHUNK};

/// In-place fused SGD on one f32 CPU parameter; the momentum buffer is `buf`
/// (empty when momentum is 0).
struct SgdKernel<'a> {
    wd: f32,
    momentum: f32,
    nesterov: bool,
    neg_lr: f32,
    first: bool,
    buf: RefCell<&'a mut [f32]>,
}

impl InplaceOp2 for SgdKernel<'_> {
    fn name(&self) -> &'static str {
        "sgd-fused"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let (param, grad) = param_and_grad("sgd-fused", s1, l1, s2, l2)?;
        let mut buf = self.buf.borrow_mut();
        let (wd, mu, nesterov, neg_lr, first) = (
            self.wd,
            self.momentum,
            self.nesterov,
            self.neg_lr,
            self.first,
        );
        if buf.is_empty() {
            param
                .par_chunks_mut(CHUNK)
                .zip(grad.par_chunks(CHUNK))
                .for_each(|(p, g)| {
                    for i in 0..p.len() {
                        let d = if wd != 0.0 { g[i] + wd * p[i] } else { g[i] };
                        p[i] += neg_lr * d;
                    }
                });
            return Ok(());
        }
        if buf.len() != param.len() {
            bail!("sgd-fused: size mismatch");
        }
        param
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .zip(buf.par_chunks_mut(CHUNK))
            .for_each(|((p, g), b)| {
                for i in 0..p.len() {
                    let d = if wd != 0.0 { g[i] + wd * p[i] } else { g[i] };
                    // buf = clone(d) at the first step, else buf * momentum + d
                    b[i] = if first { d } else { b[i] * mu + d };
                    let d = if nesterov { d + mu * b[i] } else { b[i] };
                    p[i] += neg_lr * d;
                }
            });
        Ok(())
    }
}

pub(super) fn sgd_host(
    slot: &mut ParamSlot,
    grad: &Tensor,
    p: &OptimizerParams,
    lr: f64,
) -> Result<()> {
    let n = slot.var.elem_count();
    let first = matches!(slot.buffers, Buffers::Empty);
    if first {
        let a = if p.momentum != 0.0 {
            vec![0.0; n]
        } else {
            Vec::new()
        };
        slot.buffers = Buffers::Host { a, b: Vec::new() };
    }
    let Buffers::Host { a, .. } = &mut slot.buffers else {
        unreachable!("host buffers set above");
    };
    let grad = contiguous_grad(grad)?;
    let op = SgdKernel {
        wd: p.weight_decay as f32,
        momentum: p.momentum as f32,
        nesterov: p.nesterov,
        neg_lr: (-lr) as f32,
        first,
        buf: RefCell::new(a.as_mut_slice()),
    };
    slot.var.as_tensor().inplace_op2(&grad, &op)
}

pub(super) fn sgd_tensor(
    slot: &mut ParamSlot,
    grad: &Tensor,
    p: &OptimizerParams,
    lr: f64,
) -> Result<()> {
    let theta = slot.var.as_detached_tensor();
    let grad = grad.detach();
    let mut d = if p.weight_decay != 0.0 {
        (&grad + theta.affine(p.weight_decay, 0.0)?)?
    } else {
        grad
    };
    if p.momentum != 0.0 {
        let buf = match std::mem::replace(&mut slot.buffers, Buffers::Empty) {
            Buffers::Empty => d.copy()?,
            Buffers::Device { a, .. } => (a.affine(p.momentum, 0.0)? + &d)?,
            Buffers::Host { .. } => bail!("sgd: inconsistent state for {}", slot.name),
        };
        d = if p.nesterov {
            (&d + buf.affine(p.momentum, 0.0)?)?
        } else {
            buf.clone()
        };
        slot.buffers = Buffers::Device { a: buf, b: None };
    }
    slot.var.set(&(theta + d.affine(-lr, 0.0)?)?)?;
    Ok(())
}
