//! Attention modules as one candle custom op with a CPU forward and backward: a channel gate
//! (squeeze-and-excitation, J. Hu, L. Shen, G. Sun, CVPR 2018; ECA, Q. Wang et al., CVPR 2020;
//! CBAM's channel half), a spatial gate (S. Woo, J. Park, J.-Y. Lee, I. S. Kweon, "CBAM:
//! Convolutional Block Attention Module", ECCV 2018: the channel-wise mean and maximum through
//! one `k x k` convolution to one map), or both in that order (CBAM):
//!
//! ```text
//! xc  = z ⊙ cg                                        cg = channel gate [C] (1 without it)
//! sg  = gate(conv_kxk([mean_c xc, max_c xc]) + b)     [H, W] (1 without it)
//! out = xc ⊙ sg
//! ```
//!
//! Composed of candle ops and our smaller ops (`conv`, `linear`), a
//! module is ten to twenty autograd nodes, whose gradients candle allocates, zeroes and adds,
//! several at the map's size, and the map's gradient arrives by two or three paths. Here, per
//! image (in parallel), the forward reads the map twice (descriptors and channel pooling, then
//! the output); the backward reads it and the output's gradient twice and writes the input's
//! gradient once. Everything else is per image and small: the channel gate's MLP or 1-D
//! convolution (`super::channel_gate`), the spatial convolution as shifted row segments
//! (`spatial.rs`), `2·k²` multiply-adds per pixel. The parameter gradients of the
//! images are summed in image order: the result does not depend on the number of threads.
//!
//! With [`Then::Pool`], a 2x2 max-pool (stride 2, floor, PyTorch's tie and NaN rules) follows, as
//! in the seed CNN's blocks with the module between ReLU and pool: each image's re-weighted map
//! then lives only in a per-thread buffer, and the backward spreads the pooled gradient into one
//! before the passes above. With [`Then::AddRelu`], a residual unit's end follows the module at
//! its `standard` point, `relu(out + r)` (`residual.rs`): the re-weighted map is never a tensor
//! of its own.
//!
//! Maxima route their gradient to the first maximum: the channel pooling's to the first maximal
//! channel (`torch.max(x, dim=1)`), the channel descriptor's to the first maximal pixel.
//!
//! The callers (`crate::attention`) run this op with [`super::kernels::Kernels::Fast`] on the
//! CPU for f32 maps and compose the separate ops everywhere else; the op tests
//! (`tests/ops_attention.rs`) check it against that composition with plain candle ops.

mod residual;
mod spatial;

use std::sync::{Arc, Mutex};

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

use super::block::{argmax_positions, pool_plane, ChannelGate};
use super::channel_gate::{self, GateDims, GateImage, GateWeights};
use super::kernels::cpu_f32;
use crate::spec::{GateFunction, Squeeze};
use spatial::SpatialDims;

/// The spatial gate's parameters.
#[derive(Debug, Clone, Copy)]
pub struct SpatialGateParams<'a> {
    /// The convolution's weight `[1, 2, k, k]`, `k` odd (input channels: mean, max).
    pub weight: &'a Tensor,
    /// The convolution's bias `[1]`, if any.
    pub bias: Option<&'a Tensor>,
    /// The gate function.
    pub gate: GateFunction,
}

/// The op's result: the re-weighted map and the gates (detached).
#[derive(Debug, Clone)]
pub struct Attended {
    /// `[B, C, H, W]`.
    pub y: Tensor,
    /// The channel gate `[B, C]`, with a channel gate.
    pub channel_gate: Option<Tensor>,
    /// The spatial gate `[B, 1, H, W]`, with a spatial gate.
    pub spatial_gate: Option<Tensor>,
}

/// What follows the re-weighting inside the op.
#[derive(Debug, Clone, Copy)]
pub enum Then<'a> {
    /// Nothing: the re-weighted map.
    Map,
    /// The 2x2 max-pool (stride 2, floor).
    Pool,
    /// The residual added, then the ReLU: `relu(out + r)`, `r` of the map's shape.
    AddRelu(&'a Tensor),
}

