//! 2-D convolution, zero padding, optional bias: PyTorch's `nn.Conv2d` (a cross-correlation)
//! with `dilation=1, groups=1`, stride 1 ([`conv2d`]) or any stride ([`conv2d_strided`], the
//! ResNets' downsampling layers), as a candle custom op with fast CPU kernels.
//!
//! Forward: per image, im2col into a per-thread buffer, then one gemm
//! (`out[Cout, H*W] = W[Cout, Cin*kh*kw] x col[Cin*kh*kw, H*W] + bias`); 3x3 kernels with stride 1
//! and padding 1 run the direct kernels of `super::direct3x3` instead on CPUs with AVX-512, in
//! the forward and in both gradients; among those, convolutions whose channel counts are
//! multiples of 16 run Winograd's F(2x2, 3x3) (`super::winograd`) for the forward and both
//! gradients, the filters transformed once per batch (`Filters`).
//! Backward (`backward.rs`), in one pass over the batch: the weight gradient (`dY x colᵀ`, accumulated per fixed
//! chunk of images, then summed in chunk order so the result does not depend on the number of
//! threads), the bias gradient (row sums of `dY`), and the input gradient (`Wᵀ x dY`, then
//! col2im) only when the input takes part in autograd: the first layer's input does not.
//!
//! On the generic path (every non-CPU device, [`Kernels::Generic`]) [`conv2d`] runs
//! `super::generic::conv2d`; with [`Kernels::Reference`] or non-f32 CPU tensors, candle's own
//! `conv2d` (the reference path, [`conv2d_reference`]).

use std::cell::RefCell;
use std::mem::MaybeUninit;

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Storage, Tensor};
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

pub(crate) use super::direct3x3::Store;
use super::im2col::im2col;
pub(crate) use super::im2col::Geom;
use super::kernels::{bias_or_zeros, cpu_f32, grad_like, Kernels};
use super::{direct3x3, winograd};

mod backward;
use backward::backward_cpu;
pub(crate) use backward::{backward_cpu_with, Need};

/// The gemm parallelism inside the per-image kernels.
const SERIAL: Parallelism = Parallelism::None;

/// Images per chunk of the weight-gradient reduction. Fixed (not derived from the thread
/// count) so that the summation order, and thus the result, is the same on any machine.
const GRAD_CHUNK: usize = 4;

/// Convolution `x * weight + bias` with stride 1 and `padding` zeros on each side.
///
/// Uses the fast CPU op when `kernels` is [`Kernels::Fast`] and the tensors are f32 on the CPU,
/// the generic op on the generic path, else [`conv2d_reference`].
///
/// # Shapes
/// `x`: `[N, Cin, H, W]`, `weight`: `[Cout, Cin, kh, kw]`, `bias`: `[Cout]`;
/// returns `[N, Cout, H + 2*padding - kh + 1, W + 2*padding - kw + 1]`.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    padding: usize,
    kernels: Kernels,
) -> Result<Tensor> {
    conv2d_strided(x, weight, bias, padding, 1, kernels)
}

/// Convolution `x * weight + bias` with `stride` and `padding` zeros on each side, on the path
/// `kernels` selects as [`conv2d`].
///
/// # Shapes
/// `x`: `[N, Cin, H, W]`, `weight`: `[Cout, Cin, kh, kw]`, `bias`: `[Cout]`;
/// returns `[N, Cout, (H + 2*padding - kh) / stride + 1, (W + 2*padding - kw) / stride + 1]`.
pub fn conv2d_strided(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    padding: usize,
    stride: usize,
    kernels: Kernels,
) -> Result<Tensor> {
    if stride == 0 {
        bail!("conv2d: stride must be at least 1")
    }
    if !kernels.use_fast(x.device(), x.dtype()) {
        if kernels.use_generic(x.device()) {
            return super::generic::conv2d_strided(x, weight, bias, padding, stride);
        }
        return conv2d_reference_strided(x, weight, bias, padding, stride);
    }
    let (_, c_in, h, w) = x.dims4()?;
    let (c_out, wc_in, kh, kw) = weight.dims4()?;
    if wc_in != c_in {
        bail!("conv2d: input has {c_in} channels, weight expects {wc_in}")
    }
    if h + 2 * padding < kh || w + 2 * padding < kw {
        bail!("conv2d: kernel {kh}x{kw} larger than padded input {h}x{w} (padding {padding})")
    }
    let has_bias = bias.is_some();
    let bias = bias_or_zeros(bias, c_out, x, "conv2d")?;
    x.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &bias,
        Conv2dOp {
            padding,
            stride,
            has_bias,
        },
    )
}

