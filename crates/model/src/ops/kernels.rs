//! The choice between our fast CPU kernels, the device-generic ops and plain candle ops, and
//! small helpers shared by the custom ops in this folder (slice access, bias arguments, shifted
//! sums).
//!
//! - [`Kernels::Fast`]: our fused CPU custom ops (f32 on the CPU); everywhere else the generic
//!   path.
//! - [`Kernels::Generic`]: the device-generic path (`super::generic`): compositions of candle
//!   ops, and custom ops with a CPU and a CUDA forward, whose gradients follow PyTorch's rules
//!   (max-pool and max reductions route to the first maximum, ReLU's gradient is zero at 0).
//!   Every non-CPU device runs it, whatever the choice; on the CPU it runs exactly the ops a
//!   CUDA device runs, so the CPU tests check the GPU path's arithmetic.
//! - [`Kernels::Reference`]: plain candle ops (with our CPU max-pool op, since candle's max-pool
//!   backward is wrong), what the fast kernels' tests compare against; the generic path on
//!   non-CPU devices.

use candle_core::{bail, DType, Device, Layout, Result, Tensor};

/// Which implementation the layers use for their hot ops.
///
/// On a non-CPU device every choice runs the generic path ([`Kernels::Generic`]): the fast
/// kernels exist for the CPU only, and candle's own max-pool backward is wrong on every device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernels {
    /// Our custom ops (im2col + gemm convolution, fused BatchNorm + ReLU) on the CPU.
    #[default]
    Fast,
    /// The device-generic ops (what every non-CPU device runs), on every device.
    Generic,
    /// Plain candle ops on the CPU (the reference the tests check the fast kernels against);
    /// the generic ops elsewhere.
    Reference,
}

/// The environment variable [`Kernels::from_env`] reads: `fast`, `generic` or `reference`.
pub const KERNELS_ENV: &str = "ABLATE_KERNELS";

impl Kernels {
    /// Reads [`KERNELS_ENV`]: `generic` selects [`Kernels::Generic`], `reference`
    /// [`Kernels::Reference`]; unset, empty or `fast` select [`Kernels::Fast`]. Any other value
    /// is an error naming it.
    pub fn from_env() -> std::result::Result<Self, KernelsEnvError> {
        match std::env::var(KERNELS_ENV) {
            Err(std::env::VarError::NotPresent) => Ok(Self::Fast),
            Err(std::env::VarError::NotUnicode(v)) => Err(KernelsEnvError {
                value: v.to_string_lossy().into_owned(),
            }),
            Ok(v) if v.trim().is_empty() => Ok(Self::Fast),
            Ok(v) => Self::parse(&v).ok_or(KernelsEnvError { value: v }),
        }
    }

    /// The choice named `fast`, `generic` or `reference` (surrounding spaces ignored).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name.trim())
    }

    /// Whether the fast CPU kernel should run for a tensor on `device` with `dtype`.
    pub fn use_fast(self, device: &Device, dtype: DType) -> bool {
        self == Self::Fast && matches!(device, Device::Cpu) && dtype == DType::F32
    }

    /// Whether the device-generic ops should run for a tensor on `device`: with
    /// [`Kernels::Generic`], and on every non-CPU device.
    pub fn use_generic(self, device: &Device) -> bool {
        self == Self::Generic || !device.is_cpu()
    }

    /// The name [`Kernels::from_env`] reads for this choice.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Generic => "generic",
            Self::Reference => "reference",
        }
    }

    /// Every choice, in the order the tests run them.
    pub const ALL: [Kernels; 3] = [Kernels::Fast, Kernels::Generic, Kernels::Reference];

    /// ReLU: PyTorch's gradient (zero at 0) on the generic path, candle's `relu` otherwise.
    ///
    /// # Shapes
    /// x: any -> same.
    pub fn relu(self, x: &Tensor) -> Result<Tensor> {
        if self.use_generic(x.device()) {
            super::generic::relu(x)
        } else {
            x.relu()
        }
    }

    /// The maximum over `dim`, kept as size 1: on the generic path the gradient goes to the
    /// first maximum (PyTorch's `max(dim)`), otherwise candle's `max_keepdim` (every tied
    /// element gets it).
    ///
    /// # Shapes
    /// x: any -> x's shape with `dim` of size 1.
    pub fn max_keepdim(self, x: &Tensor, dim: usize) -> Result<Tensor> {
        if self.use_generic(x.device()) {
            super::generic::max_keepdim_first(x, dim)
        } else {
            x.max_keepdim(dim)
        }
    }
}

