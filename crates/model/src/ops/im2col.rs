//! The geometry of a convolution ([`Geom`]: sizes, stride, padding, derived from the tensor
//! shapes) and the im2col layout the gemm path multiplies ([`im2col`]) with its adjoint
//! ([`col2im`]), shared by the convolution op and the fused block op (`super::conv`,
//! `super::block`).

use candle_core::{bail, Result, Shape};

/// Geometry of one convolution, derived from the input and weight shapes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geom {
    pub(crate) n: usize,
    pub(crate) c_in: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) c_out: usize,
    pub(crate) kh: usize,
    pub(crate) kw: usize,
    pub(crate) pad: usize,
    pub(crate) stride: usize,
    pub(crate) oh: usize,
    pub(crate) ow: usize,
}

impl Geom {
    /// A convolution with `stride`.
    pub(crate) fn strided(x: &Shape, wt: &Shape, pad: usize, stride: usize) -> Result<Self> {
        let (n, c_in, h, w) = x.dims4()?;
        let (c_out, wc_in, kh, kw) = wt.dims4()?;
        if wc_in != c_in || h + 2 * pad < kh || w + 2 * pad < kw || stride == 0 {
            bail!("conv2d: incompatible input {x:?} and weight {wt:?} with padding {pad}, stride {stride}")
        }
        Ok(Self {
            n,
            c_in,
            h,
            w,
            c_out,
            kh,
            kw,
            pad,
            stride,
            oh: (h + 2 * pad - kh) / stride + 1,
            ow: (w + 2 * pad - kw) / stride + 1,
        })
    }

    /// Whether the im2col matrix is the input itself (1x1 kernel, no padding, stride 1).
    pub(crate) fn direct(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.pad == 0 && self.stride == 1
    }

    /// The output columns `ox` whose input column `ox * stride + kj - pad` lies in `0..w`.
    fn valid_cols(&self, kj: usize) -> (usize, usize) {
        let s = self.stride;
        let ox0 = self.pad.saturating_sub(kj).div_ceil(s).min(self.ow);
        let ox1 = (self.w + self.pad)
            .saturating_sub(kj)
            .div_ceil(s)
            .min(self.ow)
            .max(ox0);
        (ox0, ox1)
    }
    /// Rows of the im2col matrix: `Cin * kh * kw`.
    pub(crate) fn k(&self) -> usize {
        self.c_in * self.kh * self.kw
    }
    /// Columns of the im2col matrix: output pixels per image.
    pub(crate) fn hw_out(&self) -> usize {
        self.oh * self.ow
    }
    pub(crate) fn in_img(&self) -> usize {
        self.c_in * self.h * self.w
    }
    pub(crate) fn out_img(&self) -> usize {
        self.c_out * self.hw_out()
    }
}

/// `col[(c*kh + ki)*kw + kj, oy*ow + ox] = x[c, oy*s + ki - pad, ox*s + kj - pad]` (0
/// outside), `s` the stride.
pub(crate) fn im2col(g: &Geom, x: &[f32], col: &mut [f32]) {
    let (hw, s) = (g.hw_out(), g.stride);
    for c in 0..g.c_in {
        let xc = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = &mut col[((c * g.kh + ki) * g.kw + kj) * hw..][..hw];
                let (ox0, ox1) = g.valid_cols(kj);
                for oy in 0..g.oh {
                    let dst = &mut row[oy * g.ow..(oy + 1) * g.ow];
                    let iy = (oy * s + ki) as isize - g.pad as isize;
                    if iy < 0 || iy >= g.h as isize || ox0 == ox1 {
                        dst.fill(0.0);
                        continue;
                    }
                    let ix0 = ox0 * s + kj - g.pad;
                    let line = &xc[iy as usize * g.w..(iy as usize + 1) * g.w];
                    dst[..ox0].fill(0.0);
                    match s {
                        1 => dst[ox0..ox1].copy_from_slice(&line[ix0..ix0 + ox1 - ox0]),
                        2 => gather_even(&mut dst[ox0..ox1], &line[ix0..]),
                        _ => {
                            let src = line[ix0..].iter().step_by(s);
                            for (d, v) in dst[ox0..ox1].iter_mut().zip(src) {
                                *d = *v;
                            }
                        }
                    }
                    dst[ox1..].fill(0.0);
                }
            }
        }
    }
}

/// `dst[i] = src[2 i]`, in blocks of eight (a shuffle the compiler vectorizes; `step_by(2)`
/// stays one element at a time).
#[inline]
fn gather_even(dst: &mut [f32], src: &[f32]) {
    let mut done = 0;
    for (d, s) in dst.chunks_exact_mut(8).zip(src.chunks_exact(16)) {
        for l in 0..8 {
            d[l] = s[2 * l];
        }
        done += 8;
    }
    for (d, v) in dst[done..]
        .iter_mut()
        .zip(src[2 * done..].iter().step_by(2))
    {
        *d = *v;
    }
}

/// The adjoint of [`im2col`]: `dx[c, iy, ix] = sum of dcol entries that read it`.
/// `dx` must be zeroed by the caller.
pub(crate) fn col2im(g: &Geom, dcol: &[f32], dx: &mut [f32]) {
    let (hw, s) = (g.hw_out(), g.stride);
    for c in 0..g.c_in {
        let dxc = &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = &dcol[((c * g.kh + ki) * g.kw + kj) * hw..][..hw];
                let (ox0, ox1) = g.valid_cols(kj);
                if ox0 == ox1 {
                    continue;
                }
                for oy in 0..g.oh {
                    let iy = (oy * s + ki) as isize - g.pad as isize;
                    if iy < 0 || iy >= g.h as isize {
                        continue;
                    }
                    let ix0 = ox0 * s + kj - g.pad;
                    let line = &mut dxc[iy as usize * g.w..(iy as usize + 1) * g.w];
                    let src = &row[oy * g.ow + ox0..oy * g.ow + ox1];
                    if s == 1 {
                        for (d, v) in line[ix0..ix0 + ox1 - ox0].iter_mut().zip(src) {
                            *d += v;
                        }
                    } else {
                        for (d, v) in line[ix0..].iter_mut().step_by(s).zip(src) {
                            *d += v;
                        }
                    }
                }
            }
        }
    }
}