/// `x ⊙ cg ⊙ sg`, then as `then` says: the channel gate `channel` (SE or ECA; CBAM's is SE's
/// with the `avg_max` descriptor), the spatial gate `spatial`, or both (CBAM). CPU and f32
/// only.
///
/// # Shapes
/// `x`: `[B, C, H, W]` -> [`Attended`] (`y`: `[B, C, H / 2, W / 2]` with [`Then::Pool`], floor;
/// else `[B, C, H, W]`).
pub fn attend(
    x: &Tensor,
    channel: Option<&ChannelGate<'_>>,
    spatial: Option<&SpatialGateParams<'_>>,
    then: Then<'_>,
) -> Result<Attended> {
    let (b, c, h, w) = x.dims4()?;
    if !(x.device().is_cpu() && x.dtype() == candle_core::DType::F32) {
        bail!("attention: the fused op needs an f32 cpu tensor")
    }
    if c == 0 || h * w == 0 {
        bail!("attention: empty map {:?}", x.dims())
    }
    if channel.is_none() && spatial.is_none() {
        bail!("attention: neither a channel nor a spatial gate")
    }
    let gate = channel.map(|g| g.dims(c, "attention")).transpose()?;
    let spatial_dims = spatial.map(SpatialDims::of).transpose()?;
    let mut parts: Vec<Tensor> = Vec::new();
    for t in channel.map(|g| g.tensors()).unwrap_or_default() {
        parts.push(t.flatten_all()?);
    }
    if let Some(sp) = spatial {
        parts.push(sp.weight.flatten_all()?);
        parts.extend(sp.bias.cloned());
    }
    let packed = Tensor::cat(&parts, 0)?.contiguous()?;
    let saved = Arc::new(Mutex::new(None));
    let op = AttendOp {
        gate,
        spatial: spatial_dims,
        pool: matches!(then, Then::Pool),
        saved: saved.clone(),
    };
    let x = x.contiguous()?;
    let y = match then {
        Then::AddRelu(r) => residual::apply(&x, &packed, r, op)?,
        Then::Map | Then::Pool => x.apply_op2(&packed, op)?,
    };
    let images = saved
        .lock()
        .map_err(|_| poisoned())?
        .clone()
        .ok_or_else(|| candle_core::Error::Msg("attention: the forward saved nothing".into()))?;
    let dev = x.device();
    let channel_gate = match gate {
        Some(_) => {
            let g: Vec<f32> = images.iter().flat_map(|im| im.g.iter().copied()).collect();
            Some(Tensor::from_vec(g, (b, c), dev)?)
        }
        None => None,
    };
    let spatial_gate = match spatial_dims {
        Some(_) => {
            let g: Vec<f32> = images.iter().flat_map(|im| im.sg.iter().copied()).collect();
            Some(Tensor::from_vec(g, (b, 1, h, w), dev)?)
        }
        None => None,
    };
    Ok(Attended {
        y,
        channel_gate,
        spatial_gate,
    })
}

fn poisoned() -> candle_core::Error {
    candle_core::Error::Msg("attention: lock poisoned".into())
}

/// What one image's forward keeps for the backward.
struct ImageSaved {
    /// Channel gate: descriptors `[branches, C]`, hidden activations `[branches, hidden]`,
    /// logits `[C]`, values `[C]`, each channel's first maximal pixel `[C]` (empty without it).
    s: Vec<f32>,
    h: Vec<f32>,
    pre: Vec<f32>,
    g: Vec<f32>,
    maxpos: Vec<u32>,
    /// Spatial gate: the channel-pooled maps `[2, HW]` (mean, max) and each pixel's first
    /// maximal channel (empty without it).
    pooled: Vec<f32>,
    argmax: Vec<u32>,
    /// The spatial gate's logits and values `[HW]` (empty without it).
    spre: Vec<f32>,
    sg: Vec<f32>,
    /// With the pool: each pooled output's window position of its maximum (0..4).
    pool_argmax: Vec<u8>,
}

/// The op: arguments `(x, packed)` with `packed = [channel gate's (GateDims order), spatial
/// weight (2·k²), spatial bias (if any)]`.
struct AttendOp {
    gate: Option<GateDims>,
    spatial: Option<SpatialDims>,
    pool: bool,
    saved: Arc<Mutex<Option<Arc<Vec<ImageSaved>>>>>,
}

thread_local! {
    /// Per-thread buffer for one image's re-weighted map (forward) or its gradient (backward)
    /// when the pool follows.
    static DENSE: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's [`DENSE`] buffer of `n` elements (contents unspecified).
fn with_dense<R>(n: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    DENSE.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < n {
            buf.resize(n, 0.0);
        }
        f(&mut buf[..n])
    })
}

