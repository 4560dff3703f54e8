//! Negative-binomial negative log-likelihood for overdispersed counts.
//!
//! # Parameterisation
//! `mu` is the mean and `theta` the *inverse dispersion* (the NB "size", scVI's `theta`,
//! DiffBio's `theta`), so `Var[x] = mu + mu² / theta`; the dispersion `alpha = 1 / theta`.
//! `theta → ∞` is the Poisson limit.
//!
//! # Why a rearranged formula
//! The textbook log-probability
//!
//! ```text
//! log NB(x; mu, theta) = lgamma(x + theta) - lgamma(theta) - lgamma(x + 1)
//!                        + theta·log(theta / (theta + mu)) + x·log(mu / (theta + mu))
//! ```
//!
//! adds terms of size `~(x + theta)·log(x + theta)` that cancel to a result of size
//! `~log(x)`: at `theta = 1e4` DiffBio's own float32 evaluation is off by 2e-3. Writing every
//! `lgamma` as Stirling's formula plus its remainder `s(z)` (Loader's `stirlerr`, small and
//! accurate) the large parts cancel *analytically*:
//!
//! ```text
//! log NB(x > 0) = -D - ½·log(2π·x·(x + theta) / theta) + s(x + theta) - s(theta) - s(x)
//! D = x·log[x(theta + mu) / (mu(x + theta))] - theta·log[(theta + x) / (theta + mu)]
//! log NB(0)     = -theta·log1p(mu / theta)
//! ```
//!
//! where each logarithm of a ratio near 1 is evaluated as `log1p(difference / denominator)`
//! with the difference formed exactly (`theta·(x - mu)` and `x - mu`), and `log1p` is the
//! crate's own ([`ln_1p`](crate::special::ln_1p)), not the backend's. Every term is then
//! bounded by the size of the result, and float32 stays within 1e-5 relative of the float64
//! truth, the derivatives within 1e-4, for `theta` up to 1e10, counts and `mu` up to 1e5 and
//! `mu` down to 1e-6, on every path and backend (see `tests/float32/nb_accuracy.rs`).
//!
//! The gradients are closed forms injected with [`with_grad`] (no taped composite):
//!
//! ```text
//! d/dmu    log NB = theta·(x - mu) / (mu·(theta + mu))
//! d/dtheta log NB = ψ(x + theta) - ψ(theta) - log1p(mu / theta) + (mu - x) / (theta + mu)
//! ```
//!
//! and for `theta >= 8` the `theta` derivative is rearranged the same way
//! (`log1p(r) - r + x / (2θ(θ + x)) + Δ(digamma remainder)`, `r = (x - mu)/(theta + mu)`),
//! which removes the cancellation of its four `O(x/theta)` terms.
//!
//! # One definition
//! [`log_prob`], [`d_mu`], [`d_theta`] and the floors ([`Floor`]) are written once, generic
//! over [`Real`](crate::real): the generic path evaluates them on tensors, the host kernel
//! ([`host::nb`](crate::host)) on `f64` for every element it does not handle by an exact
//! finite identity (small integer counts with `theta < 8`).

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};

use super::reduce;
use crate::Reduction;
use crate::dispatch::host_or;
use crate::real::{
    Real, SERIES_FROM, digamma_remainder, ln_1p_minus, polynomial, stirling_remainder,
};
use crate::special::{HALF_LN_2PI, constant, is_autodiff, with_grad};
use crate::validate;

const NAME: &str = "NegativeBinomialLoss";

/// Configuration for [`NegativeBinomialLoss`].
#[derive(Config, Debug)]
pub struct NegativeBinomialLossConfig {
    /// Numerical floor, used as DiffBio uses it: `mu` and `theta` are clamped at `eps`
    /// (their gradient is zero below it) and `mu + eps` replaces `mu` inside the logarithms.
    /// Matters only for `mu ≲ 1e-5`. Must be positive. Default `1e-8`.
    #[config(default = 1e-8)]
    pub eps: f64,
    /// Check the value domain of the inputs (finite counts `>= 0`, `mu >= 0`, `theta > 0`)
    /// and panic on the first violation. Costs one device read-back per input; switch it
    /// off in hot loops once the data are trusted. Default `true`.
    #[config(default = true)]
    pub validate: bool,
    /// Use the fused CPU kernel on backends that keep tensors in host memory (NdArray; see
    /// [`host`](crate::host)). `false` forces the generic tensor-op path, which every other
    /// backend takes; both agree to float32 rounding. Default `true`.
    #[config(default = true)]
    pub fast_path: bool,
}

