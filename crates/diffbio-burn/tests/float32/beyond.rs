//! The likelihoods and distributions beyond the references, in float32 on every path and
//! backend:
//! - accuracy of the beta-binomial, NB-mixture and Dirichlet-multinomial losses against
//!   float64 oracles that cancel nothing (finite products of ratios for integer counts);
//! - sample moments of the NB and ZINB distributions against their formulas;
//! - clear panics on bad input.

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use diffbio_burn::Reduction;
use diffbio_burn::distributions::{NegativeBinomial, ZeroInflatedNegativeBinomial};
use diffbio_burn::losses::beta_binomial::BetaBinomialLossConfig;
use diffbio_burn::losses::dirichlet_multinomial::DirichletMultinomialLossConfig;
use diffbio_burn::losses::nb_mixture::NegativeBinomialMixtureLossConfig;
use statrs::function::gamma::ln_gamma;

use crate::common::{self, Sweep, rel_err, to_f64};
use crate::nb_accuracy::oracle as nb_oracle;

fn row<B: AutodiffBackend>(v: Vec<f32>) -> Tensor<B, 2> {
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [1, n]), &Default::default())
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

// ---------------------------------------------------------------------------------------------
// Beta-binomial
// ---------------------------------------------------------------------------------------------

/// `(log p, d/dα, d/dβ, gradient scale)` in float64 for integer `k <= n`, from
/// `p = C(n, k)·Π_{j<k} (α + j)/(α + β + j)·Π_{j<n-k} (β + j)/(α + β + k + j)`.
fn bb_oracle(k: f64, n: f64, a: f64, b: f64) -> (f64, f64, f64, f64) {
    let mut lp = ln_gamma(n + 1.0) - ln_gamma(k + 1.0) - ln_gamma(n - k + 1.0);
    let (mut da, mut db, mut dsum) = (0.0, 0.0, 0.0);
    for j in 0..k as u64 {
        let j = j as f64;
        lp += ((a + j) / (a + b + j)).ln();
        da += 1.0 / (a + j);
    }
    for j in 0..(n - k) as u64 {
        let j = j as f64;
        lp += ((b + j) / (a + b + k + j)).ln();
        db += 1.0 / (b + j);
    }
    for j in 0..n as u64 {
        dsum += 1.0 / (a + b + j as f64);
    }
    (lp, da - dsum, db - dsum, da + db + dsum)
}

fn bb_grid() -> Vec<[f64; 4]> {
    let params = [1e-3, 0.05, 0.7, 3.0, 8.0, 40.0, 1e3, 1e5, 1e6];
    let mut out = Vec::new();
    for &n in &[0.0f64, 1.0, 7.0, 60.0, 1000.0, 10_000.0] {
        for frac in [0.0f64, 0.02, 0.3, 0.5, 0.97, 1.0] {
            let k: f64 = (n * frac).round();
            for &a in &params {
                for &b in &params {
                    out.push([k, n, a, b]);
                }
            }
        }
    }
    out
}

fn beta_binomial_sweep<B: AutodiffBackend>(fast_path: bool) {
    let cases = bb_grid();
    let col = |i: usize| row::<B>(cases.iter().map(|c| c[i] as f32).collect());
    let (alpha, beta) = (col(2).require_grad(), col(3).require_grad());
    let loss = BetaBinomialLossConfig::new()
        .with_fast_path(fast_path)
        .init();
    let nll = loss.forward_no_reduction(col(0), col(1), alpha.clone(), beta.clone());
    let grads = nll.clone().sum().backward();
    let (nll, ga, gb) = (
        to_f64(nll),
        to_f64(alpha.grad(&grads).unwrap()),
        to_f64(beta.grad(&grads).unwrap()),
    );
    let mut sweep = Sweep::new(["value", "d/dalpha", "d/dbeta"], [1e-4, 1e-4, 1e-4]);
    for (i, c) in cases.iter().enumerate() {
        let [k, n, a, b] = c.map(|v| v as f32 as f64);
        let (lp, da, db, scale) = bb_oracle(k, n, a, b);
        // Values within 1e-4 relative (floor 1e-3 nats); gradients within 1e-4 relative or
        // 1e-6 of the size of the terms that cancel in them. The generic float32 path is
        // held to 1e-4 relative or 1e-6·(n + 1) nats absolute: its rising-factorial terms
        // grow like ln Γ(n) and cancel where the NLL is small (known and documented in
        // `BetaBinomialLoss`; the host kernel computes in f64 and meets 1e-4 everywhere).
        let floor = if fast_path { 1e-3 } else { 1e-2 * (n + 1.0) };
        let errors = [
            rel_err(-nll[i], lp, floor),
            rel_err(-ga[i], da, 1e-2 * scale + f64::MIN_POSITIVE),
            rel_err(-gb[i], db, 1e-2 * scale + f64::MIN_POSITIVE),
        ];
        sweep.record(errors, || {
            format!(
                "k={k} n={n} a={a} b={b}: nll {} vs {}; da {:e} vs {:e}; db {:e} vs {:e}",
                nll[i], -lp, ga[i], -da, gb[i], -db
            )
        });
    }
    sweep.finish(&format!(
        "BetaBinomial f32 on {} (fast_path {fast_path}) vs f64",
        std::any::type_name::<B>()
    ));
}

