//! Beta-binomial negative log-likelihood, for overdispersed proportions: methylated reads
//! out of covered reads (methylVI), allele counts out of total counts.
//!
//! # Parameterisations
//! `counts ~ Binomial(total_counts, p)` with `p ~ Beta(alpha, beta)`:
//!
//! ```text
//! log p(k | n, α, β) = ln C(n, k) + ln B(k + α, n - k + β) - ln B(α, β)
//! ```
//!
//! or, with the mean `mu = α/(α + β)` and the concentration `κ = α + β`
//! ([`BetaBinomialLoss::forward_mean`]): `α = mu·κ`, `β = (1 - mu)·κ`, so
//! `Var[k] = n·mu(1 - mu)·(n + κ)/(1 + κ)`; `κ → ∞` is the binomial limit.
//!
//! # Why a rearranged formula
//! The textbook sum of six `lgamma`s adds terms of size `n·ln n` and `n·ln κ` that cancel to a
//! result of size `ln n` near the binomial limit: at `n = 1000`, `κ = 1e5` float32 keeps
//! about two digits. Instead the likelihood is written as the binomial's, by Loader's
//! saddle-point form, times a ratio of rising factorials that tends to 1:
//!
//! ```text
//! log p = log Binomial(k; n, α/(α + β)) + T(α, k) + T(β, n - k) - T(α + β, n)
//! log Binomial(k; n, p) = -bd0(k, n·p) - bd0(n - k, n·q) - ½·ln(2π·k(n - k)/n)
//!                         + s(n) - s(k) - s(n - k)                    (0 < k < n)
//! ```
//!
//! with `T(a, m) = ln Γ(a + m) - ln Γ(a) - m·ln a` ([`gamma_ratio`](super::gamma_ratio)),
//! `s` Stirling's remainder and `bd0` Loader's deviance term; `k = 0` and `k = n` are
//! `-n·ln(1 + α/β)` and `-n·ln(1 + β/α)`.
//!
//! Which form is used: the binomial one where `α, β >= 8` and `8(α + β) >= n` (its `T`
//! terms are small), the four gamma-ratio brackets of [`log_prob_small`] elsewhere (their
//! terms are about `(α + β)·ln n`).
//!
//! Float32 accuracy: the host kernel (NdArray) evaluates this in `f64` and is within 1e-4
//! relative of the float64 truth everywhere tested (`n` up to 1e4, `α`, `β` from 1e-3 to
//! 1e6). The generic tensor path, in the tensors' own float32, is within 1e-4 relative or
//! `1e-6·(n + 1)` nats absolute, whichever is larger: where `α + β` is comparable to `n` or
//! one parameter is small and the other large, both forms add terms larger than the NLL.
//! Its gradients are within 1e-4 relative (or 1e-6 of the terms that cancel in them)
//! everywhere tested (`tests/float32/beyond.rs`).
//!
//! The derivatives are closed forms (`G(a, m) = ψ(a + m) - ψ(a)`):
//!
//! ```text
//! d/dα log p = G(α, k) - G(α + β, n)        d/dβ log p = G(β, n - k) - G(α + β, n)
//! d/dmu log p = κ·[G(α, k) - G(β, n - k)]   d/dκ log p = mu·G(α, k) + (1 - mu)·G(β, n - k) - G(κ, n)
//! ```

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};

use super::gamma_ratio::{digamma_rise, ln_rising_excess};
use super::negative_binomial::bd0;
use super::reduce;
use crate::Reduction;
use crate::dispatch::host_or;
use crate::real::{Real, SERIES_FROM, stirling_remainder};
use crate::special::{HALF_LN_2PI, constant, is_autodiff, with_grad};
use crate::validate;

const NAME: &str = "BetaBinomialLoss";

/// Configuration for [`BetaBinomialLoss`].
#[derive(Config, Debug)]
pub struct BetaBinomialLossConfig {
    /// Check the value domain (finite counts `0 <= counts <= total_counts`, `alpha`, `beta`,
    /// `concentration` positive and finite, `mu` in `(0, 1)`) and panic on the first
    /// violation. One device read-back per input. Default `true`.
    #[config(default = true)]
    pub validate: bool,
    /// Use the fused CPU kernel on backends that keep tensors in host memory (NdArray; see
    /// [`host`](crate::host)). `false` forces the generic tensor-op path, which every other
    /// backend takes; both agree to float32 rounding. Default `true`.
    #[config(default = true)]
    pub fast_path: bool,
}

impl BetaBinomialLossConfig {
    /// Initialises a [`BetaBinomialLoss`].
    pub fn init(&self) -> BetaBinomialLoss {
        BetaBinomialLoss {
            validate: self.validate,
            fast_path: self.fast_path,
        }
    }
}

