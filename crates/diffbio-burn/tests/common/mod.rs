//! Shared utilities for the integration tests, declared by each test binary's `main.rs`.
//!
//! * Backend aliases: [`F64`], [`AdF64`] (float64 NdArray, with autodiff) and [`AdF32`].
//! * Tensor construction from `f64` data **without** a detour through `f32`
//!   (`Tensor::from_floats` converts via `f32` even on `NdArray<f64>`): [`tensor_f64`],
//!   [`tensor`], [`int_tensor`]; and back: [`to_f64`].
//! * Element-wise comparison `|a - e| <= atol + rtol * |e|`: [`assert_close`], [`compare`].
//! * A finite-difference gradient checker in float64: [`GradCheck`] / [`check_gradients`].
//! * [`backend_tests!`](crate::backend_tests): one generic test body, one `#[test]` per backend
//!   the suite runs on (`Autodiff<NdArray<f32>>` always, `Autodiff<Wgpu>` with the `wgpu`
//!   feature). The tests are named `<body>::ndarray` and `<body>::wgpu`, so
//!   `cargo test --features wgpu -- wgpu` runs the GPU suite alone.
//!
//! Each test crate uses a subset of these items, hence the module-wide `dead_code` allowance.
#![allow(dead_code)]

use burn::backend::{Autodiff, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

/// Float64 NdArray backend.
pub type F64 = NdArray<f64>;
/// Float64 NdArray backend with autodiff.
pub type AdF64 = Autodiff<F64>;
/// Float32 NdArray backend.
pub type F32 = NdArray<f32>;
/// Float32 NdArray backend with autodiff.
pub type AdF32 = Autodiff<F32>;

/// The CPU backend every generic test runs on.
pub type TestNdArray = AdF32;
/// The GPU backend generic tests also run on with the `wgpu` feature.
#[cfg(feature = "wgpu")]
pub type TestWgpu = Autodiff<burn::backend::Wgpu>;

/// Instantiates generic test functions `fn body<B: AutodiffBackend>()` once per backend:
///
/// ```ignore
/// fn finite_loss<B: AutodiffBackend>() { ... }
/// backend_tests!(finite_loss, #[should_panic(expected = "...")] bad_shape);
/// ```
///
/// expands to modules `finite_loss` and `bad_shape` with tests `ndarray` and (with the `wgpu`
/// feature) `wgpu`. Attributes before a name are put on each of its tests.
#[macro_export]
macro_rules! backend_tests {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {$(
        mod $name {
            $(#[$attr])*
            #[test]
            fn ndarray() {
                super::$name::<$crate::common::TestNdArray>();
            }

            #[cfg(feature = "wgpu")]
            $(#[$attr])*
            #[test]
            fn wgpu() {
                super::$name::<$crate::common::TestWgpu>();
            }
        }
    )*};
}

/// Panics unless float tensors of `B` are stored in `B`'s own float type.
///
/// Burn 0.21 keys the default float dtype by device *type*: in a process that first created an
/// `NdArray<f32>` tensor, `NdArray<f64>` silently creates (and computes in) f32 tensors, and
/// vice versa. A float64 check would then measure float32 rounding. Keep one NdArray float
/// type per test binary; this guard makes a violation fail loudly instead.
pub fn assert_native_float_dtype<B: Backend>(device: &B::Device) {
    let actual = Tensor::<B, 1>::zeros([1], device).dtype();
    let native = <B::FloatElem as burn::tensor::Element>::dtype();
    assert_eq!(
        actual,
        native,
        "{}: tensors are created as {actual:?}, not the backend's {native:?}: another float type \
         of the same device was used first in this test process (Burn 0.21 keys the default \
         dtype by device); move this test to a binary of its own",
        std::any::type_name::<B>()
    );
}

/// Default absolute tolerance of [`GradCheck`].
pub const GRAD_ATOL: f64 = 1e-6;
/// Default relative tolerance of [`GradCheck`].
pub const GRAD_RTOL: f64 = 1e-5;

/// A float64 tensor on the autodiff float64 backend, built directly from `f64` data
/// (exact: no rounding through `f32`). Panics if `data.len()` does not match `shape`.
pub fn tensor_f64<const D: usize>(data: Vec<f64>, shape: [usize; D]) -> Tensor<AdF64, D> {
    tensor::<AdF64, D>(&data, shape, &Default::default())
}

/// A float tensor on any backend from `f64` data; the data is converted once, directly from
/// `f64` to the backend's float type (exact on float64 backends).
/// Panics if `data.len()` does not match `shape`.
pub fn tensor<B: Backend, const D: usize>(
    data: &[f64],
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    let n: usize = shape.iter().product();
    assert_eq!(
        data.len(),
        n,
        "tensor: {} values for shape {shape:?} ({n} elements)",
        data.len()
    );
    Tensor::from_data(TensorData::new(data.to_vec(), shape), device)
}

/// An integer tensor on any backend from `i64` data.
/// Panics if `data.len()` does not match `shape`.
pub fn int_tensor<B: Backend, const D: usize>(
    data: &[i64],
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D, Int> {
    let n: usize = shape.iter().product();
    assert_eq!(
        data.len(),
        n,
        "int_tensor: {} values for shape {shape:?} ({n} elements)",
        data.len()
    );
    Tensor::from_data(TensorData::new(data.to_vec(), shape), device)
}

/// The elements of a float tensor as `f64` (row-major), whatever the backend's float type.
pub fn to_f64<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().iter::<f64>().collect()
}

/// Worst errors of an element-wise comparison.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CloseReport {
    /// `max |a - e|`.
    pub max_abs_err: f64,
    /// `max |a - e| / |e|` over elements with `e != 0` (0 if there is none).
    pub max_rel_err: f64,
}

/// Compares `actual` with `expected` element-wise as numpy's `allclose`:
/// `|a - e| <= atol + rtol * |e|`. A non-finite `actual` always fails.
///
/// Returns the worst errors, or `Err` with a description of the length mismatch or of the
/// failing elements (index, actual, expected; at most 10 listed).
pub fn compare(
    actual: &[f64],
    expected: &[f64],
    atol: f64,
    rtol: f64,
) -> Result<CloseReport, String> {
    if actual.len() != expected.len() {
        return Err(format!(
            "{} values, expected {}",
            actual.len(),
            expected.len()
        ));
    }
    let mut report = CloseReport::default();
    let mut bad = Vec::new();
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let abs = (a - e).abs();
        if abs.is_nan() || abs.is_infinite() || abs > atol + rtol * e.abs() {
            bad.push(i);
        }
        if abs.is_finite() {
            report.max_abs_err = report.max_abs_err.max(abs);
            if e != 0.0 {
                report.max_rel_err = report.max_rel_err.max(abs / e.abs());
            }
        } else {
            report.max_abs_err = f64::INFINITY;
        }
    }
    if bad.is_empty() {
        return Ok(report);
    }
    let listed: Vec<String> = bad
        .iter()
        .take(10)
        .map(|&i| format!("[{i}] {:e} vs {:e}", actual[i], expected[i]))
        .collect();
    Err(format!(
        "{}/{} elements off (atol {atol:e}, rtol {rtol:e}; max_abs_err {:e}, max_rel_err {:e}): {}{}",
        bad.len(),
        actual.len(),
        report.max_abs_err,
        report.max_rel_err,
        listed.join(", "),
        if bad.len() > 10 { ", ..." } else { "" }
    ))
}

/// Panics (naming `what`) unless `actual` and `expected` are close element-wise
/// (`|a - e| <= atol + rtol * |e|`, see [`compare`]).
#[track_caller]
pub fn assert_close(what: &str, actual: &[f64], expected: &[f64], atol: f64, rtol: f64) {
    if let Err(msg) = compare(actual, expected, atol, rtol) {
        panic!("{what}: {msg}");
    }
}

/// Result of a successful [`GradCheck::run`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GradReport {
    /// Number of gradient entries compared.
    pub entries: usize,
    /// `max |fd - ad|`.
    pub max_abs_err: f64,
    /// `max |fd - ad| / |fd|` over entries with `fd != 0`.
    pub max_rel_err: f64,
}