impl NegativeBinomialLossConfig {
    /// Initialises a [`NegativeBinomialLoss`].
    ///
    /// # Panics
    /// If `eps` is not a positive finite number.
    pub fn init(&self) -> NegativeBinomialLoss {
        assert!(
            self.eps.is_finite() && self.eps > 0.0,
            "{NAME}: eps must be a positive finite number, got {}",
            self.eps
        );
        NegativeBinomialLoss {
            eps: self.eps,
            validate: self.validate,
            fast_path: self.fast_path,
        }
    }
}

/// Negative-binomial negative log-likelihood, DiffBio's `NegativeBinomialLoss`.
///
/// ```text
/// nll[b, g] = -log NB(counts[b, g]; mu[b, g], theta[g] or theta[b, g])
/// ```
///
/// See the [module documentation](self) for the parameterisation and the numerically
/// stable evaluation. `Reduction::Mean` equals DiffBio's value.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use diffbio_burn::Reduction;
/// use diffbio_burn::losses::negative_binomial::NegativeBinomialLossConfig;
///
/// let device = Default::default();
/// let counts = Tensor::<NdArray, 2>::from_floats([[0.0, 3.0], [5.0, 1.0]], &device);
/// let mu = Tensor::<NdArray, 2>::from_floats([[0.5, 2.0], [4.0, 1.5]], &device);
/// let theta = Tensor::<NdArray, 1>::from_floats([2.0, 10.0], &device); // per gene
/// let loss = NegativeBinomialLossConfig::new().init();
/// let nll = loss.forward(counts, mu, theta, Reduction::Mean);
/// assert!(nll.into_scalar() > 0.0);
/// ```
#[derive(Module, Clone, Debug)]
pub struct NegativeBinomialLoss {
    /// See [`NegativeBinomialLossConfig::eps`].
    pub eps: f64,
    /// See [`NegativeBinomialLossConfig::validate`].
    pub validate: bool,
    /// See [`NegativeBinomialLossConfig::fast_path`].
    pub fast_path: bool,
}

impl NegativeBinomialLoss {
    /// The reduced negative log-likelihood.
    ///
    /// `Reduction::Mean`/`Auto`: mean over all elements (DiffBio); `Sum`: sum;
    /// `BatchMean`: sum divided by the batch size `B` (NLL per cell).
    ///
    /// # Shapes
    /// - `counts`, `mu`: `[B, G]`
    /// - `theta`: `[G]` (per gene) or `[B, G]`
    /// - output: `[1]`
    ///
    /// # Panics
    /// See [`forward_no_reduction`](Self::forward_no_reduction).
    pub fn forward<B: Backend, const T: usize>(
        &self,
        counts: Tensor<B, 2>,
        mu: Tensor<B, 2>,
        theta: Tensor<B, T>,
        reduction: Reduction,
    ) -> Tensor<B, 1> {
        let theta = check_inputs(NAME, self.validate, &counts, &mu, theta);
        host_or!(
            B,
            self.fast_path,
            {
                let scale = super::reduction_scale(&counts.dims(), reduction);
                crate::host::nb::nll_reduced(counts, mu, theta, None, self.eps, Floor::Clamp, scale)
            },
            reduce(self.nll(counts, mu, theta), reduction)
        )
    }

    /// The element-wise negative log-likelihood.
    ///
    /// Gradients flow to `mu` and `theta` (closed forms); `counts` are data and get none.
    ///
    /// # Shapes
    /// - `counts`, `mu`: `[B, G]`
    /// - `theta`: `[G]` (per gene) or `[B, G]`
    /// - output: `[B, G]`
    ///
    /// # Panics
    /// - If the shapes disagree, or `theta` has rank other than 1 or 2.
    /// - With `validate` on: if a count is negative or not finite, `mu` is negative or not
    ///   finite, or `theta` is not positive and finite.
    pub fn forward_no_reduction<B: Backend, const T: usize>(
        &self,
        counts: Tensor<B, 2>,
        mu: Tensor<B, 2>,
        theta: Tensor<B, T>,
    ) -> Tensor<B, 2> {
        let theta = check_inputs(NAME, self.validate, &counts, &mu, theta);
        host_or!(
            B,
            self.fast_path,
            crate::host::nb::nll(counts, mu, theta, None, self.eps, Floor::Clamp),
            self.nll(counts, mu, theta)
        )
    }