// ---------------------------------------------------------------------------------------------
// NB mixture
// ---------------------------------------------------------------------------------------------

fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

fn sigmoid(x: f64) -> f64 {
    (-softplus(-x)).exp()
}

fn nb_mixture_sweep<B: AutodiffBackend>(fast_path: bool) {
    let mut cases = Vec::new();
    for &x in &[0.0, 1.0, 12.0, 300.0, 5e3] {
        for &m1 in &[1e-3, 0.5, 10.0, 400.0] {
            for &fold in &[1.0, 3.0, 50.0] {
                for &t in &[0.05, 2.0, 60.0, 1e4, 1e7] {
                    for &l in &[-12.0, -1.0, 0.5, 9.0] {
                        cases.push([x, m1, m1 * fold, t, l]);
                    }
                }
            }
        }
    }
    let col = |i: usize| row::<B>(cases.iter().map(|c| c[i] as f32).collect());
    let (mu_1, mu_2, theta, logits) = (
        col(1).require_grad(),
        col(2).require_grad(),
        col(3).require_grad(),
        col(4).require_grad(),
    );
    let loss = NegativeBinomialMixtureLossConfig::new()
        .with_fast_path(fast_path)
        .init();
    let nll = loss.forward_no_reduction(
        col(0),
        mu_1.clone(),
        mu_2.clone(),
        theta.clone(),
        None,
        logits.clone(),
    );
    let grads = nll.clone().sum().backward();
    let nll = to_f64(nll);
    let g = [mu_1, mu_2, theta, logits].map(|t| to_f64(t.grad(&grads).unwrap()));
    let mut sweep = Sweep::new(["value", "d/dmu_1,2", "d/dtheta,logit"], [1e-4, 1e-4, 1e-4]);
    for (i, c) in cases.iter().enumerate() {
        let [x, m1, m2, t, l] = c.map(|v| v as f32 as f64);
        let (l1, dm1, dt1) = nb_oracle(x, m1, t);
        let (l2, dm2, dt2) = nb_oracle(x, m2, t);
        let (a, b) = (l1 - softplus(-l), l2 - softplus(l));
        let lp = a.max(b) + (-(a - b).abs()).exp().ln_1p();
        let r = sigmoid(a - b);
        let want = [
            r * dm1,
            (1.0 - r) * dm2,
            r * dt1 + (1.0 - r) * dt2,
            r - sigmoid(l),
        ];
        let mu_scale = |m: f64| x / (m + 1e-8) + 1.0;
        let theta_scale = |m: f64| x / t + (m / t).ln_1p() + (m - x).abs() / (t + m);
        let theta_scale = theta_scale(m1) + theta_scale(m2);
        let err = |k: usize, floor: f64| rel_err(-g[k][i], want[k], floor);
        let errors = [
            rel_err(-nll[i], lp, 1e-3),
            err(0, 1e-2 * mu_scale(m1)).max(err(1, 1e-2 * mu_scale(m2))),
            // d/dl = r - w: r = σ(a - b) carries the float32 rounding of a - b, terms of size
            // |a| + |b|.
            err(2, 1e-2 * theta_scale)
                .max(err(3, 1e-2 * (r + sigmoid(l)) * (1.0 + a.abs() + b.abs()))),
        ];
        sweep.record(errors, || {
            format!(
                "x={x} mu_1={m1} mu_2={m2} theta={t} l={l}: nll {} vs {}; grads {:?} vs {:?}",
                nll[i],
                -lp,
                [g[0][i], g[1][i], g[2][i], g[3][i]],
                want.map(|w| -w)
            )
        });
    }
    sweep.finish(&format!(
        "NB mixture f32 on {} (fast_path {fast_path}) vs f64",
        std::any::type_name::<B>()
    ));
}

// ---------------------------------------------------------------------------------------------
// Dirichlet-multinomial
// ---------------------------------------------------------------------------------------------

