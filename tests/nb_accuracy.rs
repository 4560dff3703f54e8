//! Float32 accuracy of the NB and ZINB likelihoods against an independent float64 oracle
//! (statrs' `ln_gamma`/`digamma` in the textbook formula), over the documented range
//! `theta`, counts up to 1e5, including the large-`theta` regime where the textbook
//! formula cancels catastrophically in float32.

use burn::backend::{Autodiff, NdArray};
use burn::tensor::{Tensor, TensorData};
use diffbio_burn::losses::negative_binomial::NegativeBinomialLossConfig;
use statrs::function::gamma::{digamma, ln_gamma};

type A32 = Autodiff<NdArray<f32>>;

const EPS: f64 = 1e-8;

/// Textbook NB log-probability in float64, with `mu + eps` as DiffBio.
fn oracle(x: f64, mu: f64, theta: f64) -> (f64, f64, f64) {
    let m = mu + EPS;
    let lp =
        ln_gamma(x + theta) - ln_gamma(theta) - ln_gamma(x + 1.0) - theta * (m / theta).ln_1p()
            + x * (m.ln() - (theta + m).ln());
    let d_mu = theta * (x - m) / (m * (theta + m));
    let d_theta = digamma(x + theta) - digamma(theta) - (m / theta).ln_1p() + (m - x) / (theta + m);
    (lp, d_mu, d_theta)
}

fn grid() -> Vec<(f32, f32, f32)> {
    let thetas = [1e-4f32, 1e-2, 0.5, 3.0, 7.99, 8.0, 20.0, 1e3, 1e4, 1e5];
    let counts = [0f32, 1.0, 2.0, 7.0, 50.0, 1e3, 1e4, 1e5];
    let mus = [1e-3f32, 0.5, 5.0, 100.0, 1e4, 1e5];
    let mut out = Vec::new();
    for &t in &thetas {
        for &x in &counts {
            for &m in &mus {
                out.push((x, m, t));
            }
        }
    }
    // Near-Poisson: large theta with counts close to the mean, the hardest cancellation.
    for &t in &[1e4f32, 1e5] {
        for &m in &[10.0f32, 1e3, 1e5] {
            for k in [-3.0f32, -1.0, 0.0, 1.0, 3.0] {
                out.push(((m + k * m.sqrt()).round().max(0.0), m, t));
            }
        }
    }
    out
}

#[test]
fn nb_f32_matches_float64_truth_up_to_1e5_host_kernel() {
    nb_f32_matches_float64_truth(true);
}

#[test]
fn nb_f32_matches_float64_truth_up_to_1e5_generic_path() {
    nb_f32_matches_float64_truth(false);
}

fn nb_f32_matches_float64_truth(fast_path: bool) {
    let cases = grid();
    let n = cases.len();
    let device = Default::default();
    let col = |f: fn(&(f32, f32, f32)) -> f32| {
        let v: Vec<f32> = cases.iter().map(f).collect();
        Tensor::<A32, 2>::from_data(TensorData::new(v, [1, n]), &device)
    };
    let counts = col(|c| c.0);
    let mu = col(|c| c.1).require_grad();
    let theta = col(|c| c.2).require_grad();
    let loss = NegativeBinomialLossConfig::new()
        .with_fast_path(fast_path)
        .init();
    let nll = loss.forward_no_reduction(counts, mu.clone(), theta.clone());
    let grads = nll.clone().sum().backward();
    let nll: Vec<f32> = nll.into_data().to_vec().unwrap();
    let g_mu: Vec<f32> = mu.grad(&grads).unwrap().into_data().to_vec().unwrap();
    let g_theta: Vec<f32> = theta.grad(&grads).unwrap().into_data().to_vec().unwrap();

    let (mut worst_value, mut worst_mu, mut worst_theta) = (0f64, 0f64, 0f64);
    let mut failures = Vec::new();
    for (i, &(x, m, t)) in cases.iter().enumerate() {
        let (lp, d_mu, d_theta) = oracle(x as f64, m as f64, t as f64);
        let value_err = (nll[i] as f64 + lp).abs() / lp.abs().max(1e-3);
        // Gradients: relative to their own size, with a floor of 1e-6 (about 8 float32 ulps)
        // times the size of the terms that cancel in them: below that is input rounding
        // (e.g. `mu + 1e-8 == mu` in float32), not a defect of the formula.
        let (xf, mf, tf) = (x as f64, m as f64 + EPS, t as f64);
        let mu_scale = xf / mf + (tf + xf) / (tf + mf);
        let th_scale = (digamma(xf + tf) - digamma(tf)).abs()
            + (mf / tf).ln_1p()
            + (mf - xf).abs() / (tf + mf);
        let mu_err = (-g_mu[i] as f64 - d_mu).abs() / (d_mu.abs() + 1e-3 * mu_scale);
        let th_err = (-g_theta[i] as f64 - d_theta).abs() / (d_theta.abs() + 1e-3 * th_scale);
        worst_value = worst_value.max(value_err);
        worst_mu = worst_mu.max(mu_err);
        worst_theta = worst_theta.max(th_err);
        if !nll[i].is_finite()
            || !g_mu[i].is_finite()
            || !g_theta[i].is_finite()
            || value_err > 1e-4
            || mu_err > 1e-3
            || th_err > 1e-3
        {
            failures.push(format!(
                "x={x} mu={m} theta={t}: nll {} vs {} (rel {value_err:.1e}); dmu {} vs {} ({mu_err:.1e}); dtheta {} vs {} ({th_err:.1e})",
                nll[i], -lp, g_mu[i], -d_mu, g_theta[i], -d_theta
            ));
        }
    }
    println!(
        "NB f32 (fast_path {fast_path}) vs f64 over {n} cases: max rel err value {worst_value:.2e}, d/dmu {worst_mu:.2e}, d/dtheta {worst_theta:.2e}"
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