/// The map's sizes.
#[derive(Clone, Copy)]
struct Map {
    c: usize,
    h: usize,
    w: usize,
}

impl Map {
    fn hw(&self) -> usize {
        self.h * self.w
    }

    /// The pooled plane's size.
    fn pooled(&self) -> (usize, usize) {
        (self.h / 2, self.w / 2)
    }
}

/// One plane of the re-weighted map, `z ⊙ cg ⊙ sg` (the factors that exist: `gc` is 1 without
/// a channel gate, `sg` `None` without a spatial gate), handed to `put` element by element.
#[inline(always)]
fn reweight<T>(
    plane: &[f32],
    gc: f32,
    sg: Option<&[f32]>,
    out: &mut [T],
    put: impl Fn(&mut T, f32),
) {
    match sg {
        Some(sg) => {
            for ((o, &v), &g) in out.iter_mut().zip(plane).zip(sg) {
                put(o, v * gc * g);
            }
        }
        None => {
            for (o, &v) in out.iter_mut().zip(plane) {
                put(o, v * gc);
            }
        }
    }
}

/// `Σ a·b` in eight f32 lanes (vectorizes), fixed order.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    for (l, (x, y)) in ra.iter().zip(rb).enumerate() {
        acc[l] += x * y;
    }
    acc.iter().sum()
}

impl AttendOp {
    fn n_gate_params(&self) -> usize {
        self.gate.map_or(0, |d| d.n_params())
    }

