//! Parity with the reference fixtures on `Autodiff<NdArray<f64>>`: the fixtures' float64
//! expectations at float64 precision. A separate test binary, because Burn 0.21 keys the
//! default float dtype by device: in a process that first used `NdArray<f32>`, `NdArray<f64>`
//! silently computes in f32.

mod common;
mod parity_harness;

use burn::backend::{Autodiff, NdArray};
use parity_harness::Impl;

#[test]
fn parity_ndarray_f64() {
    parity_harness::parity::<Autodiff<NdArray<f64>>>("ndarray-f64", Impl::Fast);
}

#[test]
fn parity_ndarray_f64_generic_path() {
    parity_harness::parity::<Autodiff<NdArray<f64>>>("ndarray-f64-generic", Impl::Generic);
}
