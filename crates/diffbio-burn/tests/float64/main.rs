//! The float64 integration suite on `Autodiff<NdArray<f64>>`: finite-difference gradients,
//! parity with the float64 fixtures, and host kernels against the generic path to 1e-12. One
//! binary with no float32 NdArray tensor in it (Burn 0.21 keys the default float dtype by
//! device type; `common::assert_native_float_dtype` checks it).

#[macro_use]
#[path = "../common/mod.rs"]
mod common;
#[macro_use]
#[path = "../fast_paths_suite/mod.rs"]
mod fast_paths_suite;
#[path = "../hmm_ref/mod.rs"]
mod hmm_ref;
#[path = "../parity_harness/mod.rs"]
mod parity_harness;

mod beyond_f64;
mod conv_f64;
mod fast_paths_f64;
mod gradients;
mod hmm_f64;
mod nb_accuracy_f64;
mod parity_f64;
mod paths_f64;
mod softmax_f64;
