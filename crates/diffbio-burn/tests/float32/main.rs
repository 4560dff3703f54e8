//! The float32 integration suite: one test binary, so that `Autodiff<NdArray<f32>>` is the
//! only NdArray precision the process uses (Burn 0.21 keys the default float dtype by device
//! type, so a float64 test here would turn these into float64 tests; see
//! `common::assert_native_float_dtype`). With the `wgpu` feature every backend-generic test
//! also runs on `Autodiff<Wgpu>` as `<test>::wgpu`.

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

mod beyond;
mod conv;
mod edge_shapes;
mod errors;
mod fast_paths;
mod hmm;
mod hmm_f32_accuracy;
mod hmm_training;
mod nb_accuracy;
mod parity;
mod paths;
mod softmax;
mod special_accuracy;
mod stability;
