//! Fast path (host kernels) = generic path on awkward inputs, float64: strided views,
//! signed/zero upstream weights, inputs larger than a kernel chunk, and the fallback gradient
//! attachment of an autodiff backend the host module does not recognise
//! (`Autodiff<NdArray<f64, i32>>`). See `fast_paths_suite/mod.rs`; the float32 run is
//! `fast_paths.rs` (one NdArray float type per test binary).
//!
//! The fast-vs-generic checks (`strided_inputs`, `weighted_upstream`, `large_inputs`) are held
//! to the issue-10 float64 target, 1e-12 relative, which today's main misses for every loss
//! with a host kernel; they are `#[ignore]`d until the fix lands (run them with
//! `-- --include-ignored`). Measured on main:
//! * `BatchMean` gradients of the generic path are off by the float32 rounding of `1/B`
//!   (4.47e-8 relative at B = 7, 2.4e-8 at B = 300), for NB, ZINB, VAE, MNLL and the mixture:
//!   Burn 0.21's autodiff `float_div_scalar` backward computes `1.0 / rhs.elem::<f32>()`, and
//!   the generic reductions divide by the batch size (`loss.sum() / batch as f64`);
//!   multiplying by `1.0 / batch` avoids it.
//! * NB/ZINB values of the host kernel differ from the generic path by up to 1e-9 relative
//!   (300x200 inputs), d/dθ by up to 5e-11: the kernels' float32-tuned `exp`/`ln` on f64.
//!
//! `strided_equals_contiguous` and `fallback_attach` compare the same code on the same numbers
//! and run (and pass) today.

mod common;
mod fast_paths_suite;

use burn::backend::{Autodiff, NdArray};
use burn::tensor::DType;
use fast_paths_suite::Tol;

type Known = Autodiff<NdArray<f64>>;
/// Same float type, `i32` integers: not `TypeId`-recognised by the host module.
type Unknown = Autodiff<NdArray<f64, i32>>;

/// Fast path vs generic path in float64: the issue-10 target ("host and generic paths agree to
/// 1e-12 relative" on f64 backends), a few thousand float64 roundings.
const TOL: Tol = Tol {
    rtol: 1e-12,
    atol: 1e-13,
};
/// A path on a strided view vs the same path on a contiguous copy: the same operations, with
/// sums taken in another order (measured worst: 1.0e-15 of the largest magnitude).
const LAYOUT: Tol = Tol {
    rtol: 1e-13,
    atol: 1e-14,
};
/// The same kernel on two backends: only the gradient attachment differs (measured: bit-equal).
const SAME: Tol = Tol {
    rtol: 1e-14,
    atol: 1e-15,
};

fast_path_tests!(Known, Unknown, DType::F64, tol: TOL, layout: LAYOUT, same: SAME;
    #[ignore = "issue 10: f64 fast path vs generic path off by up to 4.5e-8 relative (see the module docs)"]
    nb => Nb,
    #[ignore = "issue 10: f64 fast path vs generic path off by up to 4.5e-8 relative (see the module docs)"]
    nb_full_theta => NbFullTheta,
    #[ignore = "issue 10: f64 fast path vs generic path off by up to 4.5e-8 relative (see the module docs)"]
    zinb => Zinb,
    #[ignore = "issue 10: f64 fast path vs generic path off by up to 4.5e-8 relative (see the module docs)"]
    zinb_full_theta => ZinbFullTheta,
    #[ignore = "issue 10: f64 fast path vs generic path off by up to 4.5e-8 relative (see the module docs)"]
    vae_mse => VaeMse,
    #[ignore = "issue 10: f64 fast path vs generic path off by up to 4.5e-8 relative (see the module docs)"]
    vae_bce => VaeBce,
    #[ignore = "issue 10: f64 fast path vs generic path off by up to 4.5e-8 relative (see the module docs)"]
    mnll => Mnll,
    #[ignore = "issue 10: f64 fast path vs generic path off by up to 4.5e-8 relative (see the module docs)"]
    mnll_2d => Mnll2d,
    #[ignore = "issue 10: f64 fast path vs generic path off by up to 4.5e-8 relative (see the module docs)"]
    mnll_logits => MnllLogits,
    #[ignore = "issue 10: f64 fast path vs generic path off by up to 4.5e-8 relative (see the module docs)"]
    mixture => Mixture,
    #[ignore = "issue 10: f64 fast path vs generic path off by up to 4.5e-8 relative (see the module docs)"]
    mixture_labels => MixtureLabels,
    #[ignore = "issue 10: f64 fast path vs generic path off by up to 4.5e-8 relative (see the module docs)"]
    mixture_unlabelled => MixtureUnlabelled,
    log1p_mse => Log1pMse,
);
