//! Direct 3x3 convolution, stride 1, padding 1, for CPUs with AVX-512: the thin layers of the
//! CIFAR ResNets (K. He et al., "Deep Residual Learning for Image Recognition", CVPR 2016,
//! Sec. 4.2: 16 to 64 channels on 32x32 to 8x8 maps), where im2col + gemm copies the input nine
//! times through memory and runs the gemm on small panels. The convolution op and the fused
//! block op call it per image in place of im2col + gemm where [`applies`] says so.
//!
//! Layout: each channel plane is copied once into a zero-guarded plane ([`with_padded`]):
//! `W + 1` zeros, the `H x W` image, then zeros. The image is read as one flat row of `H*W`
//! pixels in vectors of 16; tap `(ki, kj)` of output pixel `p` reads plane index
//! `p + ki*W + kj`: the zero rows are the vertical padding and a lane mask the horizontal one
//! (tap column 0 drops the output pixels of column 0, tap column 2 those of column `W - 1`), so
//! any `H` and `W` work.
//!
//! - forward ([`forward_image`]): output channels in blocks of [`OC_BLOCK`], pixels in groups of
//!   [`PX_VECS`] vectors, the accumulators in registers: per input channel and tap, `PX_VECS`
//!   masked loads, `OC_BLOCK` weight broadcasts and `OC_BLOCK * PX_VECS` FMAs.
//! - input gradient ([`input_grad_image`]): the forward kernel on the output gradient with the
//!   kernel flipped and its channel axes swapped ([`flip_transpose`]).
//! - weight gradient ([`weight_grad`]): vectorized over the output channels instead (the
//!   output gradient transposed to `[h*w, c_out]`, the input given a one-pixel zero border,
//!   [`pad_border`]): per pixel, one or two vectors of output channels times the broadcast
//!   inputs of 9 taps of three or one input channels, 27 or 18 accumulators; nothing is reduced
//!   across lanes, and the result lands in the gemm's `[c_in*9, c_out]` orientation.
//!
//! Every sum runs in a fixed order (the forward and the input gradient: input channels, then
//! taps; the weight gradient: pixels in order), per image, so the result does not depend on the
//! number of threads.

use std::cell::RefCell;
use std::mem::MaybeUninit;

/// Output channels per register tile of the forward kernel.
const OC_BLOCK: usize = 6;
/// Vectors of 16 pixels per register tile of the forward kernel.
const PX_VECS: usize = 4;
/// Lanes of an AVX-512 vector of f32.
const LANES: usize = 16;