/// Beta-binomial negative log-likelihood of `counts` successes out of `total_counts` trials.
///
/// ```text
/// nll[..] = -log BetaBinomial(counts[..]; total_counts[..], alpha[..], beta[..])
/// ```
///
/// See the [module documentation](self) for the two parameterisations and the stable
/// evaluation. `counts` and `total_counts` are data and get no gradient; they need not be
/// integers for the formula, but the likelihood is a probability only for integers.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use diffbio_burn::Reduction;
/// use diffbio_burn::losses::beta_binomial::BetaBinomialLossConfig;
///
/// let device = Default::default();
/// let counts = Tensor::<NdArray, 1>::from_floats([1.0], &device);
/// let total = Tensor::<NdArray, 1>::from_floats([2.0], &device);
/// let one = Tensor::<NdArray, 1>::from_floats([1.0], &device);
/// // alpha = beta = 1: uniform over 0..=n, so -log p = ln 3.
/// let nll = BetaBinomialLossConfig::new().init()
///     .forward(counts, total, one.clone(), one, Reduction::Sum);
/// assert!((nll.into_scalar() - 3f32.ln()).abs() < 1e-6);
/// ```
#[derive(Module, Clone, Debug)]
pub struct BetaBinomialLoss {
    /// See [`BetaBinomialLossConfig::validate`].
    pub validate: bool,
    /// See [`BetaBinomialLossConfig::fast_path`].
    pub fast_path: bool,
}

impl BetaBinomialLoss {
    /// The reduced NLL in the `(alpha, beta)` parameterisation: `Mean`/`Auto` over all
    /// elements, `Sum`, `BatchMean` (sum divided by the size of the first dimension).
    ///
    /// # Shapes
    /// - `counts`, `total_counts`, `alpha`, `beta`: `[...]`, all the same
    /// - output: `[1]`
    ///
    /// # Panics
    /// See [`forward_no_reduction`](Self::forward_no_reduction).
    pub fn forward<B: Backend, const D: usize>(
        &self,
        counts: Tensor<B, D>,
        total_counts: Tensor<B, D>,
        alpha: Tensor<B, D>,
        beta: Tensor<B, D>,
        reduction: Reduction,
    ) -> Tensor<B, 1> {
        let inputs = [counts, total_counts, alpha, beta];
        self.reduced(Parameters::AlphaBeta, inputs, reduction)
    }

    /// The element-wise NLL in the `(alpha, beta)` parameterisation. Gradients flow to
    /// `alpha` and `beta` (closed forms).
    ///
    /// # Shapes
    /// - `counts`, `total_counts`, `alpha`, `beta`: `[...]`, all the same
    /// - output: the same shape
    ///
    /// # Panics
    /// - If the shapes or float dtypes differ.
    /// - With `validate` on: if a count is negative, above its total, or not finite, or
    ///   `alpha` or `beta` is not positive and finite.
    pub fn forward_no_reduction<B: Backend, const D: usize>(
        &self,
        counts: Tensor<B, D>,
        total_counts: Tensor<B, D>,
        alpha: Tensor<B, D>,
        beta: Tensor<B, D>,
    ) -> Tensor<B, D> {
        let inputs = [counts, total_counts, alpha, beta];
        self.elementwise(Parameters::AlphaBeta, inputs)
    }

    /// The reduced NLL in the `(mu, concentration)` parameterisation, `alpha = mu·κ`,
    /// `beta = (1 - mu)·κ` (reductions as [`forward`](Self::forward)).
    ///
    /// # Shapes
    /// - `counts`, `total_counts`, `mu`, `concentration`: `[...]`, all the same
    /// - output: `[1]`
    ///
    /// # Panics
    /// See [`forward_mean_no_reduction`](Self::forward_mean_no_reduction).
    pub fn forward_mean<B: Backend, const D: usize>(
        &self,
        counts: Tensor<B, D>,
        total_counts: Tensor<B, D>,
        mu: Tensor<B, D>,
        concentration: Tensor<B, D>,
        reduction: Reduction,
    ) -> Tensor<B, 1> {
        let inputs = [counts, total_counts, mu, concentration];
        self.reduced(Parameters::Mean, inputs, reduction)
    }

