#![allow(dead_code)]
//! Parity of diffbio-burn with the reference libraries (DiffBio, scVI, bpnet-lite).
//!
//! Every `*.json` fixture in `tests/fixtures/` and in each directory listed in the
//! environment variable `DIFFBIO_BURN_FIXTURES` (colon-separated; empty entries are skipped,
//! a missing or fixture-less directory is an error) is run through the public API: the outputs
//! named in the fixture and the gradients of the sum of output `grads.of` with respect to each
//! `grads.wrt` input are compared element-wise as `|a - e| <= atol + rtol·|e|` with the
//! fixture's tolerance (default rtol 1e-4, atol 1e-5), or a tighter one for float64 runs
//! ([`Tolerances::Tightened`], see `parity_f64.rs`). The schema is described in
//! `shared/reference/README.md`.
//!
//! The harness is strict, so that a fixture can never pass while part of it is ignored:
//! * unknown keys anywhere (top level, inputs, outputs, `grads`, `tolerance`) fail the load,
//!   naming the file and the key; `config` keys, input and output names are checked per
//!   function ([`spec`]);
//! * every output and the `grads` section the schema lists for the function are required
//!   (`grads.of` and the exact `grads.wrt` set), dtypes must match the schema, and `rtol` may
//!   not exceed the schema's 1e-3;
//! * output shapes are compared as well as values (a fixture scalar `[]` matches Burn's `[1]`).
//!
//! One line is printed per case (`PASS <case>  max_abs_err=.. max_rel_err=..  (<backend>)` or
//! `FAIL <case>: <reason>  (<backend>)`; run with `-- --nocapture` to see them) and the test
//! panics at the end listing the failing cases. Each case runs under `catch_unwind`, so a
//! panicking loss is reported as a failure of its case only.
//!
//! The harness is generic over `B: AutodiffBackend`; a backend is one line in `parity.rs`
//! (`parity_f64.rs` for float64: Burn 0.21 keys the default float dtype by device, so one
//! test process must not mix `NdArray<f32>` and `NdArray<f64>`).

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor};
use serde::Deserialize;
use serde_json::{Number, Value};

use crate::common::{CloseReport, compare, int_tensor, tensor, to_f64};
use diffbio_burn::Reduction;
use diffbio_burn::hmm::{Hmm, HmmAlgorithm};
use diffbio_burn::losses::beta_binomial::BetaBinomialLossConfig;
use diffbio_burn::losses::bpnet::BpnetMixtureLossConfig;
use diffbio_burn::losses::dirichlet_multinomial::DirichletMultinomialLossConfig;
use diffbio_burn::losses::log1p_mse::Log1pMseLossConfig;
use diffbio_burn::losses::multinomial::MultinomialNllLossConfig;
use diffbio_burn::losses::nb_mixture::NegativeBinomialMixtureLossConfig;
use diffbio_burn::losses::negative_binomial::NegativeBinomialLossConfig;
use diffbio_burn::losses::vae::{Reconstruction, VaeLossConfig};
use diffbio_burn::losses::zinb::ZinbLossConfig;

/// Environment variable with extra fixture directories (colon-separated).
pub(crate) const FIXTURES_ENV: &str = "DIFFBIO_BURN_FIXTURES";
pub(crate) const DEFAULT_RTOL: f64 = 1e-4;
pub(crate) const DEFAULT_ATOL: f64 = 1e-5;
/// The schema's ceiling on a fixture's `rtol`.
pub(crate) const MAX_RTOL: f64 = 1e-3;

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

/// A fixture file. Every struct of the schema rejects unknown keys (`deny_unknown_fields`): a
/// misspelt or unsupported key is a load error naming the file and the key, never silently
/// ignored.
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct Fixture {
    pub(crate) case: String,
    pub(crate) function: String,
    /// Library, version, call and dtype of the reference (free text, required).
    pub(crate) reference: String,
    /// Why the tolerance differs from the default, or what is delicate (free text).
    #[serde(default)]
    pub(crate) note: Option<String>,
    #[serde(default)]
    pub(crate) config: serde_json::Map<String, Value>,
    pub(crate) inputs: BTreeMap<String, InputArray>,
    pub(crate) outputs: BTreeMap<String, Array>,
    #[serde(default)]
    pub(crate) grads: Option<Grads>,
    #[serde(default)]
    pub(crate) tolerance: Tolerance,
}

/// An input: `data` is kept as JSON numbers so that `i64` inputs are read exactly.
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct InputArray {
    pub(crate) shape: Vec<usize>,
    pub(crate) dtype: String,
    pub(crate) data: Vec<Number>,
}

#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct Array {
    pub(crate) shape: Vec<usize>,
    pub(crate) data: Vec<f64>,
}

#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct Grads {
    pub(crate) of: String,
    pub(crate) wrt: BTreeMap<String, Array>,
}

#[derive(Deserialize, Clone, Copy, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct Tolerance {
    #[serde(default = "default_rtol")]
    pub(crate) rtol: f64,
    #[serde(default = "default_atol")]
    pub(crate) atol: f64,
}