/// `(log p, d log p/d log α)` of one row in float64 from the finite products.
fn dm_oracle(x: &[f64], log_alpha: &[f64]) -> (f64, Vec<f64>) {
    let alpha: Vec<f64> = log_alpha.iter().map(|v| v.exp()).collect();
    let a_sum: f64 = alpha.iter().sum();
    let total: f64 = x.iter().sum();
    let mut lp = ln_gamma(total + 1.0) - x.iter().map(|v| ln_gamma(v + 1.0)).sum::<f64>();
    let mut d_sum = 0.0;
    for j in 0..total as u64 {
        lp -= (a_sum + j as f64).ln();
        d_sum += 1.0 / (a_sum + j as f64);
    }
    let grad = x
        .iter()
        .zip(&alpha)
        .map(|(&xl, &al)| {
            let mut d = 0.0;
            for j in 0..xl as u64 {
                lp += (al + j as f64).ln();
                d += 1.0 / (al + j as f64);
            }
            al * (d - d_sum)
        })
        .collect();
    (lp, grad)
}

fn dirichlet_multinomial_sweep<B: AutodiffBackend>() {
    let l = 6;
    let mut rows = Vec::new();
    for &level in &[-6.0, -1.0, 1.0, 4.0, 8.0, 12.0] {
        for &depth in &[0.0f64, 3.0, 40.0, 800.0] {
            let la: Vec<f64> = (0..l).map(|j| level + 0.4 * j as f64 - 1.0).collect();
            let x: Vec<f64> = (0..l)
                .map(|j| (depth * [0.05, 0.3, 0.0, 0.15, 0.4, 0.1][j]).round())
                .collect();
            rows.push((x, la));
        }
    }
    let n = rows.len();
    let flat = |second: bool| -> Tensor<B, 2> {
        let v: Vec<f32> = rows
            .iter()
            .flat_map(|r| f32s(if second { &r.1 } else { &r.0 }))
            .collect();
        Tensor::from_data(TensorData::new(v, [n, l]), &Default::default())
    };
    let counts = flat(false);
    let log_alpha = flat(true).require_grad();
    let loss = DirichletMultinomialLossConfig::new().init();
    let nll: Tensor<B, 1> = loss.forward_no_reduction(log_alpha.clone(), counts);
    let grads = nll.clone().sum().backward();
    let (nll, g) = (to_f64(nll), to_f64(log_alpha.grad(&grads).unwrap()));
    let mut sweep = Sweep::new(["value", "d/dlog_alpha", "-"], [1e-4, 1e-4, 0.0]);
    for (i, (x, la)) in rows.iter().enumerate() {
        let la32: Vec<f64> = la.iter().map(|v| *v as f32 as f64).collect();
        let (lp, want) = dm_oracle(x, &la32);
        let total: f64 = x.iter().sum();
        let grad_err = (0..l)
            .map(|j| {
                rel_err(
                    -g[i * l + j],
                    want[j],
                    1e-2 * (x[j] + total / l as f64 + 1.0),
                )
            })
            .fold(0.0, f64::max);
        sweep.record([rel_err(-nll[i], lp, 1e-3), grad_err, 0.0], || {
            format!("x={x:?} log_alpha={la:?}: nll {} vs {}", nll[i], -lp)
        });
    }
    sweep.finish(&format!(
        "DirichletMultinomial f32 on {} vs f64",
        std::any::type_name::<B>()
    ));
}

#[test]
fn beta_binomial_sweep_host_kernel() {
    beta_binomial_sweep::<common::AdF32>(true);
}

#[test]
fn nb_mixture_sweep_host_kernel() {
    nb_mixture_sweep::<common::AdF32>(true);
}

fn beta_binomial_sweep_generic_path<B: AutodiffBackend>() {
    beta_binomial_sweep::<B>(false);
}

fn nb_mixture_sweep_generic_path<B: AutodiffBackend>() {
    nb_mixture_sweep::<B>(false);
}

backend_tests!(
    beta_binomial_sweep_generic_path,
    nb_mixture_sweep_generic_path,
    dirichlet_multinomial_sweep
);

// ---------------------------------------------------------------------------------------------
// Sampling moments
// ---------------------------------------------------------------------------------------------

/// Sample mean, variance, the standard errors of both (the variance's from the sample's
/// fourth central moment) and the fraction of zeros.
fn moments(x: &[f64]) -> (f64, f64, f64, f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let m2 = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let m4 = x.iter().map(|v| (v - mean).powi(4)).sum::<f64>() / n;
    let var = m2 * n / (n - 1.0);
    let zeros = x.iter().filter(|v| **v == 0.0).count() as f64 / n;
    (
        mean,
        var,
        (var / n).sqrt(),
        ((m4 - m2 * m2) / n).sqrt(),
        zeros,
    )
}