    /// The element-wise NLL in the `(mu, concentration)` parameterisation. Gradients flow to
    /// `mu` and `concentration` (closed forms).
    ///
    /// # Shapes
    /// - `counts`, `total_counts`, `mu`, `concentration`: `[...]`, all the same
    /// - output: the same shape
    ///
    /// # Panics
    /// - If the shapes or float dtypes differ.
    /// - With `validate` on: if a count is negative, above its total, or not finite, `mu` is
    ///   not in the open interval `(0, 1)`, or `concentration` is not positive and finite.
    pub fn forward_mean_no_reduction<B: Backend, const D: usize>(
        &self,
        counts: Tensor<B, D>,
        total_counts: Tensor<B, D>,
        mu: Tensor<B, D>,
        concentration: Tensor<B, D>,
    ) -> Tensor<B, D> {
        let inputs = [counts, total_counts, mu, concentration];
        self.elementwise(Parameters::Mean, inputs)
    }

    /// The reduced NLL of `[counts, total_counts, parameter, parameter]`.
    fn reduced<B: Backend, const D: usize>(
        &self,
        params: Parameters,
        inputs: [Tensor<B, D>; 4],
        reduction: Reduction,
    ) -> Tensor<B, 1> {
        self.check(params, &inputs);
        let scale = super::reduction_scale(&inputs[0].dims(), reduction.clone());
        host_or!(
            B,
            self.fast_path,
            host(params, inputs, Some(scale)).total(),
            reduce(generic(params, inputs), reduction)
        )
    }

    /// The element-wise NLL of `[counts, total_counts, parameter, parameter]`.
    fn elementwise<B: Backend, const D: usize>(
        &self,
        params: Parameters,
        inputs: [Tensor<B, D>; 4],
    ) -> Tensor<B, D> {
        self.check(params, &inputs);
        host_or!(
            B,
            self.fast_path,
            host(params, inputs, None).elementwise(),
            generic(params, inputs)
        )
    }

    /// Shape and dtype checks (always); with `validate`, the data (finite,
    /// `0 <= counts <= total_counts`) and the parameters' domains.
    fn check<B: Backend, const D: usize>(&self, params: Parameters, inputs: &[Tensor<B, D>; 4]) {
        let [counts, total_counts, first, second] = inputs;
        let [first_name, second_name] = params.names();
        let dims = counts.dims();
        for (name, t) in [
            ("total_counts", total_counts),
            (first_name, first),
            (second_name, second),
        ] {
            validate::same_shape(NAME, ("counts", &dims), (name, &t.dims()));
            validate::same_dtype(NAME, ("counts", counts), (name, t));
        }
        if !self.validate {
            return;
        }
        validate::non_negative(NAME, "counts", counts);
        validate::non_negative(NAME, "total_counts", total_counts);
        let excess = counts.clone() - total_counts.clone();
        validate::values(
            NAME,
            "counts - total_counts",
            "<= 0 (counts cannot exceed total_counts)",
            &excess,
            |t| t.lower_equal_elem(0.0),
            |v| v <= 0.0,
        );
        if params == Parameters::Mean {
            validate::values(
                NAME,
                "mu",
                "in the open interval (0, 1)",
                first,
                |t| t.clone().greater_elem(0.0).bool_and(t.lower_elem(1.0)),
                |v| v > 0.0 && v < 1.0,
            );
        } else {
            validate::positive(NAME, first_name, first);
        }
        validate::positive(NAME, second_name, second);
    }
}

/// The two parameterisations of the likelihood's last two inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Parameters {
    /// `(alpha, beta)`.
    AlphaBeta,
    /// `(mu, concentration)`.
    Mean,
}

impl Parameters {
    fn names(self) -> [&'static str; 2] {
        match self {
            Self::AlphaBeta => ["alpha", "beta"],
            Self::Mean => ["mu", "concentration"],
        }
    }
}

/// `-log p(k | n, x, y)` with `(x, y)` in the parameterisation `params`.
#[inline(always)]
fn nll<R: Real>(params: Parameters, k: R, n: R, x: R, y: R) -> R {
    let (alpha, beta) = match params {
        Parameters::AlphaBeta => (x, y),
        Parameters::Mean => alpha_beta(x, y),
    };
    log_prob(k, n, alpha, beta).neg()
}

/// `[d/dx, d/dy]` of [`nll`].
#[inline(always)]
fn nll_grads<R: Real>(params: Parameters, k: R, n: R, x: R, y: R) -> [R; 2] {
    let grads = match params {
        Parameters::AlphaBeta => d_alpha_beta(k, n, x, y),
        Parameters::Mean => d_mean(k, n, x, y),
    };
    grads.map(R::neg)
}