    /// The unpacked parameters: channel gate's, spatial weight and bias (0 without one).
    fn unpack<'a>(&self, p: &'a [f32]) -> (Option<GateWeights<'a>>, &'a [f32], f32) {
        let (gp, rest) = p.split_at(self.n_gate_params());
        let (sw, sb) = match self.spatial {
            Some(sd) => {
                let (sw, rest) = rest.split_at(2 * sd.k * sd.k);
                (sw, if sd.bias { rest[0] } else { 0.0 })
            }
            None => (rest, 0.0),
        };
        (self.gate.map(|d| GateWeights::unpack(&d, gp)), sw, sb)
    }

    fn check_packed(&self, len: usize) -> Result<()> {
        let want = self.n_gate_params() + self.spatial.map_or(0, |sd| sd.n_params());
        if len != want {
            bail!("attention: {len} packed parameters, expected {want}")
        }
        Ok(())
    }

    /// One image's forward: `z` `[C, HW]` -> `out` (`[C, HW]`, or pooled).
    fn forward_image(
        &self,
        m: Map,
        (gw, sw, sb): (Option<&GateWeights<'_>>, &[f32], f32),
        z: &[f32],
        out: &mut [std::mem::MaybeUninit<f32>],
    ) -> ImageSaved {
        let (c, hw) = (m.c, m.hw());
        let (nb, hid) = self.gate.map_or((0, 0), |d| (d.branches(), d.hidden()));
        let (on, hw_s) = (
            self.gate.is_some(),
            if self.spatial.is_some() { hw } else { 0 },
        );
        let mut sv = ImageSaved {
            s: vec![0.0; nb * c],
            h: vec![0.0; nb * hid],
            pre: vec![0.0; if on { c } else { 0 }],
            g: vec![0.0; if on { c } else { 0 }],
            maxpos: vec![0; if on { c } else { 0 }],
            pooled: vec![0.0; 2 * hw_s],
            argmax: vec![0; hw_s],
            spre: vec![sb; hw_s],
            sg: vec![0.0; hw_s],
            pool_argmax: Vec::new(),
        };
        if let (Some(d), Some(wt)) = (&self.gate, gw) {
            let mut gi = GateImage {
                s: &mut sv.s,
                h: &mut sv.h,
                pre: &mut sv.pre,
                g: &mut sv.g,
                maxpos: &mut sv.maxpos,
            };
            channel_gate::forward(d, wt, z, hw, &mut gi);
        }
        if let Some(sd) = self.spatial {
            spatial::forward(&sd, m, sw, z, &mut sv);
        }
        let gain = |ch: usize| if on { sv.g[ch] } else { 1.0 };
        let sg = self.spatial.map(|_| sv.sg.as_slice());
        if !self.pool {
            for (ch, (o, plane)) in out.chunks_exact_mut(hw).zip(z.chunks_exact(hw)).enumerate() {
                reweight(plane, gain(ch), sg, o, |o, v| {
                    o.write(v);
                });
            }
            return sv;
        }
        let (ph, pw) = m.pooled();
        let mut ix = vec![0u8; c * ph * pw];
        if ph * pw > 0 {
            with_dense(hw, |buf| {
                let planes = out
                    .chunks_exact_mut(ph * pw)
                    .zip(ix.chunks_exact_mut(ph * pw));
                for (ch, ((o, ixp), plane)) in planes.zip(z.chunks_exact(hw)).enumerate() {
                    reweight(plane, gain(ch), sg, buf, |o, v| *o = v);
                    pool_plane(buf, m.w, (ph, pw), |v| v, o, ixp);
                }
            });
        }
        sv.pool_argmax = ix;
        sv
    }

    /// The output's elements per image.
    fn out_img(&self, m: Map) -> usize {
        if self.pool {
            let (ph, pw) = m.pooled();
            m.c * ph * pw
        } else {
            m.c * m.hw()
        }
    }

    /// One image's backward with the pool: the pooled gradient `dy` spread to the maxima in a
    /// per-thread buffer, then [`AttendOp::backward_image`].
    fn backward_pooled_image(
        &self,
        m: Map,
        weights: (Option<&GateWeights<'_>>, &[f32]),
        sv: &ImageSaved,
        z: &[f32],
        dy: &[f32],
        dz: &mut [f32],
    ) -> Vec<f32> {
        let (ph, pw) = m.pooled();
        with_dense(m.c * m.hw(), |dense| {
            dense.fill(0.0);
            if ph * pw > 0 {
                let planes = dense.chunks_exact_mut(m.hw());
                let pooled = dy
                    .chunks_exact(ph * pw)
                    .zip(sv.pool_argmax.chunks_exact(ph * pw));
                for (d, (g, ix)) in planes.zip(pooled) {
                    for (&gv, pos) in g.iter().zip(argmax_positions(ix, pw, m.w)) {
                        d[pos] = gv;
                    }
                }
            }
            self.backward_image(m, weights, sv, z, dense, dz)
        })
    }

    /// One image's backward: from `dy` `[C, HW]` to `dz` `[C, HW]`; returns the parameter
    /// gradients (packed).
    fn backward_image(
        &self,
        m: Map,
        (gw, sw): (Option<&GateWeights<'_>>, &[f32]),
        sv: &ImageSaved,
        z: &[f32],
        dy: &[f32],
        dz: &mut [f32],
    ) -> Vec<f32> {
        let (c, hw) = (m.c, m.hw());
        let n_gate = self.n_gate_params();
        let n_spatial = self.spatial.map_or(0, |sd| sd.n_params());
        let mut dp = vec![0f32; n_gate + n_spatial];
        let on = self.gate.is_some();
        // The gradient at xc = z ⊙ cg (into `dz`), and the channel gate's.
        match self.spatial {
            Some(sd) => spatial::backward(&sd, m, sw, sv, z, dy, dz, &mut dp[n_gate..]),
            None => dz.copy_from_slice(dy),
        }
        let (Some(d), Some(wt)) = (&self.gate, gw) else {
            return dp;
        };
        let dcg: Vec<f32> = dz
            .chunks_exact(hw)
            .zip(z.chunks_exact(hw))
            .map(|(row, zp)| dot(row, zp))
            .collect();
        let mut ds = vec![0f32; d.branches() * c];
        channel_gate::backward(
            d,
            wt,
            &sv.s,
            &sv.h,
            &sv.pre,
            &sv.g,
            &dcg,
            &mut ds,
            &mut dp[..n_gate],
        );
        let has_avg = matches!(d.squeeze, Squeeze::Avg | Squeeze::AvgMax);
        let max_branch = match d.squeeze {
            Squeeze::Avg => None,
            Squeeze::Max => Some(0),
            Squeeze::AvgMax => Some(1),
        };
        debug_assert!(on);
        for (ch, row) in dz.chunks_exact_mut(hw).enumerate() {
            let (gc, avg) = (sv.g[ch], if has_avg { ds[ch] / hw as f32 } else { 0.0 });
            for v in row.iter_mut() {
                *v = *v * gc + avg;
            }
            if let Some(b) = max_branch {
                row[sv.maxpos[ch] as usize] += ds[b * c + ch];
            }
        }
        dp
    }
}

impl CustomOp2 for AttendOp {
    fn name(&self) -> &'static str {
        "ablate-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.forward_cpu(l1, cpu_f32(s1, l1)?, cpu_f32(s2, l2)?, None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        packed: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        if !(x.track_op() || packed.track_op()) {
            return Ok((None, None));
        }
        let (dx, dp) = self.backward(x, packed, &grad.contiguous()?)?;
        Ok((Some(dx), Some(dp)))
    }
}

