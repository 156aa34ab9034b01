//! Max-pooling 2x2 (stride 2, no padding, floor mode) as a candle custom op whose backward
//! routes each output gradient to the argmax of its window, as PyTorch's `F.max_pool2d(x, 2)`.
//!
//! candle 0.11's own `max_pool2d` backward multiplies the gradient by the window's mean mask
//! (a unique maximum gets 1/4 of its gradient, tied elements each get all of it); see
//! `../shared/notes/candle.md`. Here the forward saves, for every output element, the index of
//! its window's maximum inside its `H x W` plane, and the backward scatters into those indices.
//!
//! Tie and NaN rules follow PyTorch's CPU kernel (`max_pool2d_with_indices`): the window is
//! scanned row-major and an element replaces the current maximum when it is greater or NaN, so
//! among equal values the first wins and a NaN propagates.
//!
//! On the generic path (every non-CPU device, `Kernels::Generic`, dtypes other than f32/f64),
//! [`max_pool2x2`] runs `super::generic::max_pool2x2`, built from candle ops with the same
//! routing; candle's own `max_pool2d` is never used.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::kernels::Kernels;

/// Minimum number of planes handed to one rayon task.
const PAR_MIN_PLANES: usize = 64;

/// `[B, C, H, W] -> [B, C, H/2, W/2]` (floor), gradient to the argmax (PyTorch semantics):
/// this file's CPU op, or the generic composite when `kernels` says so or the tensor is not an
/// f32/f64 CPU tensor.
///
/// # Shapes
/// x: `[B, C, H, W]` float -> `[B, C, floor(H/2), floor(W/2)]`.
pub fn max_pool2x2(x: &Tensor, kernels: Kernels) -> Result<Tensor> {
    if kernels.use_generic(x.device()) || !matches!(x.dtype(), DType::F32 | DType::F64) {
        return super::generic::max_pool2x2(x);
    }
    let (_b, _c, _h, _w) = x.dims4()?;
    let x = x.contiguous()?;
    x.apply_op1(MaxPool2x2 {
        argmax: Mutex::new(None),
    })
}

/// The forward op; `argmax` is filled by `cpu_fwd` and read by `bwd`.
struct MaxPool2x2 {
    argmax: Mutex<Option<Arc<Vec<u32>>>>,
}

/// The running maximum after looking at `v` (index `i`): `v` wins when it is larger or NaN
/// (PyTorch: `val > maxval || isnan(val)`), so ties keep the first element in row-major order.
#[inline(always)]
fn pick<T: Copy + PartialOrd>(bv: T, bi: u32, v: T, i: u32) -> (T, u32) {
    // `v != v`: NaN. `|`, not `||`: both sides are cheap and no branch is wanted.
    #[allow(clippy::eq_op)]
    let take = (v > bv) | (v != v);
    (if take { v } else { bv }, if take { i } else { bi })
}

/// Pools every `h x w` plane of `src` into `dst`, recording plane-local argmax indices.
fn pool_planes<T: Copy + PartialOrd + Send + Sync>(
    src: &[T],
    h: usize,
    w: usize,
    dst: &mut [T],
    idx: &mut [u32],
) {
    let (oh, ow) = (h / 2, w / 2);
    // Row by row over slices (no bounds checks in the inner loop) with branch-free selects:
    // which element of a window is largest is data-dependent, so a branch per comparison is
    // mispredicted about half the time.
    let plane = |(s, (d, ix)): (&[T], (&mut [T], &mut [u32]))| {
        for oy in 0..oh {
            let top = 2 * oy * w;
            let r0 = &s[top..top + 2 * ow];
            let r1 = &s[top + w..top + w + 2 * ow];
            let drow = &mut d[oy * ow..(oy + 1) * ow];
            let irow = &mut ix[oy * ow..(oy + 1) * ow];
            for (ox, (dv, iv)) in drow.iter_mut().zip(irow.iter_mut()).enumerate() {
                let c = 2 * ox;
                let i0 = (top + c) as u32;
                let i1 = i0 + w as u32;
                let (mut bv, mut bi) = (r0[c], i0);
                (bv, bi) = pick(bv, bi, r0[c + 1], i0 + 1);
                (bv, bi) = pick(bv, bi, r1[c], i1);
                (bv, bi) = pick(bv, bi, r1[c + 1], i1 + 1);
                *dv = bv;
                *iv = bi;
            }
        }
    };
    if oh * ow == 0 {
        return;
    }
    src.par_chunks(h * w)
        .zip(dst.par_chunks_mut(oh * ow).zip(idx.par_chunks_mut(oh * ow)))
        .with_min_len(PAR_MIN_PLANES)
        .for_each(plane);
}