/// The reference path: candle's `conv2d` plus a broadcast bias. Differentiated by candle's
/// autograd.
///
/// # Shapes
/// As [`conv2d`].
pub fn conv2d_reference(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    padding: usize,
) -> Result<Tensor> {
    conv2d_reference_strided(x, weight, bias, padding, 1)
}

/// [`conv2d_reference`] with a stride (candle's strided `conv2d`, whose backward is a strided
/// `conv_transpose2d` and a dilated convolution).
///
/// # Shapes
/// As [`conv2d_strided`].
pub fn conv2d_reference_strided(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    padding: usize,
    stride: usize,
) -> Result<Tensor> {
    let y = x.conv2d(weight, padding, stride, 1, 1)?;
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?),
        None => Ok(y),
    }
}

impl Geom {
    /// The sizes the direct 3x3 kernels take, where they apply ([`direct3x3::applies`]).
    fn direct3x3(&self) -> Option<direct3x3::Dims> {
        direct3x3::applies(self.kh, self.kw, self.pad, self.stride).then_some(direct3x3::Dims {
            c_in: self.c_in,
            c_out: self.c_out,
            h: self.h,
            w: self.w,
        })
    }
}

thread_local! {
    /// Per-thread im2col buffer, reused across calls (rayon's worker threads live on).
    static COL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// Per-thread buffer for the column-space input gradient.
    static DCOL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

pub(crate) fn with_buf<R>(
    key: &'static std::thread::LocalKey<RefCell<Vec<f32>>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    key.with(|b| {
        let mut b = b.borrow_mut();
        if b.len() < len {
            b.resize(len, 0.0);
        }
        f(&mut b[..len])
    })
}

/// Row-major gemm on slices: `dst[m, n] = (accumulate ? dst : 0) + a[m, k] * b[k, n]`, where
/// `a` and `b` are given with explicit (row, column) strides. `par`: the convolution kernels
/// run it single-threaded (they parallelize over images). The `gemm` crate splits the output
/// among threads and keeps the summation order over `k` fixed, so the result does not depend
/// on the number of threads.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_rm(
    par: Parallelism,
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    b_rs: usize,
    b_cs: usize,
) {
    assert!(dst.len() >= m * n);
    assert!(m == 0 || k == 0 || a.len() > (m - 1) * a_rs + (k - 1) * a_cs);
    assert!(k == 0 || n == 0 || b.len() > (k - 1) * b_rs + (n - 1) * b_cs);
    // SAFETY: the asserts above bound every index the gemm reads or writes.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

/// A convolution's weights as its per-image forward reads them: as given (`[Cout, Cin, kh,
/// kw]`), and transformed for the Winograd kernel where it applies ([`winograd::applies`]),
/// once per batch.
pub(crate) struct Filters<'a> {
    wt: &'a [f32],
    winograd: Option<(direct3x3::Dims, Vec<f32>)>,
}

impl<'a> Filters<'a> {
    pub(crate) fn new(g: &Geom, wt: &'a [f32]) -> Self {
        let winograd = g
            .direct3x3()
            .filter(winograd::applies)
            .map(|d| (d, winograd::transform_filters(&d, wt)));
        Self { wt, winograd }
    }
}

/// Forward kernel: `y[n] = W x im2col(x[n]) + bias`, parallel over images.
fn forward_cpu(g: &Geom, x: &[f32], wt: &[f32], bias: &[f32]) -> Vec<f32> {
    let wt = &Filters::new(g, wt);
    let total = g.n * g.out_img();
    let mut y: Vec<f32> = Vec::with_capacity(total);
    y.spare_capacity_mut()[..total]
        .par_chunks_mut(g.out_img())
        .zip(x.par_chunks(g.in_img()))
        .for_each(|(yn, xn)| {
            forward_image(g, xn, wt, bias, yn);
        });
    // SAFETY: the loop above initialized all `total` elements.
    unsafe { y.set_len(total) };
    y
}

/// One image of the forward kernel: initializes all of `yn` (`[Cout, oh*ow]`) with
/// `W x im2col(xn) + bias` and returns it as initialized.
pub(crate) fn forward_image<'a>(
    g: &Geom,
    xn: &[f32],
    wt: &Filters<'_>,
    bias: &[f32],
    yn: &'a mut [MaybeUninit<f32>],
) -> &'a mut [f32] {
    forward_image_store(g, xn, wt, bias, Store::default(), yn)
}