/// Draws `N` counts per parameter set and checks the sample mean and variance against the
/// distribution's `mean()` and `variance()` within 5 standard errors (a false alarm has
/// probability ~6e-7 per check; the seeds are fixed, so the test is deterministic), and the
/// zero fraction against its formula within 5 binomial standard errors.
fn sample_moments<B: AutodiffBackend>() {
    const N: usize = 40_000;
    let device = Default::default();
    let full = |v: f64| Tensor::<B, 1>::full([N], v, &device);
    let cases = [
        (0.3, 0.5, -3.0),
        (4.0, 2.0, -1.0),
        (25.0, 0.3, 0.0),
        (200.0, 50.0, 1.5),
        (5.0, 1e6, -0.5),
    ];
    for (seed, &(mu, theta, logit)) in cases.iter().enumerate() {
        let nb = NegativeBinomial::new(full(mu), full(theta));
        let zinb = ZeroInflatedNegativeBinomial::new(full(mu), full(theta), full(logit));
        let p0_nb = (theta / (theta + mu)).powf(theta);
        let pi = sigmoid(logit);
        for (name, x, mean, var, p0) in [
            (
                "NB",
                nb.sample(seed as u64),
                nb.mean(),
                nb.variance(),
                p0_nb,
            ),
            (
                "ZINB",
                zinb.sample(100 + seed as u64),
                zinb.mean(),
                zinb.variance(),
                pi + (1.0 - pi) * p0_nb,
            ),
        ] {
            let x = to_f64(x);
            assert!(
                x.iter().all(|v| *v >= 0.0 && v.fract() == 0.0),
                "{name}: counts"
            );
            let (m, v, se_m, se_v, zeros) = moments(&x);
            let (mean, var) = (to_f64(mean)[0], to_f64(var)[0]);
            let se_zero = (p0 * (1.0 - p0) / N as f64).sqrt();
            assert!(
                (m - mean).abs() <= 5.0 * se_m,
                "{name} mu={mu} theta={theta}: sample mean {m} vs {mean} (se {se_m})"
            );
            assert!(
                (v - var).abs() <= 5.0 * se_v,
                "{name} mu={mu} theta={theta}: sample variance {v} vs {var} (se {se_v})"
            );
            assert!(
                (zeros - p0).abs() <= 5.0 * se_zero + 1e-12,
                "{name} mu={mu} theta={theta}: zero fraction {zeros} vs {p0}"
            );
        }
    }
}

/// The formulas and the conversions to and from PyTorch's `(total_count, logits)`.
fn moments_and_conversions<B: AutodiffBackend>() {
    let device = Default::default();
    let t = |v: [f32; 3]| Tensor::<B, 1>::from_floats(v, &device);
    let nb = NegativeBinomial::new(t([0.5, 4.0, 300.0]), t([2.0, 0.25, 1e4]));
    let close = |got: Tensor<B, 1>, want: [f64; 3]| {
        for (g, w) in to_f64(got).iter().zip(want) {
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{g} vs {w}");
        }
    };
    close(nb.mean(), [0.5, 4.0, 300.0]);
    close(nb.variance(), [0.625, 68.0, 309.0]);
    close(nb.logits(), [0.25f64.ln(), 16f64.ln(), 0.03f64.ln()]);
    let back = NegativeBinomial::from_total_count_logits(nb.total_count(), nb.logits());
    close(back.mu, [0.5, 4.0, 300.0]);
    let zinb =
        ZeroInflatedNegativeBinomial::new(nb.mu.clone(), nb.theta.clone(), t([0.0, -2.0, 3.0]));
    let pi = [0.5, sigmoid(-2.0), sigmoid(3.0)];
    let (m, th) = ([0.5, 4.0, 300.0], [2.0, 0.25, 1e4]);
    close(zinb.mean(), std::array::from_fn(|i| (1.0 - pi[i]) * m[i]));
    close(
        zinb.variance(),
        std::array::from_fn(|i| (1.0 - pi[i]) * m[i] * (1.0 + m[i] / th[i] + pi[i] * m[i])),
    );
    // log_prob sums to 1 over the support (truncated far in the tail).
    let xs: Vec<f32> = (0..400).map(|k| k as f32).collect();
    let n = xs.len();
    let counts = Tensor::<B, 1>::from_data(TensorData::new(xs, [n]), &device);
    let total: f64 = to_f64(
        ZeroInflatedNegativeBinomial::new(
            Tensor::full([n], 4.0, &device),
            Tensor::full([n], 0.5, &device),
            Tensor::full([n], -1.0, &device),
        )
        .log_prob(counts)
        .exp(),
    )
    .iter()
    .sum();
    assert!(
        (total - 1.0).abs() < 1e-4,
        "ZINB probabilities sum to {total}"
    );
}