/// The host kernel over `[counts, total_counts, x, y]` (element-wise, or reduced with
/// `scale`), inputs checked.
#[cfg(feature = "ndarray")]
fn host<B: Backend, const D: usize>(
    params: Parameters,
    inputs: [Tensor<B, D>; 4],
    scale: Option<f64>,
) -> crate::host::pointwise::Reduced<B, D> {
    crate::host::pointwise::map(inputs, [2, 3], scale, move |[k, n, x, y]| {
        (nll(params, k, n, x, y), nll_grads(params, k, n, x, y))
    })
}

/// The generic path over `[counts, total_counts, x, y]`, inputs checked.
fn generic<B: Backend, const D: usize>(
    params: Parameters,
    inputs: [Tensor<B, D>; 4],
) -> Tensor<B, D> {
    let [k, n, xc, yc] = inputs.each_ref().map(constant);
    let [_, _, x, y] = inputs;
    let value = nll(params, k.clone(), n.clone(), xc.clone(), yc.clone());
    if !is_autodiff(&x) {
        return value;
    }
    let [d_x, d_y] = nll_grads(params, k, n, xc, yc);
    with_grad(with_grad(value, x, d_x), y, d_y)
}

/// `(alpha, beta) = (mu·κ, (1 - mu)·κ)`.
#[inline(always)]
pub(crate) fn alpha_beta<R: Real>(mu: R, concentration: R) -> (R, R) {
    let beta = (mu.clone().neg() + 1.0) * concentration.clone();
    (mu * concentration, beta)
}

/// `log BetaBinomial(k; n, α, β)`: the four gamma-ratio brackets of [`log_prob_small`]
/// where `α, β < 8` or `8(α + β) < n`, the binomial-times-rising-factorials form of the
/// [module docs](self) elsewhere.
#[inline(always)]
pub(crate) fn log_prob<R: Real>(k: R, n: R, alpha: R, beta: R) -> R {
    let large = || {
        let n_minus_k = n.clone() - k.clone();
        log_binomial(k.clone(), n.clone(), alpha.clone(), beta.clone())
            + ln_rising_excess(alpha.clone(), k.clone())
            + ln_rising_excess(beta.clone(), n_minus_k)
            - ln_rising_excess(alpha.clone() + beta.clone(), n.clone())
    };
    let small = || log_prob_small(k.clone(), n.clone(), alpha.clone(), beta.clone());
    // The brackets' terms are about (α + β)·ln n, the binomial form's `T`s about n·ln(n/α):
    // take whichever is smaller.
    let brackets = (alpha.clone() + beta.clone()) * 8.0 - n.clone();
    R::select(brackets.lt(0.0), small, || {
        both(alpha.lt(SERIES_FROM), beta.lt(SERIES_FROM), small, large)
    })
}

/// `yes()` where both masks hold, `no()` elsewhere.
#[inline(always)]
fn both<R: Real>(first: R::Mask, second: R::Mask, yes: impl Fn() -> R, no: impl Fn() -> R) -> R {
    R::select(first, || R::select(second, &yes, &no), &no)
}

/// `log BetaBinomial` for small `α, β` as four brackets, each of the size of its result
/// (`O((α + β)·ln n)`), instead of terms of size `n·ln(n/α)` that cancel:
///
/// ```text
/// [ln Γ(n + 1) - ln Γ(n + α + β)] + [ln Γ(k + α) - ln Γ(k + 1)]
///   + [ln Γ(n - k + β) - ln Γ(n - k + 1)] + [ln Γ(α + β) - ln Γ(α) - ln Γ(β)]
/// ```
#[inline(always)]
fn log_prob_small<R: Real>(k: R, n: R, alpha: R, beta: R) -> R {
    let n_minus_k = n.clone() - k.clone();
    let sum = alpha.clone() + beta.clone();
    ln_gamma_diff(n.clone() + 1.0, n + sum.clone(), sum.clone().neg() + 1.0)
        + ln_gamma_diff(k.clone() + alpha.clone(), k + 1.0, alpha.clone() - 1.0)
        + ln_gamma_diff(
            n_minus_k.clone() + beta.clone(),
            n_minus_k + 1.0,
            beta.clone() - 1.0,
        )
        + sum.lgamma()
        - alpha.lgamma()
        - beta.lgamma()
}

/// `ln Γ(x) - ln Γ(y)` given `d = x - y` exactly: for `x, y >= 8` Stirling's formula for
/// both, `d·ln x + (y - ½)·ln(1 + d/y) - d + s(x) - s(y)`, which forms nothing of the size of
/// `ln Γ(x)`; below, the difference of `lgamma`s (small there).
#[inline(always)]
fn ln_gamma_diff<R: Real>(x: R, y: R, d: R) -> R {
    let stirling = || {
        d.clone() * x.clone().ln() + (y.clone() - 0.5) * (d.clone() / y.clone()).ln_1p() - d.clone()
            + stirling_remainder(x.clone())
            - stirling_remainder(y.clone())
    };
    let direct = || x.clone().lgamma() - y.clone().lgamma();
    both(x.ge(SERIES_FROM), y.ge(SERIES_FROM), stirling, direct)
}