pub(crate) fn default_rtol() -> f64 {
    DEFAULT_RTOL
}

pub(crate) fn default_atol() -> f64 {
    DEFAULT_ATOL
}

impl Default for Tolerance {
    fn default() -> Self {
        Self {
            rtol: DEFAULT_RTOL,
            atol: DEFAULT_ATOL,
        }
    }
}

/// Which implementation of a loss runs where a backend has two: the fused host kernel
/// (default on NdArray, see `diffbio_burn::host`) or the generic tensor-op path that every
/// backend has. On backends without a host kernel both select the generic path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Impl {
    Fast,
    Generic,
}

/// Names a function accepts (the schema's table in `shared/reference/README.md`): the harness
/// rejects anything else, and requires every output and gradient the schema lists, so that a
/// fixture can never pass while part of it is silently ignored or missing.
pub(crate) struct Spec {
    pub(crate) required: &'static [&'static str],
    pub(crate) optional: &'static [&'static str],
    /// Inputs of dtype `i64` (all others are `f64`).
    pub(crate) ints: &'static [&'static str],
    /// Every output (all required).
    pub(crate) outputs: &'static [&'static str],
    pub(crate) config: &'static [&'static str],
    /// `grads.of`.
    pub(crate) grads_of: &'static str,
    /// `grads.wrt`: exactly these inputs.
    pub(crate) grads_wrt: &'static [&'static str],
}