struct GradInput {
    name: String,
    data: Vec<f64>,
    positive: bool,
}

/// Float64 finite-difference gradient check of a scalar function of several inputs.
///
/// Each input is a flat `f64` vector; the closure receives one flat 1-D [`AdF64`] tensor per
/// input (in the order they were added) and reshapes them itself. It returns a
/// `Tensor<AdF64, 1>`; if that has more than one element, their **sum** is the checked function.
/// Values that are not differentiated (counts, integer observations, configs) are simply
/// captured by the closure.
///
/// For every entry `x` of every input the central difference `(f(x+h) - f(x-h)) / 2h`, with
/// `h = step · max(1, |x|)` (`step` = 1e-6 by default), is compared with the autodiff gradient:
/// `|fd - ad| <= atol + rtol · |fd|` (defaults [`GRAD_ATOL`] = 1e-6, [`GRAD_RTOL`] = 1e-5).
/// An input added with [`GradCheck::positive_input`] gets `h <= |x| / 2`, so the perturbed values
/// stay strictly positive (for `mu`, `theta`, ... near 0). A missing autodiff gradient (input
/// not used) counts as zero. Non-finite values (loss, fd or ad) always fail.
///
/// [`GradCheck::run`] panics with the list of failing entries (input name, flat index, value,
/// fd, ad); otherwise it returns the worst errors.
///
/// ```ignore
/// let report = GradCheck::new("nb mu/theta")
///     .positive_input("mu", mu.clone())
///     .positive_input("theta", theta.clone())
///     .tolerance(1e-7, 1e-6)
///     .run(|t| {
///         let counts = tensor_f64(counts.clone(), [2, 3]);
///         let mu = t[0].clone().reshape([2, 3]);
///         let theta = t[1].clone().reshape([3]);
///         loss.forward(counts, mu, theta, Reduction::Sum)
///     });
/// ```
pub struct GradCheck {
    name: String,
    inputs: Vec<GradInput>,
    atol: f64,
    rtol: f64,
    step: f64,
}

