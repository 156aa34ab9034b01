//! Golden references from PyTorch and the comparison every golden test shares.
//!
//! Two sources, one format of keys (`eval.logits`, `train.logits`, `train.loss`, `grad.<param>`,
//! `after_train_step.bn{i}.running_{mean,var}`):
//! - the in-repo fixtures `tests/fixtures/golden_<name>.safetensors`, written by
//!   `python scripts/golden.py write` (PyTorch; format in that script's header and
//!   docs/parity.md). They hold no weights and no input: [`Fixture::build`] regenerates them as
//!   PyTorch drew them (`Net::init_like_torch(seed)`, then BatchNorm state, input and targets from
//!   `TorchGenerator`) and checks each against its fingerprint in the file;
//! - `../shared/golden/golden_*.safetensors` (from `../shared/reference/torch_seed.py golden`),
//!   which hold the weights (`param.*`) and the input.
//!
//! The metric is `max|ours - ref| / max|ref|` per tensor ([`rel_err`]), [`TOLERANCE`] 1e-4.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ablate_data::TorchGenerator;
use ablate_model::ops::kernels::Kernels;
use ablate_model::{DropoutMasks, Mode, ModelSpec, Net};
use candle_core::{DType, Device, Tensor};

/// Defines one `#[test]` per in-repo fixture, named after it, that calls `$check(name)`, and a
/// test that the fixture files are exactly these: the one list of fixtures of the golden tests.
#[allow(unused_macros)]
macro_rules! test_every_fixture {
    ($check:path) => {
        test_every_fixture!(@each $check;
            baseline,
            se_r16,
            se_fused_options,
            se_post_conv,
            se_post_bn,
            se_post_pool,
            eca,
            eca_fused_options,
            eca_post_conv,
            spatial,
            spatial_post_conv,
            cbam,
            cbam_post_bn,
            cbam_post_pool
        );
    };
    (@each $check:path; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                $check(stringify!($name));
            }
        )*

        #[test]
        fn every_fixture_file_has_a_test() {
            let mut tested = vec![$(stringify!($name).to_string()),*];
            tested.sort();
            assert_eq!(crate::common::golden::Fixture::names(), tested);
        }
    };
}

/// Largest relative error a golden comparison accepts.
pub const TOLERANCE: f64 = 1e-4;

/// The format the fixtures' metadata names (`scripts/golden.py`'s `FORMAT`).
pub const FORMAT: &str = "ablate-golden/1";

/// The in-repo fixtures' folder.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// `../shared/golden` next to the workspace (present on CI, not in a plain clone).
pub fn shared_golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/golden")
}

/// The tensors and metadata of one safetensors file of reference values.
pub struct Reference {
    /// File name, for messages.
    pub label: String,
    tensors: HashMap<String, Tensor>,
    meta: HashMap<String, String>,
}

impl Reference {
    /// Reads `path` (panics naming it when it cannot).
    pub fn read(path: &Path) -> Reference {
        let bytes =
            std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .unwrap_or_else(|e| panic!("{} is not safetensors: {e}", path.display()));
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Reference {
            label: path.file_name().unwrap().to_string_lossy().into_owned(),
            tensors,
            meta: meta.metadata().clone().unwrap_or_default(),
        }
    }

    /// The tensor `key` (panics naming the file when it is missing).
    pub fn get(&self, key: &str) -> &Tensor {
        self.tensors
            .get(key)
            .unwrap_or_else(|| panic!("{} has no tensor `{key}`", self.label))
    }

    fn has(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }

    fn meta(&self, key: &str) -> &str {
        self.meta
            .get(key)
            .unwrap_or_else(|| panic!("{} has no metadata `{key}`", self.label))
    }

    /// The tensors whose key starts with `prefix`, by the rest of the key.
    pub fn with_prefix(&self, prefix: &str) -> HashMap<String, Tensor> {
        self.tensors
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|n| (n.to_string(), v.clone())))
            .collect()
    }

    /// Values as f64, flattened.
    pub fn f64s(&self, key: &str) -> Vec<f64> {
        f64s(self.get(key))
    }
}