    /// The generic path of [`forward_no_reduction`](Self::forward_no_reduction), inputs
    /// checked, `theta` as `[1 | B, G]`.
    fn nll<B: Backend>(
        &self,
        counts: Tensor<B, 2>,
        mu: Tensor<B, 2>,
        theta: Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        let floor = Floor::Clamp;
        let x = constant(&counts);
        let mu_c = floor.mu(constant(&mu), self.eps);
        let theta_c = floor.theta(constant(&theta), self.eps).expand(x.dims());
        let nll = log_prob(x.clone(), mu_c.clone(), theta_c.clone()).neg();
        if !is_autodiff(&mu) {
            return nll;
        }
        let d_mu =
            d_mu(x.clone(), mu_c.clone(), theta_c.clone()) * floor.live(&constant(&mu), self.eps);
        let d_theta = d_theta(x, mu_c, theta_c) * floor.live(&constant(&theta), self.eps);
        let nll = with_grad(nll, mu, d_mu.neg());
        with_grad(nll, theta, d_theta.neg())
    }
}

/// Shape checks (always) and value checks (when `validate`) shared by NB and ZINB; returns
/// `theta` as a `[1, G]` or `[B, G]` tensor that broadcasts against `counts`.
pub(crate) fn check_inputs<B: Backend, const T: usize>(
    name: &str,
    validate: bool,
    counts: &Tensor<B, 2>,
    mu: &Tensor<B, 2>,
    theta: Tensor<B, T>,
) -> Tensor<B, 2> {
    let dims = counts.dims();
    validate::same_shape(name, ("counts", &dims), ("mu", &mu.dims()));
    validate::same_dtype(name, ("mu", mu), ("counts", counts));
    validate::same_dtype(name, ("mu", mu), ("theta", &theta));
    let theta_dims = theta.dims();
    let theta = match theta_dims.as_slice() {
        [g] if *g == dims[1] => theta.reshape([1, dims[1]]),
        [b, g] if [*b, *g] == dims => theta.reshape(dims),
        _ => validate::shape_error(
            name,
            "theta",
            &theta_dims,
            &format!("[{}] (per gene) or {dims:?} to match `counts`", dims[1]),
        ),
    };
    if validate {
        validate::non_negative(name, "counts", counts);
        validate::non_negative(name, "mu", mu);
        validate::positive(name, "theta", &theta);
    }
    theta
}

/// How `mu` and `theta` are kept away from zero: NB clamps both at `eps` (DiffBio), ZINB
/// shifts `mu` by `eps` (scVI). Either way `mu + eps` enters the logarithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Floor {
    /// `mu ← max(mu, eps) + eps`, `theta ← max(theta, eps)`; no gradient below the floor.
    Clamp,
    /// `mu ← mu + eps`, `theta` as it is.
    Shift,
}

impl Floor {
    /// `mu` as it enters the formulas.
    #[inline(always)]
    pub(crate) fn mu<R: Real>(self, mu: R, eps: f64) -> R {
        match self {
            Self::Clamp => mu.clamp_min(eps) + eps,
            Self::Shift => mu + eps,
        }
    }

    /// `theta` as it enters the formulas.
    #[inline(always)]
    pub(crate) fn theta<R: Real>(self, theta: R, eps: f64) -> R {
        match self {
            Self::Clamp => theta.clamp_min(eps),
            Self::Shift => theta,
        }
    }

    /// 1 where a raw input still carries a gradient, 0 where the clamp holds it at `eps`.
    #[inline(always)]
    pub(crate) fn live<R: Real>(self, raw: &R, eps: f64) -> R {
        match self {
            Self::Clamp => raw.full_like(1.0).mask_fill(raw.le(eps), 0.0),
            Self::Shift => raw.full_like(1.0),
        }
    }
}

/// `log(num / den)` for positive `num`, `den` whose difference `diff = num - den` is known
/// exactly: `ln_1p(diff / den)` near 1 (no cancellation), `ln num - ln den` elsewhere
/// (no loss of a small `num / den` when the ratio is far from 1).
#[inline(always)]
fn log_ratio<R: Real>(
    log_num: impl FnOnce() -> R,
    log_den: impl FnOnce() -> R,
    diff: R,
    den: R,
) -> R {
    let rel = diff / den;
    R::select(
        rel.clone().abs().lt(0.5),
        || rel.clone().ln_1p(),
        || log_num() - log_den(),
    )
}