impl CustomOp1 for MaxPool2x2 {
    fn name(&self) -> &'static str {
        "max-pool-2x2-argmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = layout.shape().dims4()?;
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("max_pool2x2: non-contiguous input".into()))?;
        let (oh, ow) = (h / 2, w / 2);
        let n_out = b * c * oh * ow;
        let mut idx = vec![0u32; n_out];
        let out = match storage {
            CpuStorage::F32(v) => {
                let mut dst = vec![0f32; n_out];
                pool_planes(&v[start..end], h, w, &mut dst, &mut idx);
                CpuStorage::F32(dst)
            }
            CpuStorage::F64(v) => {
                let mut dst = vec![0f64; n_out];
                pool_planes(&v[start..end], h, w, &mut dst, &mut idx);
                CpuStorage::F64(dst)
            }
            _ => candle_core::bail!("max_pool2x2: unsupported dtype (f32 and f64 only)"),
        };
        *self.argmax.lock().map_err(|_| poisoned())? = Some(Arc::new(idx));
        Ok((out, Shape::from((b, c, oh, ow))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let argmax = self
            .argmax
            .lock()
            .map_err(|_| poisoned())?
            .clone()
            .ok_or_else(|| {
                candle_core::Error::Msg("max_pool2x2: backward before forward".into())
            })?;
        let (b, c, h, w) = arg.dims4()?;
        let grad = grad_res.contiguous()?;
        let g = grad.apply_op1_no_bwd(&MaxPool2x2Bwd {
            argmax,
            in_shape: (b, c, h, w),
        })?;
        Ok(Some(g))
    }
}

fn poisoned() -> candle_core::Error {
    candle_core::Error::Msg("max_pool2x2: argmax lock poisoned".into())
}

/// Scatters the output gradient into a zero input gradient at the saved argmax positions.
struct MaxPool2x2Bwd {
    argmax: Arc<Vec<u32>>,
    in_shape: (usize, usize, usize, usize),
}

fn scatter_planes<T: Copy + Default + std::ops::AddAssign + Send + Sync>(
    grad: &[T],
    idx: &[u32],
    hw: usize,
    ohw: usize,
    dst: &mut [T],
) {
    let plane = |(d, (g, ix)): (&mut [T], (&[T], &[u32]))| {
        for (gv, &i) in g.iter().zip(ix) {
            d[i as usize] += *gv;
        }
    };
    if ohw == 0 {
        return;
    }
    dst.par_chunks_mut(hw)
        .zip(grad.par_chunks(ohw).zip(idx.par_chunks(ohw)))
        .with_min_len(PAR_MIN_PLANES)
        .for_each(plane);
}

