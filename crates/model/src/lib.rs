//! `ablate-model`: the seed CIFAR-10 CNN and the CIFAR ResNets with their attention variants
//! (SE, ECA, spatial, CBAM; in the ResNets at the SE paper's integration points) on candle,
//! numerically the same models as PyTorch's, and the trainer.
//!
//! - [`ModelSpec`]: the `[model]` table of an experiment (also parsed from `key=value,...`).
//! - [`Net`]: the network; PyTorch `state_dict` names, safetensors in and out, inspection of
//!   intermediate activations and gates, parameter and MAC counts.
//! - [`ops`]: the choice of kernels ([`ops::kernels::Kernels`]), our fused CPU ops and the
//!   device-generic path every non-CPU device runs.
//! - [`train`]: optimizers, schedulers, the training loop.
//! - [`integrity`]: the checksums written with every file that is read back.
//! - [`bench`](mod@bench): training and inference throughput on a device.
//! - [`golden`]: checks against reference values written by PyTorch.
//!
//! See `docs/models.md`.

pub mod allocator;
pub mod attention;
pub mod bench;
pub mod golden;
pub mod init;
pub mod integrity;
pub mod layers;
mod models;
pub mod net;
pub mod ops;
pub mod spec;
pub mod train;
pub mod weights;

pub use layers::{DropoutMasks, Mode};
pub use net::Net;
pub use spec::{
    Arch, AttentionKind, BlockSet, GateFunction, Integration, ModelSpec, Placement, Shortcut,
    SpecError, Squeeze,
};
pub use weights::WeightsError;