/// `log NB(x; mu, theta)` for `x >= 0`, `mu > 0`, `theta > 0` (floored), in the
/// cancellation-free Stirling form of the [module docs](self).
#[inline(always)]
pub(crate) fn log_prob<R: Real>(x: R, mu: R, theta: R) -> R {
    let is_zero = x.le(0.0);
    R::select(
        is_zero.clone(),
        || (theta.clone() * (mu.clone() / theta.clone()).ln_1p()).neg(),
        || {
            // (x clamped away from 0 where the zero branch is selected, for tensors.)
            let x = x.clone().mask_fill(is_zero.clone(), 1.0);
            let half_log_det =
                (x.clone().ln() + (x.clone() / theta.clone()).ln_1p()) * 0.5 + HALF_LN_2PI;
            let stirling = stirling_remainder(theta.clone() + x.clone())
                - stirling_remainder(theta.clone())
                - stirling_remainder(x.clone());
            deviance(x, mu.clone(), theta.clone()).neg() - half_log_det + stirling
        },
    )
}

/// `D = x·ln[x(θ+μ)/(μ(x+θ))] - θ·ln[(θ+x)/(θ+μ)]` for `x > 0` (module docs), in one of two
/// cancellation-free forms. With `r = (x - μ)/(θ + μ)` and `L2 = ln(1 + r)`:
///
/// ```text
/// |r| >= 0.1:  D = x·L1 - θ·L2                     (each log ratio by `log_ratio`)
/// |r| <  0.1:  D = bd0(x, μ) - (x - μ)·r - (x + θ)·[ln_1p(r) - r]
/// ```
///
/// The second (exact algebra, `L1 = ln(x/μ) - L2`) keeps float32 accurate near the Poisson
/// limit (`θ ≫ x, μ`), where `x·L1` and `θ·L2` are both about `x - μ` and cancel; `bd0` is
/// Loader's `x·ln(x/μ) - (x - μ)`, a series where `x ≈ μ`.
#[inline(always)]
fn deviance<R: Real>(x: R, mu: R, theta: R) -> R {
    let x_minus_mu = x.clone() - mu.clone();
    let theta_plus_mu = theta.clone() + mu.clone();
    let r = x_minus_mu.clone() / theta_plus_mu.clone();
    R::select(
        r.clone().abs().lt(0.1),
        || {
            let r = r.clone().clamp_min(-0.1).clamp_max(0.1);
            bd0(x.clone(), mu.clone())
                - x_minus_mu.clone() * r.clone()
                - (x.clone() + theta.clone()) * ln_1p_minus(r)
        },
        || {
            let theta_plus_x = theta.clone() + x.clone();
            let log_theta_plus_x = theta_plus_x.clone().ln();
            let log_theta_plus_mu = theta_plus_mu.clone().ln();
            // L1 = log[x(θ+μ) / (μ(x+θ))], num - den = θ(x - μ).
            let l1 = log_ratio(
                || x.clone().ln() + log_theta_plus_mu.clone(),
                || mu.clone().ln() + log_theta_plus_x.clone(),
                theta.clone() * x_minus_mu.clone(),
                mu.clone() * theta_plus_x,
            );
            // L2 = log[(θ+x) / (θ+μ)], num - den = x - μ.
            let l2 = log_ratio(
                || log_theta_plus_x.clone(),
                || log_theta_plus_mu.clone(),
                x_minus_mu.clone(),
                theta_plus_mu.clone(),
            );
            x.clone() * l1 - theta.clone() * l2
        },
    )
}

/// `(-1)^j / ((j + 2)(j + 1))` for `j = 0..16`: `h(t)/t²` with `h(t) = (1 + t)·ln(1 + t) - t`.
pub(crate) const BD0_SERIES: [f64; 16] = {
    let mut c = [0.0; 16];
    let mut j = 0;
    while j < 16 {
        let v = 1.0 / ((j + 2) * (j + 1)) as f64;
        c[j] = if j % 2 == 0 { v } else { -v };
        j += 1;
    }
    c
};