/// [`forward_image`] with `store` applied to every output value (an evaluation-mode BatchNorm,
/// a residual, a ReLU: [`Store`]): by the Winograd or the direct kernel as it stores its
/// output, else in a pass over the image's output while it is in cache, the same operations in
/// the same order.
pub(crate) fn forward_image_store<'a>(
    g: &Geom,
    xn: &[f32],
    filters: &Filters<'_>,
    bias: &[f32],
    store: Store<'_>,
    yn: &'a mut [MaybeUninit<f32>],
) -> &'a mut [f32] {
    let wt = filters.wt;
    if let Some((d, u)) = &filters.winograd {
        return winograd::forward_image(d, xn, u, Some(bias), store, yn);
    }
    if let Some(d) = g.direct3x3() {
        let planes = (g.c_in, g.h, g.w);
        return direct3x3::with_padded(&direct3x3::PADDED_X, planes, xn, |xp| {
            direct3x3::forward_image(&d, xp, wt, bias, store, yn)
        });
    }
    let yn = forward_image_gemm(g, xn, wt, bias, yn);
    let hw = g.hw_out();
    if store.affine.is_none() && store.residual.is_none() && !store.relu {
        return yn;
    }
    for (ch, row) in yn.chunks_mut(hw.max(1)).enumerate() {
        let affine = store.affine.map(|a| a[ch]);
        let r = store.residual.map(|r| &r[ch * hw..(ch + 1) * hw]);
        for (i, v) in row.iter_mut().enumerate() {
            let mut t = *v;
            if let Some((m, k, b)) = affine {
                t = (t - m) * k + b;
            }
            if let Some(r) = r {
                t += r[i];
            }
            *v = if store.relu { t.max(0.0) } else { t };
        }
    }
    yn
}

/// [`forward_image`] by im2col (or the input itself for a 1x1 kernel) and gemm.
fn forward_image_gemm<'a>(
    g: &Geom,
    xn: &[f32],
    wt: &[f32],
    bias: &[f32],
    yn: &'a mut [MaybeUninit<f32>],
) -> &'a mut [f32] {
    let (k, hw) = (g.k(), g.hw_out());
    assert_eq!(yn.len(), g.out_img());
    for (row, &b) in yn.chunks_mut(hw).zip(bias) {
        row.fill(MaybeUninit::new(b));
    }
    // SAFETY: every element was just initialized (the rows cover `yn`).
    let yn = unsafe { &mut *(yn as *mut [MaybeUninit<f32>] as *mut [f32]) };
    if g.direct() {
        gemm_rm(SERIAL, g.c_out, hw, k, yn, true, wt, k, 1, xn, hw, 1);
    } else {
        with_buf(&COL, k * hw, |col| {
            im2col(g, xn, col);
            gemm_rm(SERIAL, g.c_out, hw, k, yn, true, wt, k, 1, col, hw, 1);
        });
    }
    yn
}

/// The custom op: arguments `(x, weight, bias)`.
struct Conv2dOp {
    padding: usize,
    stride: usize,
    has_bias: bool,
}

impl CustomOp3 for Conv2dOp {
    fn name(&self) -> &'static str {
        "ablate-conv2d"
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
        let g = Geom::strided(l1.shape(), l2.shape(), self.padding, self.stride)?;
        let y = forward_cpu(&g, cpu_f32(s1, l1)?, cpu_f32(s2, l2)?, cpu_f32(s3, l3)?);
        Ok((CpuStorage::F32(y), Shape::from((g.n, g.c_out, g.oh, g.ow))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        wt: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let need_dx = x.track_op();
        let need_dw = wt.track_op();
        let need_db = self.has_bias && bias.track_op();
        if !(need_dx || need_dw || need_db) {
            return Ok((None, None, None));
        }
        let grad = grad.contiguous()?;
        let g = Geom::strided(x.shape(), wt.shape(), self.padding, self.stride)?;
        let grads = {
            let (sx, lx) = x.storage_and_layout();
            let (sw, lw) = wt.storage_and_layout();
            let (sg, lg) = grad.storage_and_layout();
            match (&*sx, &*sw, &*sg) {
                (Storage::Cpu(sx), Storage::Cpu(sw), Storage::Cpu(sg)) => backward_cpu(
                    &g,
                    cpu_f32(sx, lx)?,
                    cpu_f32(sw, lw)?,
                    cpu_f32(sg, lg)?,
                    Need {
                        dx: need_dx,
                        db: need_db,
                    },
                ),
                _ => bail!("ablate-conv2d: backward of the fast kernel needs cpu tensors"),
            }
        };
        Ok((
            grad_like(need_dx, grads.dx, x)?,
            grad_like(need_dw, Some(grads.dw), wt)?,
            grad_like(need_db, Some(grads.db), bias)?,
        ))
    }
}