/// Whether this CPU runs the kernels (x86-64 with AVX-512F), detected once.
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVX512: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVX512.get_or_init(|| std::arch::is_x86_feature_detected!("avx512f"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether a convolution with this kernel size, padding and stride runs on these kernels: a
/// 3x3 kernel, stride 1, padding 1, on a CPU that has them.
pub(crate) fn applies(kh: usize, kw: usize, pad: usize, stride: usize) -> bool {
    kh == 3 && kw == 3 && pad == 1 && stride == 1 && available()
}

/// The sizes of one image's convolution: channels in and out, and the map (the output's
/// size too, with stride 1 and padding 1).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    pub(crate) c_in: usize,
    pub(crate) c_out: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
}

/// Length of one zero-guarded plane of an `h x w` map: room for every lane of every tap's load.
pub(crate) fn plane_len(h: usize, w: usize) -> usize {
    (h * w).div_ceil(LANES) * LANES + 2 * w + 2
}

/// A per-thread buffer of zero-guarded planes and the `(c, h, w)` its guards were zeroed for.
pub(crate) type PaddedBuf = RefCell<((usize, usize, usize), Vec<f32>)>;

thread_local! {
    /// Zero-guarded copies of a convolution's input (forward).
    pub(crate) static PADDED_X: PaddedBuf = const { RefCell::new(((0, 0, 0), Vec::new())) };
    /// Zero-guarded copies of an output gradient (input gradient).
    pub(crate) static PADDED_DY: PaddedBuf = const { RefCell::new(((0, 0, 0), Vec::new())) };
}

/// Runs `f` on `c` zero-guarded planes of `h x w` copied from `src` (`[c, h*w]`) into this
/// thread's buffer `key`: each plane of [`plane_len`] is `w + 1` zeros, the map, then zeros. The guards are zeroed only when the buffer last held another geometry: a layer's
/// images come one after another, so per image only the planes' interiors are copied.
pub(crate) fn with_padded<R>(
    key: &'static std::thread::LocalKey<PaddedBuf>,
    (c, h, w): (usize, usize, usize),
    src: &[f32],
    f: impl FnOnce(&[f32]) -> R,
) -> R {
    let (hw, len) = (h * w, plane_len(h, w));
    assert!(src.len() >= c * hw);
    key.with(|cell| {
        let mut cached = cell.borrow_mut();
        let (geometry, buf) = &mut *cached;
        if *geometry != (c, h, w) || buf.len() != c * len {
            buf.clear();
            buf.resize(c * len, 0.0);
            *geometry = (c, h, w);
        }
        for (plane, s) in buf.chunks_mut(len).zip(src.chunks(hw)).take(c) {
            plane[w + 1..w + 1 + hw].copy_from_slice(s);
        }
        f(buf)
    })
}

/// `out[ic, oc, ki, kj] = wt[oc, ic, 2 - ki, 2 - kj]`: the kernel whose forward convolution of
/// the output gradient is the input gradient.
///
/// # Shapes
/// `wt`: `[c_out, c_in, 3, 3]` -> `[c_in, c_out, 3, 3]`.
pub(crate) fn flip_transpose(wt: &[f32], c_out: usize, c_in: usize) -> Vec<f32> {
    let mut out = vec![0f32; c_out * c_in * 9];
    for oc in 0..c_out {
        for ic in 0..c_in {
            for t in 0..9 {
                out[(ic * c_out + oc) * 9 + t] = wt[(oc * c_in + ic) * 9 + 8 - t];
            }
        }
    }
    out
}

/// Per vector of 16 pixels: the lanes that tap columns 0, 1 and 2 read (bit `i` for pixel
/// `16 q + i`): pixels past the map are never read, nor the horizontal padding.
fn lane_masks(h: usize, w: usize) -> Vec<[u16; 3]> {
    let hw = h * w;
    (0..hw.div_ceil(LANES))
        .map(|q| {
            let mut m = [0u16; 3];
            for i in 0..LANES {
                let p = q * LANES + i;
                if p >= hw {
                    continue;
                }
                let x = p % w;
                m[1] |= 1 << i;
                if x != 0 {
                    m[0] |= 1 << i;
                }
                if x + 1 != w {
                    m[2] |= 1 << i;
                }
            }
            m
        })
        .collect()
}

/// What the forward kernel applies to each output value `t = bias[oc] + Σ ...` as it stores it,
/// in this order: `t = (t - m)·k + b` with the channel's `(m, k, b)` (an evaluation-mode
/// BatchNorm), `t += r` (the same element of a residual), `t = max(t, 0)` (a ReLU, +0 for NaN
/// and for -0). Each is one IEEE operation per element, as the separate passes compute it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Store<'a> {
    /// Per output channel `(m, k, b)`.
    pub(crate) affine: Option<&'a [(f32, f32, f32)]>,
    /// `[c_out, h*w]`.
    pub(crate) residual: Option<&'a [f32]>,
    pub(crate) relu: bool,
}

/// A map size `(h, w)` and its [`lane_masks`].
type MaskCache = ((usize, usize), Vec<[u16; 3]>);

thread_local! {
    /// This thread's [`lane_masks`] of the last map size it convolved: a layer's images come
    /// one after another, so each thread computes them once per layer, not once per image.
    static MASKS: RefCell<MaskCache> = const { RefCell::new(((0, 0), Vec::new())) };
}

/// Runs `f` on the lane masks of an `h x w` map, from this thread's cache.
fn with_lane_masks<R>(h: usize, w: usize, f: impl FnOnce(&[[u16; 3]]) -> R) -> R {
    MASKS.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != (h, w) || cached.1.is_empty() {
            *cached = ((h, w), lane_masks(h, w));
        }
        f(&cached.1)
    })
}