/// Loader's `bd0(x, μ) = x·ln(x/μ) - (x - μ) = μ·h((x - μ)/μ)`, `x, μ > 0`: the series of
/// `h` for `|x/μ - 1| < 0.1` (to `t⁹` single, `t¹⁷` double), the difference elsewhere.
#[inline(always)]
pub(crate) fn bd0<R: Real>(x: R, mu: R) -> R {
    let x_minus_mu = x.clone() - mu.clone();
    let t = x_minus_mu.clone() / mu.clone();
    let terms = if t.is_double() { 16 } else { 8 };
    R::select(
        t.clone().abs().lt(0.1),
        || {
            let t = t.clone().clamp_min(-0.1).clamp_max(0.1);
            mu.clone() * t.clone().square() * polynomial(t, &BD0_SERIES[..terms])
        },
        || {
            let log_x_over_mu = log_ratio(
                || x.clone().ln(),
                || mu.clone().ln(),
                x_minus_mu.clone(),
                mu.clone(),
            );
            x.clone() * log_x_over_mu - x_minus_mu.clone()
        },
    )
}

/// `d log NB / d mu = theta·(x - mu) / (mu·(theta + mu))`.
#[inline(always)]
pub(crate) fn d_mu<R: Real>(x: R, mu: R, theta: R) -> R {
    theta.clone() * (x - mu.clone()) / (mu.clone() * (theta + mu))
}

/// `d log NB / d theta` without cancellation: writing `r = (x - mu)/(theta + mu)`,
///
/// ```text
/// d/dθ = [ψ(x + θ) - ψ(θ) - ln_1p(x/θ)] + [ln_1p(r) - r]
/// ```
///
/// (the textbook `ψ(x+θ) - ψ(θ) - ln_1p(μ/θ) + (μ - x)/(θ + μ)` regrouped). The second
/// bracket is [`ln_1p_minus`], exact for small `r`; the first is 0 at `x = 0`, and for
/// `θ >= 8` it is `x/(2θ(θ + x)) + c(θ + x) - c(θ)` with `c` the [`digamma_remainder`], so
/// none of the four `O(x/θ)` terms of the textbook form is ever formed.
#[inline(always)]
pub(crate) fn d_theta<R: Real>(x: R, mu: R, theta: R) -> R {
    digamma_gap(x.clone(), theta.clone()) + ln_1p_minus_ratio(x, mu, theta)
}

/// `ln_1p(r) - r` with `r = (x - mu)/(theta + mu)` (see [`d_theta`]): the series for small
/// `r`; elsewhere `ln(1 + r)` as the log of the ratio `(θ + x)/(θ + μ)`, which stays accurate
/// where `1 + r` would cancel (`θ ≪ μ`, `x = 0`).
#[inline(always)]
pub(crate) fn ln_1p_minus_ratio<R: Real>(x: R, mu: R, theta: R) -> R {
    let x_minus_mu = x.clone() - mu.clone();
    let theta_plus_mu = theta.clone() + mu;
    let r = x_minus_mu.clone() / theta_plus_mu.clone();
    R::select(
        r.clone().abs().lt(0.1),
        || ln_1p_minus(r.clone()),
        || {
            log_ratio(
                || (theta.clone() + x.clone()).ln(),
                || theta_plus_mu.clone().ln(),
                x_minus_mu.clone(),
                theta_plus_mu.clone(),
            ) - r.clone()
        },
    )
}

/// `ψ(x + θ) - ψ(θ) - ln_1p(x/θ)` (see [`d_theta`]), a sum of non-negative terms.
///
/// For `θ >= 8`: `x/(2θ(θ + x)) + c(θ + x) - c(θ)` with `c` the [`digamma_remainder`].
/// Below, the recurrence `ψ(z + 1) = ψ(z) + 1/z` moves `θ` up by 8 one step at a time; with
/// `θₖ = θ + k` and `vₖ = x/(θₖ(θₖ + 1 + x))` each step adds
///
/// ```text
/// gap(x, θₖ) - gap(x, θₖ + 1) = vₖ/(θₖ + x) - [ln_1p(vₖ) - vₖ]  >= 0,
/// ```
///
/// so the gap, about `x/(2θ²)` for small `x`, is never the difference of two digammas (of
/// size `ψ(θ)`), which costs float32 four digits at `x = 1, θ ≈ 8`.
#[inline(always)]
pub(crate) fn digamma_gap<R: Real>(x: R, theta: R) -> R {
    R::select(
        theta.ge(SERIES_FROM),
        || digamma_gap_series(x.clone(), theta.clone().clamp_min(SERIES_FROM)),
        || {
            let theta = theta.clone().clamp_max(SERIES_FROM);
            let start = digamma_gap_series(x.clone(), theta.clone() + SERIES_FROM);
            (0..SERIES_FROM as u32).fold(start, |gap, k| {
                let theta_k = theta.clone() + f64::from(k);
                let theta_k_plus_x = theta_k.clone() + x.clone();
                let v = x.clone() / (theta_k * (theta_k_plus_x.clone() + 1.0));
                gap + v.clone() / theta_k_plus_x - ln_1p_minus(v)
            })
        },
    )
}

