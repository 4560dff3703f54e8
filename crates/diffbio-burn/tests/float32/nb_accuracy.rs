//! Float32 accuracy of the NB and ZINB likelihoods against an independent float64 oracle,
//! on every path and backend: the host kernel (NdArray) and the generic path (NdArray, and
//! wgpu with the `wgpu` feature, where the backend's own `log1p` is `log(1 + x)`).
//!
//! The oracle sums the finite product of integer counts term by term, each term a `ln_1p` of
//! a small ratio, so it needs no `lgamma` and cancels nothing even at `theta = 1e10`:
//!
//! ```text
//! log NB(x) = Σ_{k<x} ln_1p((k - μ)/(θ + μ)) + x·ln μ - ln x! - θ·ln_1p(μ/θ)
//! d/dθ      = Σ_{k<x} (μ - k)/((θ + k)(θ + μ)) - [ln_1p(u) - u/(1 + u)],  u = μ/θ
//! ```
//!
//! with the bracket as its series `Σ t^j/j (j >= 2)`, `t = u/(1 + u)`, for small `t`. The
//! sweep covers `theta` from 1e-4 to 1e10, counts and `mu` up to 1e5, `mu` down to 1e-6 and
//! `pi_logits` to ±15.

use crate::common;
use crate::common::{Sweep, rel_err, to_f64};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use diffbio_burn::losses::negative_binomial::NegativeBinomialLossConfig;
use diffbio_burn::losses::zinb::ZinbLossConfig;
use statrs::function::gamma::ln_gamma;

const EPS: f64 = 1e-8;

/// `ln_1p(u) - u/(1 + u)` for `u >= 0`, without cancellation.
fn log1p_minus_ratio(u: f64) -> f64 {
    let t = u / (1.0 + u);
    if t < 0.1 {
        (2..60).map(|j| t.powi(j) / f64::from(j)).sum()
    } else {
        u.ln_1p() - t
    }
}

/// `(log NB, d/dmu, d/dtheta)` in float64 for an integer count (see the module docs).
pub(crate) fn oracle(x: f64, mu: f64, theta: f64) -> (f64, f64, f64) {
    let m = mu + EPS;
    let mut lp = x * m.ln() - ln_gamma(x + 1.0) - theta * (m / theta).ln_1p();
    let mut d_theta = -log1p_minus_ratio(m / theta);
    let mut k = 0.0;
    while k < x {
        lp += ((k - m) / (theta + m)).ln_1p();
        d_theta += (m - k) / ((theta + k) * (theta + m));
        k += 1.0;
    }
    let d_mu = theta * (x - m) / (m * (theta + m));
    (lp, d_mu, d_theta)
}

fn grid() -> Vec<(f64, f64, f64)> {
    let thetas = [
        1e-4, 1e-2, 0.5, 3.0, 7.99, 8.0, 20.0, 1e3, 1e4, 1e5, 1e6, 1e7, 2e8, 1e9, 1e10,
    ];
    let counts = [0.0, 1.0, 2.0, 3.0, 7.0, 17.0, 50.0, 1e3, 1e4, 1e5];
    let mus = [1e-6, 1e-3, 0.5, 2.5, 5.0, 100.0, 1e4, 1e5];
    let mut out = Vec::new();
    for &t in &thetas {
        for &x in &counts {
            for &m in &mus {
                out.push((x, m, t));
            }
        }
    }
    // Near-Poisson: large theta with counts close to the mean, the hardest cancellation.
    for &t in &[1e4, 1e5, 1e8, 1e10] {
        for &m in &[10.0f64, 1e3, 1e5] {
            for k in [-3.0, -1.0, 0.0, 1.0, 3.0] {
                out.push(((m + k * m.sqrt()).round().max(0.0), m, t));
            }
        }
    }
    out
}

/// One `[1, n]` row of `f32` values on `B`.
fn row<B: AutodiffBackend>(v: Vec<f32>, device: &B::Device) -> Tensor<B, 2> {
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [1, n]), device)
}