impl GradCheck {
    /// A check named `name` (used in the panic message), no inputs, default tolerances.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            inputs: Vec::new(),
            atol: GRAD_ATOL,
            rtol: GRAD_RTOL,
            step: 1e-6,
        }
    }

    /// Adds a differentiated input (flat data).
    pub fn input(mut self, name: &str, data: Vec<f64>) -> Self {
        self.inputs.push(GradInput {
            name: name.to_string(),
            data,
            positive: false,
        });
        self
    }

    /// Adds a differentiated input whose perturbed values must stay positive:
    /// the step is capped at `|x| / 2`.
    pub fn positive_input(mut self, name: &str, data: Vec<f64>) -> Self {
        self.inputs.push(GradInput {
            name: name.to_string(),
            data,
            positive: true,
        });
        self
    }

    /// Overrides the tolerances of `|fd - ad| <= atol + rtol · |fd|`.
    pub fn tolerance(mut self, atol: f64, rtol: f64) -> Self {
        self.atol = atol;
        self.rtol = rtol;
        self
    }

    /// Overrides the relative step (`h = step · max(1, |x|)`, default 1e-6).
    pub fn step(mut self, step: f64) -> Self {
        self.step = step;
        self
    }

    /// Runs the check; panics with the failing entries, see [`GradCheck`].
    #[track_caller]
    pub fn run<F>(self, f: F) -> GradReport
    where
        F: Fn(&[Tensor<AdF64, 1>]) -> Tensor<AdF64, 1>,
    {
        let device = Default::default();
        assert_native_float_dtype::<AdF64>(&device);
        let eval = |values: &[Vec<f64>]| -> f64 {
            let ts: Vec<Tensor<AdF64, 1>> = values
                .iter()
                .map(|v| tensor::<AdF64, 1>(v, [v.len()], &device))
                .collect();
            to_f64(f(&ts)).iter().sum()
        };

        // Autodiff gradients.
        let ts: Vec<Tensor<AdF64, 1>> = self
            .inputs
            .iter()
            .map(|inp| tensor::<AdF64, 1>(&inp.data, [inp.data.len()], &device).require_grad())
            .collect();
        let out = f(&ts).sum();
        let value = to_f64(out.clone())[0];
        assert!(
            value.is_finite(),
            "{}: the function value is not finite: {value}",
            self.name
        );
        let grads = out.backward();
        let ad: Vec<Vec<f64>> = ts
            .iter()
            .zip(&self.inputs)
            .map(|(t, inp)| match t.grad(&grads) {
                Some(g) => g.into_data().iter::<f64>().collect(),
                None => vec![0.0; inp.data.len()],
            })
            .collect();

        // Central differences.
        let mut values: Vec<Vec<f64>> = self.inputs.iter().map(|i| i.data.clone()).collect();
        let mut report = GradReport::default();
        let mut failures = Vec::new();
        for (k, inp) in self.inputs.iter().enumerate() {
            for j in 0..inp.data.len() {
                let x = inp.data[j];
                let mut h = self.step * x.abs().max(1.0);
                if inp.positive {
                    h = h.min(x.abs() / 2.0);
                }
                values[k][j] = x + h;
                let up = eval(&values);
                values[k][j] = x - h;
                let down = eval(&values);
                values[k][j] = x;
                let fd = (up - down) / (2.0 * h);
                let a = ad[k][j];
                let err = (fd - a).abs();
                report.entries += 1;
                let ok = err.is_finite() && err <= self.atol + self.rtol * fd.abs();
                if err.is_finite() {
                    report.max_abs_err = report.max_abs_err.max(err);
                    if fd != 0.0 {
                        report.max_rel_err = report.max_rel_err.max(err / fd.abs());
                    }
                }
                if !ok {
                    failures.push(format!(
                        "  {}[{j}] (x = {x:e}, h = {h:e}): fd = {fd:e}, ad = {a:e}, |fd-ad| = {err:e}",
                        inp.name
                    ));
                }
            }
        }
        if !failures.is_empty() {
            panic!(
                "{}: {}/{} gradient entries fail |fd - ad| <= {:e} + {:e}·|fd| (f = {value:e}):\n{}",
                self.name,
                failures.len(),
                report.entries,
                self.atol,
                self.rtol,
                failures.join("\n")
            );
        }
        report
    }
}

