//! Float64 accuracy of the NB and ZINB likelihoods against an mpmath oracle at 60 digits
//! (`tests/oracle/nb_mpmath.py` wrote `nb_mpmath.json`), on both paths of
//! `Autodiff<NdArray<f64>>`: the host kernel and the generic path. The grid is the float32
//! sweep's (`float32/nb_accuracy.rs`): `theta` from 1e-4 to 1e10, counts and `mu` up to 1e5,
//! `mu` down to 1e-6, `pi_logits` to ±15.
//!
//! Tolerances are the float32 sweep's scaled to float64: values within 1e-12 relative (floor
//! 1e-4 nats), gradients within 1e-10 relative or 1e-15 of the size of the terms that cancel
//! in them (about 8 float64 ulps).

use burn::tensor::{Tensor, TensorData};
use diffbio_burn::losses::negative_binomial::NegativeBinomialLossConfig;
use diffbio_burn::losses::zinb::ZinbLossConfig;
use serde_json::Value;

use crate::common::{AdF64 as B, Sweep, assert_native_float_dtype, rel_err, to_f64};

const EPS: f64 = 1e-8;

/// The oracle's rows for `key`: inputs then expected values, as `f64`.
fn oracle(key: &str) -> Vec<Vec<f64>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oracle/nb_mpmath.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    json[key]
        .as_array()
        .unwrap_or_else(|| panic!("{path}: no array `{key}`"))
        .iter()
        .map(|row| {
            row.as_array()
                .expect("a row is an array")
                .iter()
                .map(|v| v.as_f64().expect("a number"))
                .collect()
        })
        .collect()
}

/// A `[1, n]` leaf from column `c` of `rows`.
fn column(rows: &[Vec<f64>], c: usize) -> Tensor<B, 2> {
    let v: Vec<f64> = rows.iter().map(|r| r[c]).collect();
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [1, n]), &Default::default())
}

/// Value, first and second derivative.
const TOLERANCES: [f64; 3] = [1e-12, 1e-10, 1e-10];
/// Floor of the gradients' relative error, as a fraction of the size of their terms:
/// `1e-10 * GRAD_FLOOR = 1e-15`.
const GRAD_FLOOR: f64 = 1e-5;

fn nb_sweep(fast_path: bool) {
    assert_native_float_dtype::<B>(&Default::default());
    let rows = oracle("nb");
    let (mu, theta) = (
        column(&rows, 1).require_grad(),
        column(&rows, 2).require_grad(),
    );
    let nll = NegativeBinomialLossConfig::new()
        .with_fast_path(fast_path)
        .init()
        .forward_no_reduction(column(&rows, 0), mu.clone(), theta.clone());
    let grads = nll.clone().sum().backward();
    let (nll, g_mu, g_theta) = (
        to_f64(nll),
        to_f64(mu.grad(&grads).unwrap()),
        to_f64(theta.grad(&grads).unwrap()),
    );
    let mut sweep = Sweep::new(["value", "d/dmu", "d/dtheta"], TOLERANCES);
    for (i, r) in rows.iter().enumerate() {
        let (x, m, t, lp, d_mu, d_theta) = (r[0], r[1] + EPS, r[2], r[3], r[4], r[5]);
        let mu_scale = x / m + (t + x) / (t + m);
        let theta_scale = x / t + (m / t).ln_1p() + (m - x).abs() / (t + m);
        let errors = [
            rel_err(-nll[i], lp, 1e-4),
            rel_err(-g_mu[i], d_mu, GRAD_FLOOR * mu_scale),
            rel_err(-g_theta[i], d_theta, GRAD_FLOOR * theta_scale),
        ];
        sweep.record(errors, || {
            format!(
                "x={x} mu={} theta={t}: nll {:e} vs {:e}; dmu {:e} vs {:e}; dtheta {:e} vs {:e}",
                r[1], -nll[i], lp, -g_mu[i], d_mu, -g_theta[i], d_theta
            )
        });
    }
    sweep.finish(&format!("NB f64 (fast_path {fast_path}) vs mpmath"));
}

fn zinb_sweep(fast_path: bool) {
    assert_native_float_dtype::<B>(&Default::default());
    let rows = oracle("zinb");
    let (mu, logits) = (
        column(&rows, 1).require_grad(),
        column(&rows, 3).require_grad(),
    );
    let nll = ZinbLossConfig::new()
        .with_fast_path(fast_path)
        .init()
        .forward_no_reduction(
            column(&rows, 0),
            mu.clone(),
            column(&rows, 2),
            logits.clone(),
        );
    let grads = nll.clone().sum().backward();
    let (nll, g_mu, g_logits) = (
        to_f64(nll),
        to_f64(mu.grad(&grads).unwrap()),
        to_f64(logits.grad(&grads).unwrap()),
    );
    let mut sweep = Sweep::new(["value", "d/dmu", "d/dlogit"], TOLERANCES);
    for (i, r) in rows.iter().enumerate() {
        let (x, m, lp, d_mu, d_logit) = (r[0], r[1] + EPS, r[4], r[5], r[6]);
        let errors = [
            rel_err(-nll[i], lp, 1e-4),
            rel_err(-g_mu[i], d_mu, GRAD_FLOOR * (x / m + 1.0)),
            rel_err(-g_logits[i], d_logit, GRAD_FLOOR),
        ];
        sweep.record(errors, || {
            format!(
                "x={x} mu={} theta={} logit={}: nll {:e} vs {:e}; dmu {:e} vs {:e}; \
                 dlogit {:e} vs {:e}",
                r[1], r[2], r[3], -nll[i], lp, -g_mu[i], d_mu, -g_logits[i], d_logit
            )
        });
    }
    sweep.finish(&format!("ZINB f64 (fast_path {fast_path}) vs mpmath"));
}

#[test]
fn nb_host_kernel() {
    nb_sweep(true);
}

#[test]
fn nb_generic_path() {
    nb_sweep(false);
}

#[test]
fn zinb_host_kernel() {
    zinb_sweep(true);
}

#[test]
fn zinb_generic_path() {
    zinb_sweep(false);
}