/// [`digamma_gap`] for `θ >= 8`: `x/(2θ(θ + x)) + c(θ + x) - c(θ)`.
#[inline(always)]
pub(crate) fn digamma_gap_series<R: Real>(x: R, theta: R) -> R {
    let theta_plus_x = theta.clone() + x.clone();
    (x / theta.clone()) / theta_plus_x.clone() * 0.5 + digamma_remainder(theta_plus_x)
        - digamma_remainder(theta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    // One float type per test process: Burn 0.21 keys the default dtype by device, so an
    // `NdArray<f32>` test would make the `NdArray<f64>` tests of `special` compute in f32.
    type B = NdArray<f64>;

    fn t2(v: [[f32; 2]; 2]) -> Tensor<B, 2> {
        Tensor::from_floats(v, &Default::default())
    }

    fn t1(v: [f32; 2]) -> Tensor<B, 1> {
        Tensor::from_floats(v, &Default::default())
    }

    const OK: [[f32; 2]; 2] = [[1.0, 2.0], [0.0, 4.0]];

    /// `digamma_gap` in f64 against statrs' digamma, whose difference is accurate to
    /// 1e-13 of the digammas' size (the gap itself can be far smaller).
    #[test]
    fn digamma_gap_matches_statrs_on_both_sides_of_the_series() {
        use statrs::function::gamma::digamma;
        for theta in [1e-6, 0.01, 0.5, 1.0, 3.0, 7.99, 8.0, 8.01, 20.0, 1e4] {
            for x in [0.0, 0.3, 1.0, 2.5, 7.0, 50.0, 1e4] {
                let got = digamma_gap(x, theta);
                let (a, b) = (digamma(x + theta), digamma(theta));
                let want = a - b - (x / theta).ln_1p();
                let tol = 1e-13 * (a.abs() + b.abs() + (x / theta).ln_1p());
                assert!(got >= 0.0, "gap({x}, {theta}) = {got} < 0");
                assert!(
                    (got - want).abs() <= tol,
                    "gap({x}, {theta}): {got} vs {want}"
                );
            }
        }
        // The float32 case it was written for: x = 1 just below the series, where the gap
        // is 1/θ - ln_1p(1/θ) and the two digammas are 16x larger.
        let theta = 7.99_f64;
        let want = 1.0 / theta - (1.0 / theta).ln_1p();
        assert!((digamma_gap(1.0, theta) - want).abs() <= 1e-16);
    }

    #[test]
    #[should_panic(expected = "NegativeBinomialLoss: eps must be a positive finite number, got 0")]
    fn zero_eps_is_rejected_at_init() {
        NegativeBinomialLossConfig::new().with_eps(0.0).init();
    }

    #[test]
    fn full_theta_equals_broadcast_per_gene_theta() {
        let loss = NegativeBinomialLossConfig::new().init();
        let per_gene = loss.forward_no_reduction(t2(OK), t2(OK), t1([0.5, 3.0]));
        let full = loss.forward_no_reduction(t2(OK), t2(OK), t2([[0.5, 3.0], [0.5, 3.0]]));
        per_gene.into_data().assert_eq(&full.into_data(), true);
    }

    #[test]
    fn reductions_relate_as_documented() {
        let loss = NegativeBinomialLossConfig::new().init();
        let run = |r| {
            loss.forward(t2(OK), t2(OK), t1([0.5, 3.0]), r)
                .into_scalar()
        };
        let (sum, mean, batch_mean) = (
            run(Reduction::Sum),
            run(Reduction::Mean),
            run(Reduction::BatchMean),
        );
        assert!((sum / 4.0 - mean).abs() < 1e-6 && (sum / 2.0 - batch_mean).abs() < 1e-6);
    }
}