backend_tests!(sample_moments, moments_and_conversions);

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

fn t2<B: AutodiffBackend>(v: [f32; 2]) -> Tensor<B, 1> {
    Tensor::from_floats(v, &Default::default())
}

fn bb_counts_above_total<B: AutodiffBackend>() {
    BetaBinomialLossConfig::new().init().forward(
        t2::<B>([1.0, 5.0]),
        t2::<B>([2.0, 4.0]),
        t2::<B>([1.0, 1.0]),
        t2::<B>([1.0, 1.0]),
        Reduction::Sum,
    );
}

fn bb_mu_outside_unit_interval<B: AutodiffBackend>() {
    BetaBinomialLossConfig::new().init().forward_mean(
        t2::<B>([1.0, 2.0]),
        t2::<B>([2.0, 4.0]),
        t2::<B>([0.5, 1.0]),
        t2::<B>([1.0, 1.0]),
        Reduction::Sum,
    );
}

fn bb_alpha_shape<B: AutodiffBackend>() {
    BetaBinomialLossConfig::new().init().forward_no_reduction(
        t2::<B>([1.0, 2.0]),
        t2::<B>([2.0, 4.0]),
        Tensor::<B, 1>::from_floats([1.0], &Default::default()),
        t2::<B>([1.0, 1.0]),
    );
}

fn mixture_theta_2_not_positive<B: AutodiffBackend>() {
    let m = |v: [f32; 2]| Tensor::<B, 2>::from_floats([v], &Default::default());
    NegativeBinomialMixtureLossConfig::new().init().forward(
        m([1.0, 2.0]),
        m([1.0, 2.0]),
        m([5.0, 9.0]),
        t2::<B>([1.0, 1.0]),
        Some(t2::<B>([1.0, 0.0])),
        m([0.0, 0.0]),
        Reduction::Sum,
    );
}

fn dm_negative_counts<B: AutodiffBackend>() {
    let m = |v: [f32; 2]| Tensor::<B, 2>::from_floats([v], &Default::default());
    DirichletMultinomialLossConfig::new().init().forward(
        m([0.0, 1.0]),
        m([2.0, -1.0]),
        Reduction::Sum,
    );
}

fn dm_profile_precision_shape<B: AutodiffBackend>() {
    let m = |v: [f32; 2]| Tensor::<B, 2>::from_floats([v], &Default::default());
    DirichletMultinomialLossConfig::new()
        .init()
        .forward_profile(
            m([0.0, 1.0]),
            t2::<B>([1.0, 1.0]),
            m([2.0, 1.0]),
            Reduction::Sum,
        );
}

fn nb_sample_negative_mu<B: AutodiffBackend>() {
    NegativeBinomial::new(t2::<B>([1.0, -1.0]), t2::<B>([1.0, 1.0])).sample(0);
}

backend_tests!(
    #[should_panic(
        expected = "BetaBinomialLoss: `counts - total_counts` must be <= 0 (counts cannot exceed total_counts); found 1 at flat index 1"
    )]
    bb_counts_above_total,
    #[should_panic(
        expected = "BetaBinomialLoss: `mu` must be in the open interval (0, 1); found 1 at flat index 1"
    )]
    bb_mu_outside_unit_interval,
    #[should_panic(
        expected = "BetaBinomialLoss: shape of `counts` [2] does not match shape of `alpha` [1]"
    )]
    bb_alpha_shape,
    #[should_panic(
        expected = "NegativeBinomialMixtureLoss: `theta_2` must be finite and positive; found 0 at flat index 1"
    )]
    mixture_theta_2_not_positive,
    #[should_panic(
        expected = "DirichletMultinomialLoss: `counts` must be finite and non-negative; found -1 at flat index 1"
    )]
    dm_negative_counts,
    #[should_panic(
        expected = "DirichletMultinomialLoss: `log_precision` has shape [2], expected [1] (one per profile"
    )]
    dm_profile_precision_shape,
    #[should_panic(
        expected = "NegativeBinomial: `mu` must be finite and non-negative to sample; found -1"
    )]
    nb_sample_negative_mu,
);