impl AttendOp {
    /// The forward over the batch (`l1`: the map's layout), with `residual`: `relu(out + r)`
    /// per image while its output is in cache.
    fn forward_cpu(
        &self,
        l1: &Layout,
        x: &[f32],
        packed: &[f32],
        residual: Option<&[f32]>,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l1.shape().dims4()?;
        self.check_packed(packed.len())?;
        let m = Map { c, h, w };
        let (gw, sw, sb) = self.unpack(packed);
        let n_out = b * self.out_img(m);
        let mut out: Vec<f32> = Vec::with_capacity(n_out);
        let images: Vec<ImageSaved> = out.spare_capacity_mut()[..n_out]
            .par_chunks_mut(self.out_img(m).max(1))
            .zip(x.par_chunks(c * m.hw()))
            .enumerate()
            .map(|(img, (o, z))| {
                let sv = self.forward_image(m, (gw.as_ref(), sw, sb), z, o);
                if let Some(r) = residual {
                    let rn = &r[img * o.len()..(img + 1) * o.len()];
                    residual::add_relu_image(o, rn);
                }
                sv
            })
            .collect();
        if images.len() != b {
            bail!("attention: pooling a {h}x{w} map 2x2 leaves no pixels")
        }
        // SAFETY: `forward_image` wrote every element of each image's chunk, and the chunks
        // cover all `n_out` elements.
        unsafe { out.set_len(n_out) };
        *self.saved.lock().map_err(|_| poisoned())? = Some(Arc::new(images));
        let shape = if self.pool {
            Shape::from((b, c, h / 2, w / 2))
        } else {
            Shape::from((b, c, h, w))
        };
        Ok((CpuStorage::F32(out), shape))
    }

    /// The gradients of the map and of the packed parameters for the output gradient `grad`
    /// (contiguous; with a residual, already masked by the ReLU).
    fn backward(&self, x: &Tensor, packed: &Tensor, grad: &Tensor) -> Result<(Tensor, Tensor)> {
        let images = self
            .saved
            .lock()
            .map_err(|_| poisoned())?
            .clone()
            .ok_or_else(|| candle_core::Error::Msg("attention: backward before forward".into()))?;
        let (b, c, h, w) = x.dims4()?;
        let m = Map { c, h, w };
        let (dx, dparams) = {
            let (sx, lx) = x.storage_and_layout();
            let (sp, lp) = packed.storage_and_layout();
            let (sd, ld) = grad.storage_and_layout();
            let (Storage::Cpu(sx), Storage::Cpu(sp), Storage::Cpu(sd)) = (&*sx, &*sp, &*sd) else {
                bail!("attention: the backward needs cpu tensors")
            };
            let (xs, ps, dy) = (cpu_f32(sx, lx)?, cpu_f32(sp, lp)?, cpu_f32(sd, ld)?);
            if images.len() != b || dy.len() != b * self.out_img(m) {
                bail!("attention: backward shapes differ from the forward's")
            }
            let (gw, sw, _) = self.unpack(ps);
            let mut dx = vec![0f32; xs.len()];
            let per_image: Vec<Vec<f32>> = dx
                .par_chunks_mut(c * m.hw())
                .zip(xs.par_chunks(c * m.hw()))
                .zip(dy.par_chunks(self.out_img(m).max(1)))
                .zip(images.par_iter())
                .map(|(((dz, z), dyn_), sv)| {
                    if self.pool {
                        self.backward_pooled_image(m, (gw.as_ref(), sw), sv, z, dyn_, dz)
                    } else {
                        self.backward_image(m, (gw.as_ref(), sw), sv, z, dyn_, dz)
                    }
                })
                .collect();
            // Image order: the sum does not depend on the threads.
            let mut dparams = vec![0f32; ps.len()];
            for d in &per_image {
                for (a, v) in dparams.iter_mut().zip(d) {
                    *a += v;
                }
            }
            (dx, dparams)
        };
        let dev = x.device();
        Ok((
            Tensor::from_vec(dx, x.shape(), dev)?,
            Tensor::from_vec(dparams, packed.shape(), dev)?,
        ))
    }
}