fn nb_sweep<B: AutodiffBackend>(fast_path: bool) {
    let cases = grid();
    let device = Default::default();
    let col = |f: fn(&(f64, f64, f64)) -> f64| {
        row::<B>(cases.iter().map(|c| f(c) as f32).collect(), &device)
    };
    let counts = col(|c| c.0);
    let mu = col(|c| c.1).require_grad();
    let theta = col(|c| c.2).require_grad();
    let loss = NegativeBinomialLossConfig::new()
        .with_fast_path(fast_path)
        .init();
    let nll = loss.forward_no_reduction(counts, mu.clone(), theta.clone());
    let grads = nll.clone().sum().backward();
    let nll = to_f64(nll);
    let g_mu = to_f64(mu.grad(&grads).unwrap());
    let g_theta = to_f64(theta.grad(&grads).unwrap());

    let mut sweep = Sweep::new(["value", "d/dmu", "d/dtheta"], [1e-5, 1e-4, 1e-4]);
    for (i, &(x, m, t)) in cases.iter().enumerate() {
        // The oracle at the f32-rounded inputs the loss saw.
        let (x, m, t) = (x as f32 as f64, m as f32 as f64, t as f32 as f64);
        let (lp, d_mu, d_theta) = oracle(x, m, t);
        // Values within 1e-5 relative (floor 1e-3 nats). Gradients within 1e-4 relative, or
        // 1e-6 of the size of the terms that cancel in them (16 float32 ulps; `rel_err` with a
        // floor of 1e-2 × that size): below that is float32 rounding of the inputs (e.g.
        // `mu + 1e-8 == mu`) and of the terms, not the formula.
        let mf = m + EPS;
        let mu_scale = x / mf + (t + x) / (t + mf);
        let theta_scale = x / t + (mf / t).ln_1p() + (mf - x).abs() / (t + mf);
        let errors = [
            rel_err(-nll[i], lp, 1e-3),
            rel_err(-g_mu[i], d_mu, 1e-2 * mu_scale),
            rel_err(-g_theta[i], d_theta, 1e-2 * theta_scale),
        ];
        sweep.record(errors, || {
            format!(
                "x={x} mu={m} theta={t}: nll {} vs {}; dmu {} vs {}; dtheta {:e} vs {:e}",
                nll[i], -lp, g_mu[i], -d_mu, g_theta[i], -d_theta
            )
        });
    }
    sweep.finish(&format!(
        "NB f32 on {} (fast_path {fast_path}) vs f64",
        std::any::type_name::<B>()
    ));
}

/// `softplus(x) = ln(1 + eˣ)` in float64.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

fn zinb_sweep<B: AutodiffBackend>(fast_path: bool) {
    let mut cases = Vec::new();
    for &t in &[0.5, 8.0, 1e3, 1e5] {
        for &x in &[0.0, 1.0, 4.0, 100.0] {
            for &m in &[1e-6, 1e-5, 1e-3, 0.5, 50.0] {
                for &l in &[-15.0, -3.0, 0.0, 3.0, 15.0] {
                    cases.push((x, m, t, l));
                }
            }
        }
    }
    let device = Default::default();
    let col = |f: fn(&(f64, f64, f64, f64)) -> f64| {
        row::<B>(cases.iter().map(|c| f(c) as f32).collect(), &device)
    };
    let loss = ZinbLossConfig::new().with_fast_path(fast_path).init();
    let mu = col(|c| c.1).require_grad();
    let logits = col(|c| c.3).require_grad();
    let nll = loss.forward_no_reduction(col(|c| c.0), mu.clone(), col(|c| c.2), logits.clone());
    let grads = nll.clone().sum().backward();
    let nll = to_f64(nll);
    let g_mu = to_f64(mu.grad(&grads).unwrap());
    let g_logits = to_f64(logits.grad(&grads).unwrap());
    let mut sweep = Sweep::new(["value", "d/dmu", "d/dlogit"], [1e-5, 1e-4, 1e-4]);
    for (i, &(x, m, t, l)) in cases.iter().enumerate() {
        let (x, m, t, l) = (x as f32 as f64, m as f32 as f64, t as f32 as f64, l);
        // scVI adds eps to mu without clamping, as the oracle's `mu + EPS` does.
        let (log_nb, d_mu_nb, _) = oracle(x, m, t);
        let sigmoid = |z: f64| (-softplus(-z)).exp();
        let (lp, weight, d_logit) = if x == 0.0 {
            let a = log_nb - l;
            (
                softplus(a) - softplus(-l),
                sigmoid(a),
                sigmoid(-l) - sigmoid(a),
            )
        } else {
            (log_nb - softplus(l), 1.0, -sigmoid(l))
        };
        let errors = [
            rel_err(-nll[i], lp, 1e-6),
            rel_err(-g_mu[i], d_mu_nb * weight, 1e-6 * (x / (m + EPS) + 1.0)),
            rel_err(-g_logits[i], d_logit, 1e-6),
        ];
        sweep.record(errors, || {
            format!(
                "x={x} mu={m} theta={t} logit={l}: nll {:e} vs {:e}; dmu {:e} vs {:e}; \
                 dlogit {:e} vs {:e}",
                nll[i],
                -lp,
                g_mu[i],
                -d_mu_nb * weight,
                g_logits[i],
                -d_logit
            )
        });
    }
    sweep.finish(&format!(
        "ZINB f32 on {} (fast_path {fast_path}) vs f64",
        std::any::type_name::<B>()
    ));
}

#[test]
fn nb_sweep_host_kernel() {
    nb_sweep::<common::AdF32>(true);
}

#[test]
fn zinb_sweep_host_kernel() {
    zinb_sweep::<common::AdF32>(true);
}

fn nb_sweep_generic_path<B: AutodiffBackend>() {
    nb_sweep::<B>(false);
}

fn zinb_sweep_generic_path<B: AutodiffBackend>() {
    zinb_sweep::<B>(false);
}

backend_tests!(nb_sweep_generic_path, zinb_sweep_generic_path);