impl CustomOp1 for MaxPool2x2Bwd {
    fn name(&self) -> &'static str {
        "max-pool-2x2-argmax-bwd"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = self.in_shape;
        let (start, end) = layout.contiguous_offsets().ok_or_else(|| {
            candle_core::Error::Msg("max_pool2x2 backward: non-contiguous gradient".into())
        })?;
        let ohw = (h / 2) * (w / 2);
        if end - start != b * c * ohw || self.argmax.len() != b * c * ohw {
            candle_core::bail!(
                "max_pool2x2 backward: gradient has {} elements, expected {}",
                end - start,
                b * c * ohw
            );
        }
        let n_in = b * c * h * w;
        let out = match storage {
            CpuStorage::F32(v) => {
                let mut dst = vec![0f32; n_in];
                scatter_planes(&v[start..end], &self.argmax, h * w, ohw, &mut dst);
                CpuStorage::F32(dst)
            }
            CpuStorage::F64(v) => {
                let mut dst = vec![0f64; n_in];
                scatter_planes(&v[start..end], &self.argmax, h * w, ohw, &mut dst);
                CpuStorage::F64(dst)
            }
            _ => candle_core::bail!("max_pool2x2 backward: unsupported dtype (f32 and f64 only)"),
        };
        Ok((out, Shape::from((b, c, h, w))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random(shape: (usize, usize, usize, usize), seed: u64, dtype: DType) -> Tensor {
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let v: Vec<f64> = (0..n).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect();
        Tensor::from_vec(v, shape, &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
    }

    /// Naive reference: PyTorch's rule written out with explicit loops over 4-D indices.
    fn naive(x: &[f64], (b, c, h, w): (usize, usize, usize, usize)) -> (Vec<f64>, Vec<usize>) {
        let (oh, ow) = (h / 2, w / 2);
        let mut out = vec![];
        let mut arg = vec![];
        for n in 0..b {
            for ch in 0..c {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut best = f64::NEG_INFINITY;
                        let mut bi = usize::MAX;
                        for dy in 0..2 {
                            for dx in 0..2 {
                                let i = ((n * c + ch) * h + 2 * oy + dy) * w + 2 * ox + dx;
                                if bi == usize::MAX || x[i] > best || x[i].is_nan() {
                                    best = x[i];
                                    bi = i;
                                }
                            }
                        }
                        out.push(best);
                        arg.push(bi);
                    }
                }
            }
        }
        (out, arg)
    }

    /// The CPU op and the generic composite (what non-CPU devices run).
    const BOTH: [Kernels; 2] = [Kernels::Fast, Kernels::Generic];

    #[test]
    fn forward_and_backward_match_naive_reference_on_odd_shapes() {
        for kernels in BOTH {
            check_against_naive(kernels);
        }
    }

    fn check_against_naive(kernels: Kernels) {
        for (k, shape) in [
            (1, 1, 2, 2),
            (2, 3, 5, 7),
            (3, 2, 9, 4),
            (2, 70, 3, 3),
            (1, 1, 1, 6),
        ]
        .into_iter()
        .enumerate()
        {
            let x = Var::from_tensor(&random(shape, k as u64, DType::F64)).unwrap();
            let y = max_pool2x2(x.as_tensor(), kernels).unwrap();
            let xv = x.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let (ref_out, ref_arg) = naive(&xv, shape);
            assert_eq!(y.dims(), &[shape.0, shape.1, shape.2 / 2, shape.3 / 2]);
            assert_eq!(y.flatten_all().unwrap().to_vec1::<f64>().unwrap(), ref_out);
            // candle's forward is right: compare to it too
            if shape.2 >= 2 && shape.3 >= 2 {
                let c = x.as_tensor().max_pool2d(2).unwrap();
                assert_eq!(c.flatten_all().unwrap().to_vec1::<f64>().unwrap(), ref_out);
            }
            // gradient of sum(y * g) is g routed to the argmax
            let g = random(y.dims4().unwrap(), 100 + k as u64, DType::F64);
            let loss = (&y * &g).unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            let dx = grads
                .get(&x)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            let mut expect = vec![0.0; xv.len()];
            for (gv, &i) in g
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap()
                .iter()
                .zip(&ref_arg)
            {
                expect[i] += gv;
            }
            assert_eq!(dx, expect, "{kernels:?} shape {shape:?}");
        }
    }

    #[test]
    fn ties_go_to_the_first_element_and_nan_propagates() {
        for kernels in BOTH {
            ties_and_nan(kernels);
        }
    }

    fn ties_and_nan(kernels: Kernels) {
        // PyTorch: F.max_pool2d(torch.tensor([[[[1.,1.],[1.,1.]]]]), 2) routes grad to index 0
        let x = Var::from_tensor(
            &Tensor::new(&[[[[1f32, 1., 0., 2.], [1., 1., 2., 2.]]]], &Device::Cpu).unwrap(),
        )
        .unwrap();
        let y = max_pool2x2(x.as_tensor(), kernels).unwrap();
        assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), [1., 2.]);
        let grads = y.sum_all().unwrap().backward().unwrap();
        let dx = grads
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(dx, [1., 0., 0., 1., 0., 0., 0., 0.]);