/// Shorthand for [`GradCheck`] with default tolerances and step: `inputs` are
/// `(name, flat data)`; `f` receives flat 1-D tensors in that order. Panics on failure.
#[track_caller]
pub fn check_gradients<F>(name: &str, inputs: &[(&str, Vec<f64>)], f: F) -> GradReport
where
    F: Fn(&[Tensor<AdF64, 1>]) -> Tensor<AdF64, 1>,
{
    inputs
        .iter()
        .fold(GradCheck::new(name), |c, (n, d)| c.input(n, d.clone()))
        .run(f)
}

/// `|got - want| / (|want| + floor)`: a relative error that turns absolute below `floor`.
pub fn rel_err(got: f64, want: f64, floor: f64) -> f64 {
    (got - want).abs() / (want.abs() + floor)
}

/// An accuracy sweep over many cases of three quantities (a value and two derivatives): the
/// worst error of each, and a line for every case where one exceeds its tolerance.
pub struct Sweep {
    names: [&'static str; 3],
    tolerances: [f64; 3],
    worst: [f64; 3],
    cases: usize,
    failures: Vec<String>,
}

impl Sweep {
    /// A sweep of the quantities `names`, each with its tolerance.
    pub fn new(names: [&'static str; 3], tolerances: [f64; 3]) -> Self {
        Self {
            names,
            tolerances,
            worst: [0.0; 3],
            cases: 0,
            failures: Vec::new(),
        }
    }

    /// Records one case's three errors; `describe` names the case and its values, called
    /// only when an error exceeds its tolerance (NaN errors fail).
    pub fn record(&mut self, errors: [f64; 3], describe: impl FnOnce() -> String) {
        self.cases += 1;
        for (w, e) in self.worst.iter_mut().zip(errors) {
            *w = w.max(e);
        }
        if !errors.iter().zip(self.tolerances).all(|(e, t)| *e <= t) {
            let [a, b, c] = errors;
            self.failures
                .push(format!("{} (errors {a:.1e}, {b:.1e}, {c:.1e})", describe()));
        }
    }

    /// Prints the worst errors under `title` and panics listing the failing cases.
    pub fn finish(self, title: &str) {
        let worst: Vec<String> = (self.names.iter().zip(self.worst))
            .map(|(n, w)| format!("{n} {w:.2e}"))
            .collect();
        println!(
            "{title} over {} cases: max rel err {}",
            self.cases,
            worst.join(", ")
        );
        assert!(
            self.failures.is_empty(),
            "{title}: {} failures:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}