/// A model, its input batch and targets (u32), ready to compare with a reference.
pub struct Case {
    /// The model, with the reference's initial state and the chosen kernels.
    pub net: Net,
    /// `[B, 3, 32, 32]` f32.
    pub input: Tensor,
    /// `[B]` u32.
    pub target: Tensor,
}

/// One in-repo fixture: `tests/fixtures/golden_<name>.safetensors`.
pub struct Fixture {
    /// The variant's name (`se_post_conv`).
    pub name: String,
    /// The model (dropout off, as the fixture's forwards).
    pub spec: ModelSpec,
    /// `torch.manual_seed` of the weights, BatchNorm state, input and targets.
    pub seed: u64,
    /// Batch size.
    pub batch: usize,
    /// Learning rate of the three Adam steps (`adam.*`).
    pub adam_lr: f64,
    /// The file's tensors.
    pub reference: Reference,
}

impl Fixture {
    /// Reads fixture `name`.
    pub fn load(name: &str) -> Fixture {
        let reference = Reference::read(&fixtures_dir().join(format!("golden_{name}.safetensors")));
        assert_eq!(reference.meta("format"), FORMAT, "{}", reference.label);
        let spec: ModelSpec = reference
            .meta("spec")
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}", reference.label));
        let number = |key: &str| -> f64 {
            reference
                .meta(key)
                .parse()
                .unwrap_or_else(|e| panic!("{} metadata `{key}`: {e}", reference.label))
        };
        Fixture {
            name: name.to_string(),
            spec: ModelSpec {
                dropout: 0.0,
                ..spec
            },
            seed: number("seed") as u64,
            batch: number("batch") as usize,
            adam_lr: number("adam_lr"),
            reference,
        }
    }

    /// The names of every fixture file in the folder, sorted.
    pub fn names() -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
            .expect("tests/fixtures")
            .filter_map(|e| {
                let file = e.ok()?.file_name().to_string_lossy().into_owned();
                let stem = file.strip_prefix("golden_")?.strip_suffix(".safetensors")?;
                Some(stem.to_string())
            })
            .collect();
        names.sort();
        names
    }

    /// The model, input and targets PyTorch drew after `torch.manual_seed(seed)`: the weights by
    /// `Net::init_like_torch`, then from the same generator, per block, BatchNorm's running mean
    /// `U(-0.5, 0.5)`, running variance, weight `U(0.5, 1.5)` and bias `U(-0.2, 0.2)`, the input
    /// `U(-2, 2)` and the targets `randint(0, 10)`. Panics when any of them differs from the
    /// fingerprint PyTorch wrote.
    pub fn build(&self, kernels: Kernels) -> Case {
        let dev = Device::Cpu;
        let mut net = Net::new(&self.spec, 10, &dev, self.seed).unwrap();
        let draws = net.init_like_torch(self.seed).unwrap();
        let mut g = TorchGenerator::at(self.seed, draws);
        let mut state: HashMap<String, Tensor> = net.state_dict().unwrap().into_iter().collect();
        for i in 1..=3 {
            for (what, from, to) in [
                ("running_mean", -0.5, 0.5),
                ("running_var", 0.5, 1.5),
                ("weight", 0.5, 1.5),
                ("bias", -0.2, 0.2),
            ] {
                let key = format!("bn{i}.{what}");
                let n = state[&key].elem_count();
                let v: Vec<f32> = (0..n).map(|_| g.uniform_f32(from, to)).collect();
                state.insert(key, Tensor::from_vec(v, n, &dev).unwrap());
            }
        }
        net.load_state_dict(&state).unwrap();
        let n = self.batch * 3 * 32 * 32;
        let x: Vec<f32> = (0..n).map(|_| g.uniform_f32(-2.0, 2.0)).collect();
        let input = Tensor::from_vec(x, (self.batch, 3, 32, 32), &dev).unwrap();
        let y: Vec<u32> = (0..self.batch).map(|_| g.randint(10)).collect();
        let target = Tensor::from_vec(y, self.batch, &dev).unwrap();

        for (name, t) in net.state_dict().unwrap() {
            self.check_fingerprint(&name, &t);
        }
        self.check_fingerprint("input", &input);
        let want: Vec<f64> = self.reference.f64s("target");
        assert_eq!(
            f64s(&target),
            want,
            "{}: the regenerated targets differ from PyTorch's",
            self.reference.label
        );
        net.set_kernels(kernels);
        Case { net, input, target }
    }

    /// `fingerprint.<name>` is `[exact sum, first 4 values, last 4 values]` (all values when at
    /// most 8); the values must be equal, the sums equal up to summation order.
    fn check_fingerprint(&self, name: &str, t: &Tensor) {
        let want = self.reference.f64s(&format!("fingerprint.{name}"));
        let v = f64s(t);
        let picked: Vec<f64> = if v.len() <= 8 {
            v.clone()
        } else {
            v[..4].iter().chain(&v[v.len() - 4..]).copied().collect()
        };
        let sum: f64 = v.iter().sum();
        let abs_sum: f64 = v.iter().map(|x| x.abs()).sum();
        assert!(
            picked == want[1..] && (sum - want[0]).abs() <= 1e-9 * abs_sum,
            "{}: the regenerated `{name}` is not PyTorch's (sum {sum} vs {}, values {picked:?} vs \
             {:?}): Net::init_like_torch or TorchGenerator no longer reproduces \
             torch.manual_seed({}) and the module's construction",
            self.reference.label,
            want[0],
            &want[1..],
            self.seed
        );
    }
}

