//! Fast path (host kernels) = generic path on awkward inputs, float32: strided views,
//! signed/zero upstream weights, inputs larger than a kernel chunk, and the fallback gradient
//! attachment of an autodiff backend the host module does not recognise
//! (`Autodiff<NdArray<f32, i32>>`). See `fast_paths_suite/mod.rs`; the float64 run is
//! `float64/fast_paths_f64.rs` (one NdArray float type per test binary).

use crate::fast_paths_suite::Tol;
use burn::backend::{Autodiff, NdArray};
use burn::tensor::DType;

type Known = Autodiff<NdArray<f32>>;
/// Same float type, `i32` integers: not `TypeId`-recognised by the host module.
type Unknown = Autodiff<NdArray<f32, i32>>;

/// Fast path (f64 arithmetic, rounded once) vs generic path (float32 tensor ops): a few
/// float32 roundings per element (measured worst: 4e-6 relative on elements not dominated by
/// cancellation, 1.4e-6 of the vector's largest magnitude); the `atol` term covers small
/// entries of sums with cancellation (a broadcast theta's gradient under signed weights,
/// `N·p - c` of the multinomial at large counts).
const TOL: Tol = Tol {
    rtol: 1e-5,
    atol: 1e-6,
    floor: 0.0,
};
/// A path on a strided view vs the same path on a contiguous copy: the same operations, with
/// sums (over rows, over an expanded dimension) taken in another order.
const LAYOUT: Tol = TOL;
/// The same kernel on two backends: only the gradient attachment differs (measured: bit-equal).
const SAME: Tol = Tol {
    rtol: 1e-6,
    atol: 1e-7,
    floor: 0.0,
};

fast_path_tests!(Known, Unknown, DType::F32, tol: TOL, layout: LAYOUT, same: SAME);