/// Forward of one image: writes every element of `y` with `bias[oc] + sum over ic and taps of
/// wt[oc, ic] * x[ic]` (the sum formed first, then the bias added), then `store` applied, and
/// returns it as initialized.
///
/// # Shapes
/// `xp`: `c_in` zero-guarded planes ([`with_padded`]); `wt`: `[c_out, c_in, 3, 3]`; `bias`:
/// `[c_out]`; `y`: `[c_out, h*w]`; `store`: `[c_out]` and `[c_out, h*w]`.
pub(crate) fn forward_image<'a>(
    g: &Dims,
    xp: &[f32],
    wt: &[f32],
    bias: &[f32],
    store: Store<'_>,
    y: &'a mut [MaybeUninit<f32>],
) -> &'a mut [f32] {
    assert!(bias.len() >= g.c_out);
    assert!(store.affine.is_none_or(|a| a.len() >= g.c_out));
    assert!(store
        .residual
        .is_none_or(|r| r.len() >= g.c_out * g.h * g.w));
    conv_planes(g.c_in, g.c_out, g.h, g.w, xp, wt, Some(bias), store, y)
}

/// Input gradient of one image: writes every element of `dx` with `dy` convolved with the
/// flipped kernel, and returns it as initialized.
///
/// # Shapes
/// `dyp`: `c_out` zero-guarded planes of the output gradient; `wt_flip`: [`flip_transpose`]'s
/// `[c_in, c_out, 3, 3]`; `dx`: `[c_in, h*w]`.
pub(crate) fn input_grad_image<'a>(
    g: &Dims,
    dyp: &[f32],
    wt_flip: &[f32],
    dx: &'a mut [MaybeUninit<f32>],
) -> &'a mut [f32] {
    conv_planes(
        g.c_out,
        g.c_in,
        g.h,
        g.w,
        dyp,
        wt_flip,
        None,
        Store::default(),
        dx,
    )
}

/// Per channel, the length of an `h x w` map with a one-pixel zero border: `(h + 2) * (w + 2)`.
pub(crate) fn bordered_len(h: usize, w: usize) -> usize {
    (h + 2) * (w + 2)
}

/// Copies `c` maps of `h x w` from `src` into `dst` with a one-pixel zero border
/// ([`bordered_len`] per channel).
pub(crate) fn pad_border(c: usize, h: usize, w: usize, src: &[f32], dst: &mut [f32]) {
    let (hw, len, row) = (h * w, bordered_len(h, w), w + 2);
    assert!(src.len() >= c * hw && dst.len() >= c * len);
    for (plane, s) in dst.chunks_mut(len).zip(src.chunks(hw)).take(c) {
        plane[..row].fill(0.0);
        for (y, line) in s.chunks(w).enumerate() {
            let out = &mut plane[(y + 1) * row..(y + 2) * row];
            out[0] = 0.0;
            out[1..=w].copy_from_slice(line);
            out[w + 1] = 0.0;
        }
        plane[(h + 1) * row..].fill(0.0);
    }
}