/// [`KERNELS_ENV`] holds a value other than `fast` or `reference`.
#[derive(Debug, thiserror::Error)]
#[error("invalid {KERNELS_ENV} value `{value}`: expected `fast`, `generic` or `reference`")]
pub struct KernelsEnvError {
    /// The value found.
    pub value: String,
}

/// The bias argument of a custom op: `bias` checked to be `[n]` and made contiguous, or zeros
/// like `x` when there is none (`what` names the op in the error).
pub(crate) fn bias_or_zeros(
    bias: Option<&Tensor>,
    n: usize,
    x: &Tensor,
    what: &str,
) -> Result<Tensor> {
    match bias {
        Some(b) if b.dims() == [n] => b.contiguous(),
        Some(b) => bail!("{what}: bias shape {:?}, expected [{n}]", b.dims()),
        None => Tensor::zeros(n, x.dtype(), x.device()),
    }
}

/// The f32 elements of a contiguous CPU storage, from the layout's start offset on.
pub(crate) fn cpu_f32<'a>(
    storage: &'a candle_core::CpuStorage,
    layout: &Layout,
) -> Result<&'a [f32]> {
    if !layout.is_contiguous() {
        bail!(
            "fast kernel: expected a contiguous tensor, got strides {:?}",
            layout.stride()
        )
    }
    let all = storage.as_slice::<f32>()?;
    let start = layout.start_offset();
    let n = layout.shape().elem_count();
    match all.get(start..start + n) {
        Some(s) => Ok(s),
        None => bail!(
            "fast kernel: storage of {} elements too short for layout",
            all.len()
        ),
    }
}

/// A custom op's gradient for one argument: `v` as a tensor of `like`'s shape on its device
/// where the argument `need`s one and `v` was computed, else `None`.
pub(crate) fn grad_like(need: bool, v: Option<Vec<f32>>, like: &Tensor) -> Result<Option<Tensor>> {
    match v {
        Some(v) if need => Ok(Some(Tensor::from_vec(v, like.shape(), like.device())?)),
        _ => Ok(None),
    }
}

/// `Σ xs` in f32 lanes `i mod 8`, each in order, then the eight lanes added in order: a fixed
/// order that vectorizes, where a plain sequential sum waits on each addition's latency.
#[inline]
pub(crate) fn lane_sum(xs: &[f32]) -> f32 {
    let mut s = [0f32; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            s[l] += c[l];
        }
    }
    for (l, &v) in rest.iter().enumerate() {
        s[l] += v;
    }
    s.iter().sum()
}

/// `(Σ (x - shift), Σ (x - shift)²)` over `xs`, in f32 with eight independent lanes so that
/// the loop vectorizes (callers keep slices short, a few thousand elements at most, and add the
/// results up in f64). Shifting by a value close to the mean keeps the variance computed from
/// these sums accurate. The order of additions is fixed: the result does not depend on threads.
#[inline]
pub(crate) fn shifted_sums(xs: &[f32], shift: f32) -> (f64, f64) {
    let mut s = [0f32; 8];
    let mut q = [0f32; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            let d = c[l] - shift;
            s[l] += d;
            q[l] += d * d;
        }
    }
    for (l, &v) in rest.iter().enumerate() {
        let d = v - shift;
        s[l] += d;
        q[l] += d * d;
    }
    (
        s.iter().map(|&v| v as f64).sum(),
        q.iter().map(|&v| v as f64).sum(),
    )
}