/// The elements of `t` as f64, flattened.
pub fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

/// `max|ours - reference| / max(max|reference|, floor)`, or `max|ours - reference|` when that
/// scale is 0; infinite when `ours` has a non-finite value.
pub fn rel_err(ours: &[f64], reference: &[f64], floor: f64) -> f64 {
    assert_eq!(ours.len(), reference.len(), "element count differs");
    if ours.iter().any(|x| !x.is_finite()) {
        return f64::INFINITY;
    }
    let diff = ours
        .iter()
        .zip(reference)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let scale = reference.iter().map(|y| y.abs()).fold(floor, f64::max);
    if scale > 0.0 {
        diff / scale
    } else {
        diff
    }
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().map(|x| x.abs()).fold(0.0, f64::max)
}

/// Our values and the reference's, element for element.
type Pair = (Vec<f64>, Vec<f64>);

/// The reference gradient of parameter `name`: `grad.<name>` (only the output channels in
/// `rows.<name>` when that key exists), or the product of `product.<layer>.grad_output` and
/// `product.<layer>.input` formed in f64, paired with ours restricted alike.
fn gradient_pair(reference: &Reference, name: &str, ours: &Tensor) -> Pair {
    let layer = name.strip_suffix(".weight").unwrap_or(name);
    let product = format!("product.{layer}.input");
    if name.ends_with(".weight") && reference.has(&product) {
        let x = reference.get(&product);
        let (b, inputs) = x.dims2().unwrap();
        let x = f64s(x);
        let gout = reference.f64s(&format!("product.{layer}.grad_output"));
        let outputs = gout.len() / b;
        let mut want = vec![0f64; outputs * inputs];
        for s in 0..b {
            for j in 0..outputs {
                let gj = gout[s * outputs + j];
                let row = &mut want[j * inputs..(j + 1) * inputs];
                for (w, xk) in row.iter_mut().zip(&x[s * inputs..(s + 1) * inputs]) {
                    *w += gj * xk;
                }
            }
        }
        return (f64s(ours), want);
    }
    let want = reference.f64s(&format!("grad.{name}"));
    let rows_key = format!("rows.{name}");
    if reference.has(&rows_key) {
        let rows = reference.get(&rows_key).to_dtype(DType::U32).unwrap();
        return (f64s(&ours.index_select(&rows, 0).unwrap()), want);
    }
    (f64s(ours), want)
}

/// Whether conv layer `layer`'s bias gradient is rounding noise in `reference`: before a
/// train-mode BatchNorm its true value is 0 (BatchNorm subtracts the batch mean), and both
/// frameworks give values about 1e-8 of the weight gradient's.
pub fn conv_bias_is_noise(reference: &Reference, layer: &str) -> bool {
    let bias = max_abs(&reference.f64s(&format!("grad.{layer}.bias")));
    let weight = max_abs(&reference.f64s(&format!("grad.{layer}.weight")));
    bias <= 1e-4 * weight
}