/// Weight gradient of one image, added to `dw_t` in the gemm's orientation:
/// `dw_t[ic*9 + ki*3 + kj, oc] += sum over pixels p of dy[oc, p] * x[ic, p shifted by
/// (ki - 1, kj - 1)]`, vectorized over the output channels (`dy` is transposed into `dyt`
/// first), so that no vector is ever reduced to a scalar.
///
/// # Shapes
/// `xb`: `[c_in, (h+2)*(w+2)]`, the input with its zero border ([`pad_border`]); `dy`:
/// `[c_out, h*w]`; `dyt`: scratch of `h*w*c_out`; `dw_t`: `[c_in*9, c_out]`.
pub(crate) fn weight_grad(g: &Dims, xb: &[f32], dy: &[f32], dyt: &mut [f32], dw_t: &mut [f32]) {
    let (hw, co) = (g.h * g.w, g.c_out);
    assert!(available());
    assert!(xb.len() >= g.c_in * bordered_len(g.h, g.w) && dy.len() >= co * hw);
    assert!(dyt.len() >= hw * co && dw_t.len() >= g.c_in * 9 * co);
    for (oc, row) in dy.chunks(hw).take(co).enumerate() {
        for (p, &v) in row.iter().enumerate() {
            dyt[p * co + oc] = v;
        }
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F is present (asserted); the asserts above bound every slice the kernel
    // reads and writes (the last vector of output channels is masked).
    unsafe {
        avx512::weight_grad(g.c_in, co, g.h, g.w, xb, dyt, dw_t)
    }
}

/// The forward kernel over planes: `y[o] = bias[o] + sum over i, taps of k[o, i] * planes[i]`,
/// then `store` applied, every element of `y` written (`store`'s slices bounded by the caller).
#[allow(clippy::too_many_arguments)]
fn conv_planes<'a>(
    c_in: usize,
    c_out: usize,
    h: usize,
    w: usize,
    planes: &[f32],
    k: &[f32],
    bias: Option<&[f32]>,
    store: Store<'_>,
    y: &'a mut [MaybeUninit<f32>],
) -> &'a mut [f32] {
    let (hw, len) = (h * w, plane_len(h, w));
    assert!(available());
    assert!(planes.len() >= c_in * len && k.len() >= c_out * c_in * 9 && y.len() == c_out * hw);
    #[cfg(target_arch = "x86_64")]
    with_lane_masks(h, w, |masks| {
        // SAFETY: AVX-512F is present (asserted); the asserts above bound every slice the
        // kernel reads and writes (its loads beyond a map are masked off, see `plane_len`).
        unsafe {
            let y = y.as_mut_ptr() as *mut f32;
            avx512::forward(c_in, c_out, w, hw, len, masks, planes, k, bias, store, y)
        }
    });
    // SAFETY: the kernel stored every pixel of every output channel (the masks of the vectors
    // of 16 pixels cover `0..hw`, the channel tiles `0..c_out`).
    unsafe { &mut *(y as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use avx512::store_lanes;

#[cfg(target_arch = "x86_64")]
// Index loops over the register tiles' constant dimensions are the kernels' shape: the compiler
// unrolls them and keeps every accumulator in a register.
#[allow(clippy::needless_range_loop)]
mod avx512 {
    //! The AVX-512 kernels. Register tiles are const-generic so that the compiler keeps every
    //! accumulator in a register; the tails of the channel and pixel loops use smaller tiles.

    use std::arch::x86_64::{
        __m512, _mm512_add_ps, _mm512_fmadd_ps, _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps,
        _mm512_max_ps, _mm512_mul_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_sub_ps,
    };

    use super::{Store, LANES, OC_BLOCK, PX_VECS};

    /// Plane geometry shared by the tiles.
    #[derive(Clone, Copy)]
    struct Planes<'a> {
        w: usize,
        hw: usize,
        len: usize,
        c_in: usize,
        masks: &'a [[u16; 3]],
    }

    /// See `super::conv_planes`.
    ///
    /// # Safety
    /// AVX-512F must be present; `planes` holds `c_in` planes of `len`, `k` `[c_out, c_in, 9]`,
    /// `bias` `[c_out]`, `y` points to `[c_out, hw]` writable floats; `masks` has one entry per
    /// 16 pixels of `hw`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn forward(
        c_in: usize,
        c_out: usize,
        w: usize,
        hw: usize,
        len: usize,
        masks: &[[u16; 3]],
        planes: &[f32],
        k: &[f32],
        bias: Option<&[f32]>,
        store: Store<'_>,
        y: *mut f32,
    ) {
        let p = Planes {
            w,
            hw,
            len,
            c_in,
            masks,
        };
        let (x, kp, yp) = (planes.as_ptr(), k.as_ptr(), y);
        let bp = bias.map_or(std::ptr::null(), |b| b.as_ptr());
        let mut oc = 0;
        while oc < c_out {
            let ob = (c_out - oc).min(OC_BLOCK);
            let mut q = 0;
            while q < masks.len() {
                let v = (masks.len() - q).min(PX_VECS);
                macro_rules! tile {
                    ($o:literal) => {
                        match v {
                            4 => fwd_tile::<$o, 4>(p, x, kp, bp, store, yp, oc, q),
                            3 => fwd_tile::<$o, 3>(p, x, kp, bp, store, yp, oc, q),
                            2 => fwd_tile::<$o, 2>(p, x, kp, bp, store, yp, oc, q),
                            _ => fwd_tile::<$o, 1>(p, x, kp, bp, store, yp, oc, q),
                        }
                    };
                }
                match ob {
                    6 => tile!(6),
                    5 => tile!(5),
                    4 => tile!(4),
                    3 => tile!(3),
                    2 => tile!(2),
                    _ => tile!(1),
                }
                q += v;
            }
            oc += ob;
        }
    }

    /// `O` output channels from `oc` by `V` vectors of pixels from vector `q`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn fwd_tile<const O: usize, const V: usize>(
        p: Planes<'_>,
        planes: *const f32,
        k: *const f32,
        bias: *const f32,
        store: Store<'_>,
        y: *mut f32,
        oc: usize,
        q: usize,
    ) {
        let mut m = [[0u16; 3]; V];
        m.copy_from_slice(&p.masks[q..q + V]);
        // From zero, and the bias added once at the end (as the gemm does): a large bias taken
        // in first would round every product added to it.
        let mut acc = [[_mm512_setzero_ps(); V]; O];
        let k_stride = p.c_in * 9;
        for ic in 0..p.c_in {
            let plane = planes.add(ic * p.len + q * LANES);
            let kk = k.add(oc * k_stride + ic * 9);
            for ki in 0..3 {
                for kj in 0..3 {
                    let mut xv = [_mm512_setzero_ps(); V];
                    for v in 0..V {
                        xv[v] =
                            _mm512_maskz_loadu_ps(m[v][kj], plane.add(v * LANES + ki * p.w + kj));
                    }
                    for o in 0..O {
                        let wv = _mm512_set1_ps(*kk.add(o * k_stride + ki * 3 + kj));
                        for v in 0..V {
                            acc[o][v] = _mm512_fmadd_ps(wv, xv[v], acc[o][v]);
                        }
                    }
                }
            }
        }
        for o in 0..O {
            let b = (!bias.is_null()).then(|| _mm512_set1_ps(*bias.add(oc + o)));
            for v in 0..V {
                let off = (oc + o) * p.hw + (q + v) * LANES;
                store_lanes(store, oc + o, b, acc[o][v], off, m[v][1], y);
            }
        }
    }

    /// Stores `t = acc + bias` (`t = acc` without a bias) of output channel `oc` into the lanes
    /// `mask` of `y[off..off + 16]` with `store` applied in its order (`store.residual` read at
    /// the same offset): the one epilogue of the direct and the Winograd kernels.
    ///
    /// # Safety
    /// AVX-512F; `store`'s slices hold channel `oc` and the masked lanes from `off`, `y` the
    /// masked lanes from `off`.
    #[inline(always)]
    pub(crate) unsafe fn store_lanes(
        store: Store<'_>,
        oc: usize,
        bias: Option<__m512>,
        acc: __m512,
        off: usize,
        mask: u16,
        y: *mut f32,
    ) {
        let mut t = bias.map_or(acc, |b| _mm512_add_ps(acc, b));
        if let Some(a) = store.affine {
            let (m, k, b) = a[oc];
            let (m, k, b) = (_mm512_set1_ps(m), _mm512_set1_ps(k), _mm512_set1_ps(b));
            t = _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(t, m), k), b);
        }
        if let Some(r) = store.residual {
            t = _mm512_add_ps(t, _mm512_maskz_loadu_ps(mask, r.as_ptr().add(off)));
        }
        if store.relu {
            // `max(t, 0)`: the second operand for NaN and for equal zeros, as `f32::max`
            // against 0 compiles.
            t = _mm512_max_ps(t, _mm512_setzero_ps());
        }
        _mm512_mask_storeu_ps(y.wrapping_add(off), mask, t);
    }

    /// See `super::weight_grad`.
    ///
    /// # Safety
    /// AVX-512F must be present; `xb` holds `c_in` bordered maps of `(h+2)*(w+2)`, `dyt`
    /// `[h*w, c_out]`, `dw_t` `[c_in*9, c_out]`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn weight_grad(
        c_in: usize,
        c_out: usize,
        h: usize,
        w: usize,
        xb: &[f32],
        dyt: &[f32],
        dw_t: &mut [f32],
    ) {
        let t = WgTiles {
            c_out,
            h,
            w,
            xb: xb.as_ptr(),
            dyt: dyt.as_ptr(),
            dw_t: dw_t.as_mut_ptr(),
        };
        let vectors = c_out.div_ceil(LANES);
        let mut v = 0;
        while v < vectors {
            if vectors - v >= 2 {
                // Two vectors of output channels against one input channel: 18 accumulators.
                for ic in 0..c_in {
                    wg_tile::<2, 1>(t, v, ic);
                }
                v += 2;
                continue;
            }
            // One vector against three input channels: 27 accumulators.
            let mut ic = 0;
            while ic < c_in {
                match c_in - ic {
                    1 => wg_tile::<1, 1>(t, v, ic),
                    2 => wg_tile::<1, 2>(t, v, ic),
                    _ => wg_tile::<1, 3>(t, v, ic),
                }
                ic += (c_in - ic).min(3);
            }
            v += 1;
        }
    }

    /// The weight-gradient kernel's operands.
    #[derive(Clone, Copy)]
    struct WgTiles {
        c_out: usize,
        h: usize,
        w: usize,
        xb: *const f32,
        dyt: *const f32,
        dw_t: *mut f32,
    }

    /// Output-channel vectors `v..v + V` against input channels `ic..ic + I`, 9 taps each, over
    /// every pixel; then added to `dw_t`.
    #[inline(always)]
    unsafe fn wg_tile<const V: usize, const I: usize>(t: WgTiles, v: usize, ic: usize) {
        let mut mask = [0u16; V];
        for (j, m) in mask.iter_mut().enumerate() {
            let left = t.c_out - (v + j) * LANES;
            *m = if left >= LANES {
                u16::MAX
            } else {
                (1u16 << left) - 1
            };
        }
        let row = t.w + 2;
        let len = (t.h + 2) * row;
        let mut acc = [[[_mm512_setzero_ps(); 9]; I]; V];
        for oy in 0..t.h {
            for ox in 0..t.w {
                let p = oy * t.w + ox;
                let mut d = [_mm512_setzero_ps(); V];
                for j in 0..V {
                    d[j] = _mm512_maskz_loadu_ps(mask[j], t.dyt.add(p * t.c_out + (v + j) * LANES));
                }
                for i in 0..I {
                    let base = t.xb.add((ic + i) * len + oy * row + ox);
                    for ki in 0..3 {
                        for kj in 0..3 {
                            let x = _mm512_set1_ps(*base.add(ki * row + kj));
                            for j in 0..V {
                                acc[j][i][ki * 3 + kj] =
                                    _mm512_fmadd_ps(d[j], x, acc[j][i][ki * 3 + kj]);
                            }
                        }
                    }
                }
            }
        }
        for j in 0..V {
            for i in 0..I {
                for tap in 0..9 {
                    let at = t.dw_t.add(((ic + i) * 9 + tap) * t.c_out + (v + j) * LANES);
                    let sum = _mm512_add_ps(_mm512_maskz_loadu_ps(mask[j], at), acc[j][i][tap]);
                    _mm512_mask_storeu_ps(at, mask[j], sum);
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! The kernels against the plain definition of the convolution, on maps whose sizes are not
    //! multiples of the vector width and channel counts that leave tails in every tile.

    use super::*;

    /// A deterministic pseudo-random vector.
    pub(crate) fn data(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// The definition of the convolution, once for the three tests: calls `f(y, k, x)` for
    /// every output element `y = (oc, oy, ox)`, kernel element `k = (oc, ic, ki, kj)` and input
    /// element `x = (ic, oy + ki - 1, ox + kj - 1)` inside the map (flat indices), so that
    /// `y[y] += wt[k] * x[x]` is the forward, `dx[x] += wt[k] * dy[y]` the input gradient and
    /// `dw[k] += dy[y] * x[x]` the weight gradient.
    pub(crate) fn for_each_tap(d: Dims, mut f: impl FnMut(usize, usize, usize)) {
        let Dims { c_in, c_out, h, w } = d;
        for (oc, ic, oy, ox) in (0..c_out).flat_map(|oc| {
            (0..c_in).flat_map(move |ic| {
                (0..h).flat_map(move |oy| (0..w).map(move |ox| (oc, ic, oy, ox)))
            })
        }) {
            for (ki, kj) in (0..3).flat_map(|ki| (0..3).map(move |kj| (ki, kj))) {
                let (iy, ix) = (oy + ki, ox + kj);
                if iy < 1 || ix < 1 || iy > h || ix > w {
                    continue;
                }
                let y = (oc * h + oy) * w + ox;
                let k = ((oc * c_in + ic) * 3 + ki) * 3 + kj;
                let x = (ic * h + iy - 1) * w + ix - 1;
                f(y, k, x);
            }
        }
    }

    /// Whether this CPU runs the kernels. Without AVX-512F, checks instead that no convolution
    /// is sent to them (the im2col + gemm path runs, which the op tests cover).
    fn kernels_here() -> bool {
        if available() {
            return true;
        }
        assert!(!applies(3, 3, 1, 1));
        eprintln!("no AVX-512F on this CPU: checked that the direct kernels are not used");
        false
    }

    fn geom(c_in: usize, c_out: usize, h: usize, w: usize) -> Dims {
        Dims { c_in, c_out, h, w }
    }

    fn close(got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (*g as f64 - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "element {i}: {g} vs {w}"
            );
        }
    }

    const SHAPES: [(usize, usize, usize, usize); 6] = [
        (3, 16, 32, 32),
        (16, 16, 8, 8),
        (5, 7, 5, 7),
        (13, 11, 4, 4),
        (2, 9, 17, 3),
        (7, 1, 1, 1),
    ];

    #[test]
    fn forward_matches_the_definition() {
        if !kernels_here() {
            return;
        }
        for (ci, co, h, w) in SHAPES {
            let (x, wt) = (data(ci * h * w, 1), data(co * ci * 9, 2));
            let bias = data(co, 3);
            let mut y = vec![MaybeUninit::new(f32::NAN); co * h * w];
            let g = geom(ci, co, h, w);
            let y = with_padded(&PADDED_X, (ci, h, w), &x, |xp| {
                forward_image(&g, xp, &wt, &bias, Store::default(), &mut y).to_vec()
            });
            let mut want: Vec<f64> = (0..co * h * w).map(|i| bias[i / (h * w)] as f64).collect();
            for_each_tap(geom(ci, co, h, w), |y, k, xi| {
                want[y] += wt[k] as f64 * x[xi] as f64
            });
            close(&y, &want);
        }
    }

    #[test]
    fn input_gradient_matches_the_definition() {
        if !kernels_here() {
            return;
        }
        for (ci, co, h, w) in SHAPES {
            let (dy, wt) = (data(co * h * w, 4), data(co * ci * 9, 5));
            let mut dx = vec![MaybeUninit::new(f32::NAN); ci * h * w];
            let wf = flip_transpose(&wt, co, ci);
            let dx = with_padded(&PADDED_DY, (co, h, w), &dy, |dyp| {
                input_grad_image(&geom(ci, co, h, w), dyp, &wf, &mut dx).to_vec()
            });
            let mut want = vec![0f64; ci * h * w];
            for_each_tap(geom(ci, co, h, w), |y, k, x| {
                want[x] += wt[k] as f64 * dy[y] as f64
            });
            close(&dx, &want);
        }
    }

    #[test]
    fn padded_planes_keep_zero_guards_across_geometries() {
        let look = |(c, h, w): (usize, usize, usize), seed: u32| {
            let src = data(c * h * w, seed);
            with_padded(&PADDED_X, (c, h, w), &src, |buf| {
                let (hw, len) = (h * w, plane_len(h, w));
                assert_eq!(buf.len(), c * len);
                for (plane, s) in buf.chunks(len).zip(src.chunks(hw)) {
                    assert!(plane[..w + 1].iter().all(|&v| v == 0.0));
                    assert_eq!(&plane[w + 1..w + 1 + hw], s);
                    assert!(plane[w + 1 + hw..].iter().all(|&v| v == 0.0));
                }
            });
        };
        // The same geometry again, a larger one, a smaller one with fewer channels, back.
        let sizes = [(3, 5, 7), (3, 5, 7), (6, 9, 9), (2, 4, 3), (3, 5, 7)];
        for (seed, size) in sizes.into_iter().enumerate() {
            look(size, seed as u32);
        }
    }

    #[test]
    fn weight_gradient_matches_the_definition() {
        if !kernels_here() {
            return;
        }
        for (ci, co, h, w) in SHAPES.into_iter().chain([(4, 40, 6, 5), (3, 33, 4, 4)]) {
            let (x, dy) = (data(ci * h * w, 6), data(co * h * w, 7));
            let mut xb = vec![f32::NAN; ci * bordered_len(h, w)];
            pad_border(ci, h, w, &x, &mut xb);
            let start = data(co * ci * 9, 8);
            let mut dw_t = vec![0f32; co * ci * 9];
            for (k, row) in dw_t.chunks_mut(co).enumerate() {
                for (oc, v) in row.iter_mut().enumerate() {
                    *v = start[oc * ci * 9 + k];
                }
            }
            let mut dyt = vec![f32::NAN; h * w * co];
            weight_grad(&geom(ci, co, h, w), &xb, &dy, &mut dyt, &mut dw_t);
            let dw: Vec<f32> = (0..co * ci * 9)
                .map(|i| dw_t[(i % (ci * 9)) * co + i / (ci * 9)])
                .collect();
            let mut want: Vec<f64> = start.iter().map(|&v| v as f64).collect();
            for_each_tap(geom(ci, co, h, w), |y, k, xi| {
                want[k] += dy[y] as f64 * x[xi] as f64
            });
            close(&dw, &want);
        }
    }
}