/// `log Binomial(k; n, p)` with `p = α/(α + β)`, `q = β/(α + β)`, by Loader's saddle-point
/// form (no `lgamma` of size `n·ln n`) for `0 < k < n`; `-n·ln(1 + α/β)` at `k = 0` and
/// `-n·ln(1 + β/α)` at `k = n`.
#[inline(always)]
fn log_binomial<R: Real>(k: R, n: R, alpha: R, beta: R) -> R {
    let at_zero = || (n.clone() * (alpha.clone() / beta.clone()).ln_1p()).neg();
    let at_n = || (n.clone() * (beta.clone() / alpha.clone()).ln_1p()).neg();
    let inside = || {
        // (Where another branch is selected, tensors compute NaN here; it is masked out.)
        let (k, n) = (k.clone(), n.clone());
        let n_minus_k = n.clone() - k.clone();
        let sum = alpha.clone() + beta.clone();
        let np = n.clone() * (alpha.clone() / sum.clone());
        let nq = n.clone() * (beta.clone() / sum);
        let half_log = ((k.clone() / n.clone()) * n_minus_k.clone()).ln() * 0.5 + HALF_LN_2PI;
        let stirling = stirling_remainder(n)
            - stirling_remainder(k.clone())
            - stirling_remainder(n_minus_k.clone());
        (bd0(k, np) + bd0(n_minus_k, nq)).neg() - half_log + stirling
    };
    R::select(k.le(0.0), at_zero, || {
        R::select((n.clone() - k.clone()).le(0.0), at_n, inside)
    })
}

/// `[d/dα, d/dβ] log p = [G(α, k) - G(α + β, n), G(β, n - k) - G(α + β, n)]`.
#[inline(always)]
pub(crate) fn d_alpha_beta<R: Real>(k: R, n: R, alpha: R, beta: R) -> [R; 2] {
    let g_sum = digamma_rise(alpha.clone() + beta.clone(), n.clone());
    [
        digamma_rise(alpha, k.clone()) - g_sum.clone(),
        digamma_rise(beta, n - k) - g_sum,
    ]
}

/// `[d/dmu, d/dκ] log p` (module docs); the `G(κ, n)` terms cancel from `d/dmu`.
#[inline(always)]
pub(crate) fn d_mean<R: Real>(k: R, n: R, mu: R, concentration: R) -> [R; 2] {
    let (alpha, beta) = alpha_beta(mu.clone(), concentration.clone());
    let g_alpha = digamma_rise(alpha, k.clone());
    let g_beta = digamma_rise(beta, n.clone() - k);
    let g_sum = digamma_rise(concentration.clone(), n);
    [
        concentration * (g_alpha.clone() - g_beta.clone()),
        mu.clone() * g_alpha + (mu.neg() + 1.0) * g_beta - g_sum,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use statrs::function::gamma::ln_gamma;

    fn textbook(k: f64, n: f64, a: f64, b: f64) -> f64 {
        let lbeta = |x: f64, y: f64| ln_gamma(x) + ln_gamma(y) - ln_gamma(x + y);
        ln_gamma(n + 1.0) - ln_gamma(k + 1.0) - ln_gamma(n - k + 1.0) + lbeta(k + a, n - k + b)
            - lbeta(a, b)
    }

    #[test]
    fn log_prob_matches_the_textbook_formula_in_double_precision() {
        for (k, n) in [
            (0.0, 0.0),
            (0.0, 5.0),
            (5.0, 5.0),
            (3.0, 10.0),
            (40.0, 100.0),
        ] {
            for (a, b) in [(1e-3, 2.0), (0.5, 0.5), (3.0, 7.0), (20.0, 9.0), (2e3, 5e3)] {
                let got = log_prob(k, n, a, b);
                let want = textbook(k, n, a, b);
                assert!(
                    (got - want).abs() <= 1e-10 * (1.0 + want.abs()),
                    "k={k} n={n} a={a} b={b}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn uniform_prior_gives_a_uniform_count() {
        // α = β = 1: p(k) = 1/(n + 1) for every k.
        for k in 0..=6 {
            let p = log_prob(k as f64, 6.0, 1.0, 1.0);
            assert!((p + 7f64.ln()).abs() < 1e-13, "k = {k}: {p}");
        }
    }
}