pub(crate) fn spec(function: &str) -> Option<Spec> {
    Some(match function {
        "negative_binomial" => Spec {
            required: &["counts", "mu", "theta"],
            optional: &[],
            ints: &[],
            outputs: &["loss", "nll"],
            config: &["eps"],
            grads_of: "loss",
            grads_wrt: &["mu", "theta"],
        },
        "zinb" => Spec {
            required: &["counts", "mu", "theta", "pi_logits"],
            optional: &[],
            ints: &[],
            outputs: &["loss", "nll"],
            config: &["eps"],
            grads_of: "loss",
            grads_wrt: &["mu", "theta", "pi_logits"],
        },
        "vae_elbo" => Spec {
            required: &["x", "x_recon", "mean", "logvar"],
            optional: &[],
            ints: &[],
            outputs: &["loss", "recon", "kl"],
            config: &["kl_weight", "reconstruction"],
            grads_of: "loss",
            grads_wrt: &["x_recon", "mean", "logvar"],
        },
        "hmm" => Spec {
            required: &[
                "log_initial",
                "log_transitions",
                "log_emissions",
                "observations",
            ],
            optional: &["lengths"],
            ints: &["observations", "lengths"],
            outputs: &["loss", "log_likelihood"],
            config: &[],
            grads_of: "loss",
            grads_wrt: &["log_initial", "log_transitions", "log_emissions"],
        },
        "multinomial_nll" => Spec {
            required: &["logps", "counts"],
            optional: &[],
            ints: &[],
            outputs: &["nll"],
            config: &[],
            grads_of: "nll",
            grads_wrt: &["logps"],
        },
        "bpnet_mixture" => Spec {
            required: &["y", "logits", "logcounts"],
            optional: &["labels"],
            ints: &["labels"],
            outputs: &["profile", "count", "total"],
            config: &["count_loss_weight"],
            grads_of: "total",
            grads_wrt: &["logits", "logcounts"],
        },
        "negative_binomial_mixture" => Spec {
            required: &["counts", "mu_1", "mu_2", "theta_1", "pi_logits"],
            optional: &["theta_2"],
            ints: &[],
            outputs: &["loss", "nll"],
            config: &["eps"],
            grads_of: "loss",
            grads_wrt: &["mu_1", "mu_2", "theta_1", "pi_logits"],
        },
        "beta_binomial" => Spec {
            required: &["counts", "total_counts", "alpha", "beta"],
            optional: &[],
            ints: &[],
            outputs: &["loss", "nll"],
            config: &[],
            grads_of: "loss",
            grads_wrt: &["alpha", "beta"],
        },
        "beta_binomial_mean" => Spec {
            required: &["counts", "total_counts", "mu", "concentration"],
            optional: &[],
            ints: &[],
            outputs: &["loss", "nll"],
            config: &[],
            grads_of: "loss",
            grads_wrt: &["mu", "concentration"],
        },
        "dirichlet_multinomial" => Spec {
            required: &["log_alpha", "counts"],
            optional: &[],
            ints: &[],
            outputs: &["nll"],
            config: &[],
            grads_of: "nll",
            grads_wrt: &["log_alpha"],
        },
        "dirichlet_multinomial_profile" => Spec {
            required: &["logits", "log_precision", "counts"],
            optional: &[],
            ints: &[],
            outputs: &["nll"],
            config: &[],
            grads_of: "nll",
            grads_wrt: &["logits", "log_precision"],
        },
        "log1p_mse" => Spec {
            required: &["log_pred", "counts"],
            optional: &[],
            ints: &[],
            outputs: &["loss"],
            config: &[],
            grads_of: "loss",
            grads_wrt: &["log_pred"],
        },
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

/// A fixture file, or why it could not be read (reported as a failing case).
pub(crate) struct LoadedCase {
    pub(crate) path: PathBuf,
    pub(crate) fixture: Result<Fixture, String>,
}

impl LoadedCase {
    pub(crate) fn name(&self) -> String {
        match &self.fixture {
            Ok(f) => f.case.clone(),
            Err(_) => self.path.display().to_string(),
        }
    }
}

pub(crate) fn default_fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The fixture directories: `tests/fixtures` then the entries of `env` (the value of
/// `DIFFBIO_BURN_FIXTURES`), skipping empty entries. A listed directory that does not exist is
/// an error.
pub(crate) fn fixture_dirs(env: Option<&str>) -> Result<Vec<PathBuf>, String> {
    let mut dirs = vec![default_fixture_dir()];
    for entry in env.unwrap_or("").split(':').filter(|e| !e.is_empty()) {
        let dir = PathBuf::from(entry);
        if !dir.is_dir() {
            return Err(format!(
                "{FIXTURES_ENV}: fixture directory {entry:?} does not exist"
            ));
        }
        dirs.push(dir);
    }
    Ok(dirs)
}

/// Sorted `*.json` files of `dir`; a directory without any is an error.
pub(crate) fn fixture_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .path();
        if path.is_file() && path.extension().is_some_and(|x| x == "json") {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(format!("no *.json fixtures in {}", dir.display()));
    }
    files.sort();
    Ok(files)
}

pub(crate) fn load(path: &Path) -> LoadedCase {
    let fixture = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
        .and_then(|text| {
            serde_json::from_str::<Fixture>(&text)
                .map_err(|e| format!("invalid fixture {}: {e}", path.display()))
        });
    LoadedCase {
        path: path.to_path_buf(),
        fixture,
    }
}

/// All cases of all fixture directories (panics if the directories are unusable).
pub(crate) fn load_all() -> Vec<LoadedCase> {
    let env = std::env::var(FIXTURES_ENV).ok();
    let dirs = fixture_dirs(env.as_deref()).unwrap_or_else(|e| panic!("{e}"));
    let mut cases = Vec::new();
    for dir in dirs {
        let files = fixture_files(&dir).unwrap_or_else(|e| panic!("{e}"));
        cases.extend(files.iter().map(|p| load(p)));
    }
    cases
}

// ---------------------------------------------------------------------------------------------
// Fixture consistency
// ---------------------------------------------------------------------------------------------

pub(crate) fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Checks the fixture against the schema and the function's names, before anything runs.
pub(crate) fn check_fixture(fx: &Fixture) -> Result<Spec, String> {
    let spec = spec(&fx.function).ok_or_else(|| format!("unknown function {:?}", fx.function))?;
    let mut errors = Vec::new();
    for name in spec.required {
        if !fx.inputs.contains_key(*name) {
            errors.push(format!("missing input {name:?}"));
        }
    }
    for (name, input) in &fx.inputs {
        if !spec.required.contains(&name.as_str()) && !spec.optional.contains(&name.as_str()) {
            errors.push(format!("unknown input {name:?} for {}", fx.function));
        }
        if input.data.len() != numel(&input.shape) {
            errors.push(format!(
                "input {name:?}: {} values for shape {:?}",
                input.data.len(),
                input.shape
            ));
        }
        if input.dtype != "f64" && input.dtype != "i64" {
            errors.push(format!("input {name:?}: unknown dtype {:?}", input.dtype));
        } else {
            let want = if spec.ints.contains(&name.as_str()) {
                "i64"
            } else {
                "f64"
            };
            if input.dtype != want {
                errors.push(format!(
                    "input {name:?}: dtype {:?}, the schema has {want:?}",
                    input.dtype
                ));
            }
        }
    }
    if fx.outputs.is_empty() {
        errors.push("no outputs".to_string());
    }
    for name in spec.outputs {
        if !fx.outputs.contains_key(*name) {
            errors.push(format!("missing output {name:?}"));
        }
    }
    if fx.reference.trim().is_empty() {
        errors.push("empty \"reference\"".to_string());
    }
    for (name, output) in &fx.outputs {
        if !spec.outputs.contains(&name.as_str()) {
            errors.push(format!("unknown output {name:?} for {}", fx.function));
        }
        if output.data.len() != numel(&output.shape) {
            errors.push(format!(
                "output {name:?}: {} values for shape {:?}",
                output.data.len(),
                output.shape
            ));
        }
    }
    for key in fx.config.keys() {
        if !spec.config.contains(&key.as_str()) {
            errors.push(format!("unknown config key {key:?} for {}", fx.function));
        }
    }
    match &fx.grads {
        None => errors.push(format!(
            "missing \"grads\" (the schema requires the gradient of {:?} with respect to {:?})",
            spec.grads_of, spec.grads_wrt
        )),
        Some(grads) => {
            if grads.of != spec.grads_of {
                errors.push(format!(
                    "grads.of {:?}: the schema has {:?} for {}",
                    grads.of, spec.grads_of, fx.function
                ));
            }
            for name in spec.grads_wrt {
                if !grads.wrt.contains_key(*name) {
                    errors.push(format!("missing grads.wrt {name:?}"));
                }
            }
            // An optional float input that is differentiated when present (`theta_2`).
            let optional_wrt = |name: &str| {
                spec.optional.contains(&name)
                    && !spec.ints.contains(&name)
                    && fx.inputs.contains_key(name)
            };
            for name in spec.optional {
                if optional_wrt(name) && !grads.wrt.contains_key(*name) {
                    errors.push(format!("missing grads.wrt {name:?} (the input is present)"));
                }
            }
            for name in grads.wrt.keys() {
                if fx.inputs.contains_key(name)
                    && !spec.grads_wrt.contains(&name.as_str())
                    && !optional_wrt(name)
                {
                    errors.push(format!(
                        "grads.wrt {name:?}: not a gradient the schema lists for {} ({:?})",
                        fx.function, spec.grads_wrt
                    ));
                }
            }
        }
    }
    if let Some(grads) = &fx.grads {
        if !fx.outputs.contains_key(&grads.of) {
            errors.push(format!("grads.of {:?} is not an output", grads.of));
        }
        for (name, grad) in &grads.wrt {
            match fx.inputs.get(name) {
                None => errors.push(format!("grads.wrt {name:?} is not an input")),
                Some(input) if input.dtype != "f64" => {
                    errors.push(format!("grads.wrt {name:?} is not a float input"))
                }
                Some(input) if input.shape != grad.shape => errors.push(format!(
                    "grads.wrt {name:?}: shape {:?}, input shape {:?}",
                    grad.shape, input.shape
                )),
                Some(_) => {}
            }
            if grad.data.len() != numel(&grad.shape) {
                errors.push(format!(
                    "grads.wrt {name:?}: {} values for shape {:?}",
                    grad.data.len(),
                    grad.shape
                ));
            }
        }
    }
    let tol = fx.tolerance;
    if !(tol.rtol >= 0.0 && tol.atol >= 0.0) {
        errors.push(format!("invalid tolerance {tol:?}"));
    }
    if tol.rtol > MAX_RTOL {
        errors.push(format!(
            "tolerance rtol {:e} is above the schema's ceiling {MAX_RTOL:e}",
            tol.rtol
        ));
    }
    if errors.is_empty() {
        Ok(spec)
    } else {
        Err(errors.join("; "))
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs as tensors
// ---------------------------------------------------------------------------------------------

/// The fixture inputs as flat 1-D leaves (float inputs named in `grads.wrt` require grad);
/// functions reshape them to the rank their API needs.
pub(crate) struct Inputs<B: AutodiffBackend> {
    pub(crate) floats: BTreeMap<String, (Tensor<B, 1>, Vec<usize>)>,
    pub(crate) ints: BTreeMap<String, (Tensor<B, 1, Int>, Vec<usize>)>,
}

impl<B: AutodiffBackend> Inputs<B> {
    fn new(fx: &Fixture, device: &B::Device) -> Result<Self, String> {
        let mut floats = BTreeMap::new();
        let mut ints = BTreeMap::new();
        let wrt = |name: &str| fx.grads.as_ref().is_some_and(|g| g.wrt.contains_key(name));
        for (name, input) in &fx.inputs {
            let n = input.data.len();
            if input.dtype == "i64" {
                let data = input
                    .data
                    .iter()
                    .map(|v| {
                        v.as_i64()
                            .ok_or_else(|| format!("input {name:?}: {v} is not an i64"))
                    })
                    .collect::<Result<Vec<i64>, String>>()?;
                let t = int_tensor::<B, 1>(&data, [n], device);
                ints.insert(name.clone(), (t, input.shape.clone()));
            } else {
                let data = input
                    .data
                    .iter()
                    .map(|v| {
                        v.as_f64()
                            .ok_or_else(|| format!("input {name:?}: {v} is not a number"))
                    })
                    .collect::<Result<Vec<f64>, String>>()?;
                let mut t = tensor::<B, 1>(&data, [n], device);
                if wrt(name) {
                    t = t.require_grad();
                }
                floats.insert(name.clone(), (t, input.shape.clone()));
            }
        }
        Ok(Self { floats, ints })
    }

    fn has(&self, name: &str) -> bool {
        self.floats.contains_key(name) || self.ints.contains_key(name)
    }

    /// Rank of an input as stored in the fixture.
    fn rank(&self, name: &str) -> Result<usize, String> {
        self.floats
            .get(name)
            .map(|(_, s)| s.len())
            .or_else(|| self.ints.get(name).map(|(_, s)| s.len()))
            .ok_or_else(|| format!("missing input {name:?}"))
    }

    fn float<const D: usize>(&self, name: &str) -> Result<Tensor<B, D>, String> {
        let (t, shape) = self
            .floats
            .get(name)
            .ok_or_else(|| format!("missing float (f64) input {name:?}"))?;
        Ok(t.clone().reshape(dims::<D>(name, shape)?))
    }

    fn int<const D: usize>(&self, name: &str) -> Result<Tensor<B, D, Int>, String> {
        let (t, shape) = self
            .ints
            .get(name)
            .ok_or_else(|| format!("missing integer (i64) input {name:?}"))?;
        Ok(t.clone().reshape(dims::<D>(name, shape)?))
    }

    fn int_opt<const D: usize>(&self, name: &str) -> Result<Option<Tensor<B, D, Int>>, String> {
        if self.has(name) {
            self.int(name).map(Some)
        } else {
            Ok(None)
        }
    }
}

pub(crate) fn dims<const D: usize>(name: &str, shape: &[usize]) -> Result<[usize; D], String> {
    <[usize; D]>::try_from(shape)
        .map_err(|_| format!("input {name:?}: shape {shape:?} has rank other than {D}"))
}

/// An output flattened to 1-D, with the shape the API returned.
pub(crate) fn flat<B: AutodiffBackend, const D: usize>(t: Tensor<B, D>) -> Output<B> {
    let shape = t.dims().to_vec();
    let n: usize = shape.iter().product();
    (t.reshape([n]), shape)
}

/// Whether an output of shape `actual` matches the fixture's `expected` shape: equal, or a
/// fixture scalar (`[]`) against Burn's scalar convention (`[1]`: Burn has no rank-0 tensors).
pub(crate) fn shape_matches(expected: &[usize], actual: &[usize]) -> bool {
    expected == actual || (expected.is_empty() && actual == [1])
}

/// Runs `$body` with `const $d: usize` set to the runtime rank `$rank` (1 to 5).
macro_rules! with_rank {
    ($rank:expr, $what:expr, $d:ident => $body:expr) => {
        match $rank {
            1 => {
                const $d: usize = 1;
                $body
            }
            2 => {
                const $d: usize = 2;
                $body
            }
            3 => {
                const $d: usize = 3;
                $body
            }
            4 => {
                const $d: usize = 4;
                $body
            }
            5 => {
                const $d: usize = 5;
                $body
            }
            r => Err(format!("{}: unsupported rank {r}", $what)),
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

pub(crate) fn config_f64(fx: &Fixture, key: &str) -> Result<Option<f64>, String> {
    match fx.config.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| format!("config {key:?}: expected a number, got {v}")),
    }
}

pub(crate) fn config_str<'a>(fx: &'a Fixture, key: &str) -> Result<Option<&'a str>, String> {
    match fx.config.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .map(Some)
            .ok_or_else(|| format!("config {key:?}: expected a string, got {v}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Functions: each returns every output it can produce, flattened to 1-D
// ---------------------------------------------------------------------------------------------

/// An output's values (flattened) and the shape the API returned.
pub(crate) type Output<B> = (Tensor<B, 1>, Vec<usize>);
pub(crate) type Outputs<B> = BTreeMap<&'static str, Output<B>>;

pub(crate) fn compute<B: AutodiffBackend>(
    fx: &Fixture,
    inp: &Inputs<B>,
    path: Impl,
) -> Result<Outputs<B>, String> {
    match fx.function.as_str() {
        "negative_binomial" => negative_binomial(fx, inp, path),
        "zinb" => zinb(fx, inp, path),
        "vae_elbo" => vae_elbo(fx, inp, path),
        "hmm" => hmm(inp, path),
        "multinomial_nll" => multinomial_nll(inp, path),
        "bpnet_mixture" => bpnet_mixture(fx, inp, path),
        "log1p_mse" => log1p_mse(inp, path),
        "negative_binomial_mixture" => negative_binomial_mixture(fx, inp, path),
        "beta_binomial" => beta_binomial(inp, path, false),
        "beta_binomial_mean" => beta_binomial(inp, path, true),
        "dirichlet_multinomial" => dirichlet_multinomial(inp),
        "dirichlet_multinomial_profile" => dirichlet_multinomial_profile(inp),
        other => Err(format!("unknown function {other:?}")),
    }
}

pub(crate) fn negative_binomial<B: AutodiffBackend>(
    fx: &Fixture,
    inp: &Inputs<B>,
    path: Impl,
) -> Result<Outputs<B>, String> {
    let mut config = NegativeBinomialLossConfig::new().with_fast_path(path == Impl::Fast);
    if let Some(eps) = config_f64(fx, "eps")? {
        config = config.with_eps(eps);
    }
    let loss = config.init();
    let counts = inp.float::<2>("counts")?;
    let mu = inp.float::<2>("mu")?;
    with_rank!(inp.rank("theta")?, "theta", T => {
        let theta = inp.float::<T>("theta")?;
        let mean = loss.forward(counts.clone(), mu.clone(), theta.clone(), Reduction::Mean);
        let nll = loss.forward_no_reduction(counts, mu, theta);
        Ok(Outputs::from([("loss", flat(mean)), ("nll", flat(nll))]))
    })
}

pub(crate) fn zinb<B: AutodiffBackend>(
    fx: &Fixture,
    inp: &Inputs<B>,
    path: Impl,
) -> Result<Outputs<B>, String> {
    let mut config = ZinbLossConfig::new().with_fast_path(path == Impl::Fast);
    if let Some(eps) = config_f64(fx, "eps")? {
        config = config.with_eps(eps);
    }
    let loss = config.init();
    let counts = inp.float::<2>("counts")?;
    let mu = inp.float::<2>("mu")?;
    let pi_logits = inp.float::<2>("pi_logits")?;
    with_rank!(inp.rank("theta")?, "theta", T => {
        let theta = inp.float::<T>("theta")?;
        let mean = loss.forward(
            counts.clone(),
            mu.clone(),
            theta.clone(),
            pi_logits.clone(),
            Reduction::Mean,
        );
        let nll = loss.forward_no_reduction(counts, mu, theta, pi_logits);
        Ok(Outputs::from([("loss", flat(mean)), ("nll", flat(nll))]))
    })
}

pub(crate) fn vae_elbo<B: AutodiffBackend>(
    fx: &Fixture,
    inp: &Inputs<B>,
    path: Impl,
) -> Result<Outputs<B>, String> {
    let mut config = VaeLossConfig::new().with_fast_path(path == Impl::Fast);
    if let Some(w) = config_f64(fx, "kl_weight")? {
        config = config.with_kl_weight(w);
    }
    match config_str(fx, "reconstruction")? {
        None => {}
        Some("mse") => config = config.with_reconstruction(Reconstruction::Mse),
        Some("bce") => config = config.with_reconstruction(Reconstruction::Bce),
        Some(other) => {
            return Err(format!(
                "config \"reconstruction\": unknown value {other:?}"
            ));
        }
    }
    let elbo = config.init().forward(
        inp.float::<2>("x")?,
        inp.float::<2>("x_recon")?,
        inp.float::<2>("mean")?,
        inp.float::<2>("logvar")?,
        Reduction::Mean,
    );
    Ok(Outputs::from([
        ("loss", flat(elbo.loss)),
        ("recon", flat(elbo.recon)),
        ("kl", flat(elbo.kl)),
    ]))
}

pub(crate) fn hmm<B: AutodiffBackend>(inp: &Inputs<B>, path: Impl) -> Result<Outputs<B>, String> {
    let algorithm = match path {
        Impl::Fast => HmmAlgorithm::Auto,
        Impl::Generic => HmmAlgorithm::Sequential,
    };
    let model = Hmm::from_logits(
        inp.float::<1>("log_initial")?,
        inp.float::<2>("log_transitions")?,
        inp.float::<2>("log_emissions")?,
    )
    .with_algorithm(algorithm);
    let observations = inp.int::<2>("observations")?;
    let lengths = inp.int_opt::<1>("lengths")?;
    let loss = model.forward(observations.clone(), lengths.clone(), Reduction::Mean);
    let log_likelihood = model.log_likelihood(observations, lengths);
    Ok(Outputs::from([
        ("loss", flat(loss)),
        ("log_likelihood", flat(log_likelihood)),
    ]))
}

pub(crate) fn multinomial_nll<B: AutodiffBackend>(
    inp: &Inputs<B>,
    path: Impl,
) -> Result<Outputs<B>, String> {
    let loss = MultinomialNllLossConfig::new()
        .with_fast_path(path == Impl::Fast)
        .init();
    with_rank!(inp.rank("logps")?, "logps", D => {
        let nll = loss.forward_no_reduction::<B, D, { D - 1 }>(
            inp.float::<D>("logps")?,
            inp.float::<D>("counts")?,
        );
        Ok(Outputs::from([("nll", flat(nll))]))
    })
}

pub(crate) fn bpnet_mixture<B: AutodiffBackend>(
    fx: &Fixture,
    inp: &Inputs<B>,
    path: Impl,
) -> Result<Outputs<B>, String> {
    let mut config = BpnetMixtureLossConfig::new().with_fast_path(path == Impl::Fast);
    if let Some(w) = config_f64(fx, "count_loss_weight")? {
        config = config.with_count_loss_weight(w);
    }
    let parts = config.init().forward(
        inp.float::<3>("y")?,
        inp.float::<3>("logits")?,
        inp.float::<2>("logcounts")?,
        inp.int_opt::<1>("labels")?,
    );
    Ok(Outputs::from([
        ("profile", flat(parts.profile)),
        ("count", flat(parts.count)),
        ("total", flat(parts.total)),
    ]))
}

pub(crate) fn log1p_mse<B: AutodiffBackend>(
    inp: &Inputs<B>,
    path: Impl,
) -> Result<Outputs<B>, String> {
    let loss = Log1pMseLossConfig::new()
        .with_fast_path(path == Impl::Fast)
        .init();
    with_rank!(inp.rank("log_pred")?, "log_pred", D => {
        let per_row = loss.forward_no_reduction::<B, D, { D - 1 }>(
            inp.float::<D>("log_pred")?,
            inp.float::<D>("counts")?,
        );
        Ok(Outputs::from([("loss", flat(per_row))]))
    })
}

pub(crate) fn negative_binomial_mixture<B: AutodiffBackend>(
    fx: &Fixture,
    inp: &Inputs<B>,
    path: Impl,
) -> Result<Outputs<B>, String> {
    let mut config = NegativeBinomialMixtureLossConfig::new().with_fast_path(path == Impl::Fast);
    if let Some(eps) = config_f64(fx, "eps")? {
        config = config.with_eps(eps);
    }
    let loss = config.init();
    let counts = inp.float::<2>("counts")?;
    let mu_1 = inp.float::<2>("mu_1")?;
    let mu_2 = inp.float::<2>("mu_2")?;
    let pi_logits = inp.float::<2>("pi_logits")?;
    with_rank!(inp.rank("theta_1")?, "theta_1", T => {
        let theta_1 = inp.float::<T>("theta_1")?;
        let theta_2 = if inp.has("theta_2") { Some(inp.float::<T>("theta_2")?) } else { None };
        let mean = loss.forward(
            counts.clone(),
            mu_1.clone(),
            mu_2.clone(),
            theta_1.clone(),
            theta_2.clone(),
            pi_logits.clone(),
            Reduction::Mean,
        );
        let nll = loss.forward_no_reduction(counts, mu_1, mu_2, theta_1, theta_2, pi_logits);
        Ok(Outputs::from([("loss", flat(mean)), ("nll", flat(nll))]))
    })
}

pub(crate) fn beta_binomial<B: AutodiffBackend>(
    inp: &Inputs<B>,
    path: Impl,
    mean_parameterisation: bool,
) -> Result<Outputs<B>, String> {
    let loss = BetaBinomialLossConfig::new()
        .with_fast_path(path == Impl::Fast)
        .init();
    with_rank!(inp.rank("counts")?, "counts", D => {
        let k = inp.float::<D>("counts")?;
        let n = inp.float::<D>("total_counts")?;
        let (mean, nll) = if mean_parameterisation {
            let (mu, c) = (inp.float::<D>("mu")?, inp.float::<D>("concentration")?);
            (
                loss.forward_mean(k.clone(), n.clone(), mu.clone(), c.clone(), Reduction::Mean),
                loss.forward_mean_no_reduction(k, n, mu, c),
            )
        } else {
            let (a, b) = (inp.float::<D>("alpha")?, inp.float::<D>("beta")?);
            (
                loss.forward(k.clone(), n.clone(), a.clone(), b.clone(), Reduction::Mean),
                loss.forward_no_reduction(k, n, a, b),
            )
        };
        Ok(Outputs::from([("loss", flat(mean)), ("nll", flat(nll))]))
    })
}

pub(crate) fn dirichlet_multinomial<B: AutodiffBackend>(
    inp: &Inputs<B>,
) -> Result<Outputs<B>, String> {
    let loss = DirichletMultinomialLossConfig::new().init();
    with_rank!(inp.rank("log_alpha")?, "log_alpha", D => {
        let nll = loss.forward_no_reduction::<B, D, { D - 1 }>(
            inp.float::<D>("log_alpha")?,
            inp.float::<D>("counts")?,
        );
        Ok(Outputs::from([("nll", flat(nll))]))
    })
}

pub(crate) fn dirichlet_multinomial_profile<B: AutodiffBackend>(
    inp: &Inputs<B>,
) -> Result<Outputs<B>, String> {
    let loss = DirichletMultinomialLossConfig::new().init();
    with_rank!(inp.rank("logits")?, "logits", D => {
        let nll = loss.forward_profile_no_reduction::<B, D, { D - 1 }>(
            inp.float::<D>("logits")?,
            inp.float::<{ D - 1 }>("log_precision")?,
            inp.float::<D>("counts")?,
        );
        Ok(Outputs::from([("nll", flat(nll))]))
    })
}

// ---------------------------------------------------------------------------------------------
// Running a case
// ---------------------------------------------------------------------------------------------

pub(crate) fn merge(total: &mut CloseReport, r: CloseReport) {
    total.max_abs_err = total.max_abs_err.max(r.max_abs_err);
    total.max_rel_err = total.max_rel_err.max(r.max_rel_err);
}

/// The tolerance a run compares with.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Tolerances {
    /// The fixture's own (written for float32 consumers).
    Fixture,
    /// A float64 run: per fixture and path, an `rtol`/`atol` that replaces the fixture's if
    /// tighter (never looser).
    Tightened(fn(&Fixture, Impl) -> Tolerance),
}

impl Tolerances {
    pub(crate) fn for_case(self, fx: &Fixture, path: Impl) -> Tolerance {
        match self {
            Tolerances::Fixture => fx.tolerance,
            Tolerances::Tightened(f) => {
                let t = f(fx, path);
                Tolerance {
                    rtol: t.rtol.min(fx.tolerance.rtol),
                    atol: t.atol.min(fx.tolerance.atol),
                }
            }
        }
    }
}

/// Runs one fixture with its own tolerance, see [`run_case_with`].
pub(crate) fn run_case<B: AutodiffBackend>(
    fx: &Fixture,
    device: &B::Device,
    path: Impl,
) -> Result<CloseReport, String> {
    run_case_with::<B>(fx, device, path, Tolerances::Fixture)
}

/// Runs one fixture; `Ok` with the worst errors over all outputs and gradients, or `Err`
/// listing every mismatch (values, and output shapes: see [`shape_matches`]).
pub(crate) fn run_case_with<B: AutodiffBackend>(
    fx: &Fixture,
    device: &B::Device,
    path: Impl,
    tolerances: Tolerances,
) -> Result<CloseReport, String> {
    check_fixture(fx)?;
    let inputs = Inputs::<B>::new(fx, device)?;
    let outputs = compute(fx, &inputs, path)?;
    let tol = tolerances.for_case(fx, path);
    let mut report = CloseReport::default();
    let mut errors = Vec::new();
    let mut check = |what: String, actual: Option<Vec<f64>>, expected: &Array| {
        let result = match actual {
            None => Err("not produced".to_string()),
            Some(actual) => compare(&actual, &expected.data, tol.atol, tol.rtol),
        };
        match result {
            Ok(r) => merge(&mut report, r),
            Err(msg) => errors.push(format!(
                "{what} (expected shape {:?}): {msg}",
                expected.shape
            )),
        }
    };
    let mut shape_errors = Vec::new();
    for (name, expected) in &fx.outputs {
        let actual = outputs.get(name.as_str()).map(|(t, shape)| {
            if !shape_matches(&expected.shape, shape) {
                shape_errors.push(format!(
                    "output {name}: shape {shape:?}, expected {:?}",
                    expected.shape
                ));
            }
            to_f64(t.clone())
        });
        check(format!("output {name}"), actual, expected);
    }
    if let Some(grads) = &fx.grads {
        let (of, _) = outputs
            .get(grads.of.as_str())
            .ok_or_else(|| format!("grads.of {:?} not produced", grads.of))?;
        let gradients = of.clone().sum().backward();
        for (name, expected) in &grads.wrt {
            let (leaf, _) = &inputs.floats[name];
            let actual = match leaf.grad(&gradients) {
                Some(g) => to_f64(g),
                // No gradient recorded: the output does not depend on this input.
                None => vec![0.0; expected.data.len()],
            };
            check(format!("d{}/d{name}", grads.of), Some(actual), expected);
        }
    }
    errors.extend(shape_errors);
    if errors.is_empty() {
        Ok(report)
    } else {
        Err(errors.join("; "))
    }
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// [`run_case`] under `catch_unwind`: a panic becomes an `Err` with its message.
pub(crate) fn run_case_caught<B: AutodiffBackend>(
    fx: &Fixture,
    device: &B::Device,
    path: Impl,
) -> Result<CloseReport, String> {
    run_case_caught_with::<B>(fx, device, path, Tolerances::Fixture)
}

/// [`run_case_with`] under `catch_unwind`: a panic becomes an `Err` with its message.
pub(crate) fn run_case_caught_with<B: AutodiffBackend>(
    fx: &Fixture,
    device: &B::Device,
    path: Impl,
    tolerances: Tolerances,
) -> Result<CloseReport, String> {
    catch_unwind(AssertUnwindSafe(|| {
        run_case_with::<B>(fx, device, path, tolerances)
    }))
    .unwrap_or_else(|payload| Err(format!("panicked: {}", panic_message(&*payload))))
}

/// Runs every case on backend `B`, printing one line per case; returns the failures.
pub(crate) fn run_all<B: AutodiffBackend>(
    label: &str,
    cases: &[LoadedCase],
    path: Impl,
    tolerances: Tolerances,
) -> Vec<String> {
    let device = B::Device::default();
    let mut failures = Vec::new();
    for case in cases {
        let result = match &case.fixture {
            Ok(fx) => run_case_caught_with::<B>(fx, &device, path, tolerances),
            Err(e) => Err(e.clone()),
        };
        match result {
            Ok(r) => println!(
                "PASS {}  max_abs_err={:.3e} max_rel_err={:.3e}  ({label})",
                case.name(),
                r.max_abs_err,
                r.max_rel_err
            ),
            Err(e) => {
                println!("FAIL {}: {e}  ({label})", case.name());
                failures.push(format!("{} ({}): {e}", case.name(), case.path.display()));
            }
        }
    }
    failures
}

/// The parity test on backend `B` with the fixtures' tolerances: panics listing the failing
/// cases.
pub(crate) fn parity<B: AutodiffBackend>(label: &str, path: Impl) {
    parity_with::<B>(label, path, Tolerances::Fixture)
}

/// The parity test on backend `B`: panics listing the failing cases.
pub(crate) fn parity_with<B: AutodiffBackend>(label: &str, path: Impl, tolerances: Tolerances) {
    crate::common::assert_native_float_dtype::<B>(&B::Device::default());
    let cases = load_all();
    assert!(!cases.is_empty(), "no fixtures found");
    let failures = run_all::<B>(label, &cases, path, tolerances);
    println!(
        "{label}: {}/{} parity cases pass",
        cases.len() - failures.len(),
        cases.len()
    );
    if !failures.is_empty() {
        panic!(
            "{label}: {}/{} parity cases fail:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }
}