/// Eval-mode logits, train-mode logits and loss (dropout off), the loss's gradient for every
/// parameter and the running statistics after that train-mode forward, each against
/// `reference`: (key, relative error) in that order.
///
/// A bias's gradient is measured against the larger of its own scale and the scale of its
/// module's weight gradient. It is a sum over the batch and the positions of the output
/// gradient whose terms largely cancel (before a train-mode BatchNorm exactly: its true value is
/// 0 and both frameworks give rounding noise of about 1e-8 of the weight gradient), so its
/// rounding error follows the size of the terms, which the weight gradient shows, not the size
/// of the sum: PyTorch's own float32 result for `ca1.fc.0.bias` of `se_post_conv` is 1.7e-4 of
/// its value away from the exact (float64) one.
pub fn compare_step(reference: &Reference, case: &Case) -> Vec<(String, f64)> {
    let Case { net, input, target } = case;
    let mut out = Vec::new();
    let whole = |key: &str, ours: &Tensor| -> (String, f64) {
        (
            key.to_string(),
            rel_err(&f64s(ours), &reference.f64s(key), 0.0),
        )
    };
    out.push(whole(
        "eval.logits",
        &net.forward(input, Mode::Eval).unwrap(),
    ));
    let mode = Mode::Train {
        dropout: DropoutMasks::Off,
    };
    let logits = net.forward(input, mode).unwrap();
    out.push(whole("train.logits", &logits));
    let loss = candle_nn::loss::cross_entropy(&logits, target).unwrap();
    out.push(whole("train.loss", &loss.reshape(1).unwrap()));

    let grads = loss.backward().unwrap();
    let pairs: Vec<(String, Pair)> = net
        .trainable()
        .into_iter()
        .map(|(name, var)| {
            let g = grads
                .get(&var)
                .unwrap_or_else(|| panic!("no gradient for `{name}`"));
            let pair = gradient_pair(reference, &name, g);
            (name, pair)
        })
        .collect();
    let scales: HashMap<&str, f64> = pairs
        .iter()
        .map(|(name, (_, want))| (name.as_str(), max_abs(want)))
        .collect();
    for (name, (ours, want)) in &pairs {
        let floor = name
            .strip_suffix(".bias")
            .and_then(|module| scales.get(format!("{module}.weight").as_str()))
            .copied()
            .unwrap_or(0.0);
        out.push((format!("grad.{name}"), rel_err(ours, want, floor)));
    }
    for (name, t) in net.buffers() {
        out.push(whole(&format!("after_train_step.{name}"), &t));
    }
    out
}

/// Prints every (key, error) of one comparison, `label` first, and returns the ones above
/// `tolerance` as `key: error` strings.
pub fn report(label: &str, results: &[(String, f64)], tolerance: f64) -> Vec<String> {
    let mut failures = Vec::new();
    for (key, err) in results {
        let ok = *err <= tolerance;
        println!(
            "{label} {key:<36} rel err {err:.3e} {}",
            if ok { "ok" } else { "FAIL" }
        );
        if !ok {
            failures.push(format!("{key}: {err:.3e}"));
        }
    }
    failures
}

/// Runs `check` once per kernel choice ([`Kernels::ALL`]), printing as it goes, and panics
/// after all of them with every failure listed by kernel choice.
pub fn for_every_kernel(what: &str, mut check: impl FnMut(Kernels) -> Vec<String>) {
    let mut failed = Vec::new();
    for kernels in Kernels::ALL {
        let failures = check(kernels);
        if !failures.is_empty() {
            failed.push(format!("[{}] {}", kernels.name(), failures.join(", ")));
        }
    }
    assert!(
        failed.is_empty(),
        "{what}: above tolerance: {}",
        failed.join("; ")
    );
}

/// The comparison of [`compare_step`] for one kernel choice: the failures.
pub fn check_step(reference: &Reference, case: &Case, kernels: Kernels) -> Vec<String> {
    let label = format!("{} [{}]", reference.label, kernels.name());
    report(&label, &compare_step(reference, case), TOLERANCE)
}
