//! Fast path (host kernels) = generic path on awkward inputs, float64: strided views,
//! signed/zero upstream weights, inputs larger than a kernel chunk, and the fallback gradient
//! attachment of an autodiff backend the host module does not recognise
//! (`Autodiff<NdArray<f64, i32>>`). See `fast_paths_suite/mod.rs`; the float32 run is
//! `float32/fast_paths.rs` (one NdArray float type per test binary).
//!
//! The fast-vs-generic checks (`strided_inputs`, `weighted_upstream`, `large_inputs`) are held
//! to the issue-10 float64 target, 1e-12 relative (with an absolute floor of 1e-13 for values
//! that are near zero only through cancellation of terms of size >= 1). Before the fix they
//! failed for every loss with a host kernel: `BatchMean` gradients of the generic path were off
//! by the float32 rounding of `1/B` (Burn 0.21's autodiff `float_div_scalar` backward computes
//! `1.0 / rhs.elem::<f32>()`; the reductions now multiply by `1/B`), and the NB/ZINB host values
//! differed by up to 1e-9 relative (textbook `lgamma` differences in the kernel, a
//! single-precision `lgamma` polynomial on f64 tensors).
//!
//! `strided_equals_contiguous` and `fallback_attach` compare the same code on the same numbers
//! and run (and pass) today.

use crate::fast_paths_suite::Tol;
use burn::backend::{Autodiff, NdArray};
use burn::tensor::DType;

type Known = Autodiff<NdArray<f64>>;
/// Same float type, `i32` integers: not `TypeId`-recognised by the host module.
type Unknown = Autodiff<NdArray<f64, i32>>;

/// Fast path vs generic path in float64: the issue-10 target ("host and generic paths agree to
/// 1e-12 relative" on f64 backends), a few thousand float64 roundings.
const TOL: Tol = Tol {
    rtol: 1e-12,
    atol: 1e-13,
    floor: 1.0,
};
/// A path on a strided view vs the same path on a contiguous copy: the same operations, with
/// sums taken in another order (measured worst: 1.0e-15 of the largest magnitude).
const LAYOUT: Tol = Tol {
    rtol: 1e-13,
    atol: 1e-14,
    floor: 0.0,
};
/// The same kernel on two backends: only the gradient attachment differs (measured: bit-equal).
const SAME: Tol = Tol {
    rtol: 1e-14,
    atol: 1e-15,
    floor: 0.0,
};

fast_path_tests!(Known, Unknown, DType::F64, tol: TOL, layout: LAYOUT, same: SAME);