        let x = Tensor::new(&[[[[1f32, f32::NAN], [3., 0.]]]], &Device::Cpu).unwrap();
        let y = max_pool2x2(&x, kernels)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(y[0].is_nan());
    }

    #[test]
    fn gradient_matches_finite_differences() {
        for kernels in BOTH {
            finite_differences(kernels);
        }
    }

    fn finite_differences(kernels: Kernels) {
        // central differences of L = sum(pool(x) * g) in f64, on an odd shape
        let shape = (2, 3, 5, 7);
        let x0 = random(shape, 7, DType::F64);
        let g = random((2, 3, 2, 3), 8, DType::F64);
        let loss = |x: &Tensor| -> f64 {
            (max_pool2x2(x, kernels).unwrap() * &g)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        let x = Var::from_tensor(&x0).unwrap();
        let l = (max_pool2x2(x.as_tensor(), kernels).unwrap() * &g)
            .unwrap()
            .sum_all()
            .unwrap();
        let analytic = l
            .backward()
            .unwrap()
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let base = x0.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let eps = 1e-6;
        let mut max_err: f64 = 0.0;
        for i in 0..base.len() {
            let mut p = base.clone();
            p[i] += eps;
            let mut m = base.clone();
            m[i] -= eps;
            let tp = Tensor::from_vec(p, shape, &Device::Cpu).unwrap();
            let tm = Tensor::from_vec(m, shape, &Device::Cpu).unwrap();
            let fd = (loss(&tp) - loss(&tm)) / (2.0 * eps);
            max_err = max_err.max((fd - analytic[i]).abs());
        }
        assert!(
            max_err < 1e-6,
            "{kernels:?}: max |fd - analytic| = {max_err}"
        );
    }

    #[test]
    fn large_batches_take_the_parallel_path_and_agree() {
        let shape = (8, 16, 6, 6); // 128 planes >= PAR_MIN_PLANES
        let x = Var::from_tensor(&random(shape, 3, DType::F32)).unwrap();
        let y = max_pool2x2(x.as_tensor(), Kernels::Fast).unwrap();
        let reference = x.as_tensor().max_pool2d(2).unwrap();
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            reference.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        let grads = y.sum_all().unwrap().backward().unwrap();
        let dx = grads.get(&x).unwrap();
        // each window routes exactly one unit of gradient
        let total = dx.sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(total, (8 * 16 * 3 * 3) as f32);
        let nonzero = dx
            .ne(0f32)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .sum_all()
            .unwrap();
        assert_eq!(nonzero.to_scalar::<f32>().unwrap(), (8 * 16 * 3 * 3) as f32);
    }

    #[test]
    fn non_contiguous_input_is_handled() {
        let x = random((2, 4, 6, 6), 11, DType::F32);
        let t = x.transpose(2, 3).unwrap(); // non-contiguous view
        let a = max_pool2x2(&t, Kernels::Fast).unwrap();
        let b = t.contiguous().unwrap().max_pool2d(2).unwrap();
        assert_eq!(
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }
}
