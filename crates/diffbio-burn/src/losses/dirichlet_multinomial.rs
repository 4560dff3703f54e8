//! Dirichlet-multinomial negative log-likelihood over the last dimension: counts more
//! overdispersed than a multinomial allows (numpyro's and pyro's `DirichletMultinomial`), and
//! its BPNet profile variant.
//!
//! # Formula
//! For one row of counts `x` (total `N = Σ x`) and concentrations `α = exp(log_alpha)`
//! (total `A = Σ α`):
//!
//! ```text
//! log p(x) = ln N! - Σ ln x_l! + ln Γ(A) - ln Γ(N + A) + Σ [ln Γ(x_l + α_l) - ln Γ(α_l)]
//! ```
//!
//! With `p = α/A` and `T(a, m) = ln Γ(a + m) - ln Γ(a) - m·ln a`
//! ([`gamma_ratio`](super::gamma_ratio)) this is the multinomial's log-likelihood plus a
//! correction that vanishes as `A → ∞` (the multinomial limit), so nothing of size `N·ln A`
//! is formed:
//!
//! ```text
//! log p(x) = log Multinomial(x; p) + Σ T(α_l, x_l) - T(A, N)
//! ```
//!
//! The derivative with respect to `log_alpha` is, with `αG(a, m) = a·[ψ(a + m) - ψ(a)]`,
//!
//! ```text
//! d log p / d log α_l = αG(α_l, x_l) - p_l·αG(A, N)
//! ```
//!
//! # Profile variant
//! [`forward_profile`](DirichletMultinomialLoss::forward_profile) takes BPNet's profile
//! logits and a log-precision per profile: `α = softmax(logits)·exp(log_precision)`, the
//! mean profile of BPNet's multinomial with a learnable overdispersion (the multinomial as
//! `log_precision → ∞`).

use burn::config::Config;
use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Tensor, backend::Backend};

use super::gamma_ratio::{a_digamma_excess, ln_rising_excess};
use super::multinomial::{check_rows, row_nll};
use super::{check_output_rank, reduce};
use crate::Reduction;
use crate::special::{constant, is_autodiff, lgamma_value, log_sum_exp};
use crate::validate;

const NAME: &str = "DirichletMultinomialLoss";

/// Configuration for [`DirichletMultinomialLoss`].
#[derive(Config, Debug)]
pub struct DirichletMultinomialLossConfig {
    /// Check that `counts` are finite and non-negative and `log_alpha` (or `logits` and
    /// `log_precision`) finite, panicking on the first violation. One device read-back per
    /// input. Default `true`.
    #[config(default = true)]
    pub validate: bool,
}

impl DirichletMultinomialLossConfig {
    /// Initialises a [`DirichletMultinomialLoss`].
    pub fn init(&self) -> DirichletMultinomialLoss {
        DirichletMultinomialLoss {
            validate: self.validate,
        }
    }
}

/// Dirichlet-multinomial negative log-likelihood of rows of counts over the last dimension,
/// from log-concentrations.
///
/// ```text
/// nll[..] = -log DirichletMultinomial(counts[.., :]; exp(log_alpha[.., :]))
/// ```
///
/// See the [module documentation](self) for the stable evaluation. `counts` are data and get
/// no gradient. `log_alpha` should stay within about ±80 in float32 (`exp` must not
/// overflow).
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use diffbio_burn::losses::dirichlet_multinomial::DirichletMultinomialLossConfig;
///
/// let device = Default::default();
/// // α = (1, 1): uniform over the 4 ways to split 3 counts, so -log p = ln 4.
/// let log_alpha = Tensor::<NdArray, 2>::from_floats([[0.0, 0.0]], &device);
/// let counts = Tensor::<NdArray, 2>::from_floats([[1.0, 2.0]], &device);
/// let loss = DirichletMultinomialLossConfig::new().init();
/// let nll: Tensor<NdArray, 1> = loss.forward_no_reduction(log_alpha, counts);
/// assert!((nll.into_scalar() - 4f32.ln()).abs() < 1e-6);
/// ```
#[derive(Module, Clone, Debug)]
pub struct DirichletMultinomialLoss {
    /// See [`DirichletMultinomialLossConfig::validate`].
    pub validate: bool,
}

impl DirichletMultinomialLoss {
    /// The per-row NLL reduced to one value: `Mean`/`Auto` average the rows, `Sum` adds
    /// them, `BatchMean` divides the sum by the size of the first dimension.
    ///
    /// # Shapes
    /// - `log_alpha`, `counts`: `[..., L]`, rank at least 2
    /// - output: `[1]`
    ///
    /// # Panics
    /// See [`forward_no_reduction`](Self::forward_no_reduction).
    pub fn forward<B: Backend, const D: usize>(
        &self,
        log_alpha: Tensor<B, D>,
        counts: Tensor<B, D>,
        reduction: Reduction,
    ) -> Tensor<B, 1> {
        self.check("log_alpha", &log_alpha, &counts);
        reduce(nll_keep_dim(log_alpha, counts), reduction)
    }

    /// The NLL of each row; the last dimension is removed. The gradient flows to
    /// `log_alpha`.
    ///
    /// # Shapes
    /// - `log_alpha`, `counts`: `[..., L]`, rank `D >= 2`
    /// - output: `[...]`, rank `D2 = D - 1`
    ///
    /// # Panics
    /// - If the shapes or dtypes differ, or `D2 != D - 1`.
    /// - With `validate` on: if a count is negative or not finite, or a `log_alpha` entry
    ///   is not finite.
    pub fn forward_no_reduction<B: Backend, const D: usize, const D2: usize>(
        &self,
        log_alpha: Tensor<B, D>,
        counts: Tensor<B, D>,
    ) -> Tensor<B, D2> {
        check_output_rank::<D, D2>(NAME);
        self.check("log_alpha", &log_alpha, &counts);
        nll_keep_dim(log_alpha, counts).squeeze_dim(D - 1)
    }

    /// The profile variant, reduced (as [`forward`](Self::forward)):
    /// `α = softmax(logits)·exp(log_precision)` along the last dimension.
    ///
    /// # Shapes
    /// - `logits`, `counts`: `[..., L]`, rank `D >= 2`
    /// - `log_precision`: `[...]`, rank `D2 = D - 1` (one per profile)
    /// - output: `[1]`
    ///
    /// # Panics
    /// See [`forward_profile_no_reduction`](Self::forward_profile_no_reduction).
    pub fn forward_profile<B: Backend, const D: usize, const D2: usize>(
        &self,
        logits: Tensor<B, D>,
        log_precision: Tensor<B, D2>,
        counts: Tensor<B, D>,
        reduction: Reduction,
    ) -> Tensor<B, 1> {
        self.check_profile(&logits, &log_precision, &counts);
        reduce(
            profile_nll_keep_dim(logits, log_precision, counts),
            reduction,
        )
    }

    /// The profile variant per row: `α = softmax(logits)·exp(log_precision)` along the last
    /// dimension. Gradients flow to `logits` and `log_precision`.
    ///
    /// # Shapes
    /// - `logits`, `counts`: `[..., L]`, rank `D >= 2`
    /// - `log_precision`: `[...]`, rank `D2 = D - 1` (one per profile)
    /// - output: `[...]`, rank `D2`
    ///
    /// # Panics
    /// - If the shapes or dtypes disagree, or `D2 != D - 1`.
    /// - With `validate` on: if a count is negative or not finite, or `logits` or
    ///   `log_precision` has an entry that is not finite.
    pub fn forward_profile_no_reduction<B: Backend, const D: usize, const D2: usize>(
        &self,
        logits: Tensor<B, D>,
        log_precision: Tensor<B, D2>,
        counts: Tensor<B, D>,
    ) -> Tensor<B, D2> {
        self.check_profile(&logits, &log_precision, &counts);
        profile_nll_keep_dim(logits, log_precision, counts).squeeze_dim(D - 1)
    }

    /// Shape checks (always) and value checks (with `validate`) of the profile variant.
    fn check_profile<B: Backend, const D: usize, const D2: usize>(
        &self,
        logits: &Tensor<B, D>,
        log_precision: &Tensor<B, D2>,
        counts: &Tensor<B, D>,
    ) {
        check_output_rank::<D, D2>(NAME);
        self.check("logits", logits, counts);
        let dims = counts.dims();
        validate::expect_shape(
            NAME,
            "log_precision",
            &log_precision.dims(),
            &dims[..D - 1],
            "one per profile: the shape of `counts` without its last dimension",
        );
        validate::same_dtype(NAME, ("logits", logits), ("log_precision", log_precision));
        if self.validate {
            validate::finite(NAME, "log_precision", log_precision);
        }
    }

    /// Shape checks (always) and value checks (with `validate`).
    fn check<B: Backend, const D: usize>(
        &self,
        name: &str,
        log_alpha: &Tensor<B, D>,
        counts: &Tensor<B, D>,
    ) {
        check_rows(NAME, self.validate, (name, log_alpha), counts);
    }
}

/// The NLL of each row, keeping the last dimension with size 1 (module docs). Callers check
/// the inputs.
fn nll_keep_dim<B: Backend, const D: usize>(
    log_alpha: Tensor<B, D>,
    counts: Tensor<B, D>,
) -> Tensor<B, D> {
    let last = D - 1;
    let x = constant(&counts);
    if x.dims()[last] == 0 {
        // No categories: the empty row has probability 1.
        return x.sum_dim(last);
    }
    let la = constant(&log_alpha);
    let log_a_sum = log_sum_exp(la.clone(), last);
    let log_p = la - log_a_sum.clone();
    let grad = is_autodiff(&log_alpha);
    let (nll, grads) = row_terms(x, log_p, log_a_sum, grad);
    match grads {
        None => nll,
        Some((d_log_alpha, _)) => {
            // `with_grad` over the row: its value depends on each entry of `log_alpha`.
            let delta = log_alpha.clone() - constant(&log_alpha);
            nll + (delta * d_log_alpha.neg()).sum_dim(last)
        }
    }
}

/// The profile variant's NLL of each row (`[.., 1]`), with `log α = log_softmax(logits) +
/// log_precision`, its derivatives in closed form:
///
/// ```text
/// d/d logits_l = g_l - p_l·Σ_j g_j,   d/d log_precision = Σ_j g_j,   g = d log p / d log α
/// ```
///
/// Callers check the inputs.
fn profile_nll_keep_dim<B: Backend, const D: usize, const D2: usize>(
    logits: Tensor<B, D>,
    log_precision: Tensor<B, D2>,
    counts: Tensor<B, D>,
) -> Tensor<B, D> {
    let last = D - 1;
    let x = constant(&counts);
    if x.dims()[last] == 0 {
        return x.sum_dim(last);
    }
    let log_p = log_softmax(constant(&logits), last);
    let lp = log_precision.unsqueeze_dim::<D>(last);
    let grad = is_autodiff(&logits);
    let (nll, grads) = row_terms(x, log_p.clone(), constant(&lp), grad);
    match grads {
        None => nll,
        Some((g, row)) => {
            let d_logits = g - log_p.exp() * row.clone();
            let delta = logits.clone() - constant(&logits);
            let nll = nll + (delta * d_logits.neg()).sum_dim(last);
            nll + (lp.clone() - constant(&lp)) * row.neg()
        }
    }
}

/// The NLL of each row (`[.., 1]`) from untracked counts `x`, normalised `log p` and `log A`
/// (module docs), and with `grad` the derivatives of [`gradients`].
#[allow(clippy::type_complexity)]
fn row_terms<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    log_p: Tensor<B, D>,
    log_a_sum: Tensor<B, D>,
    grad: bool,
) -> (Tensor<B, D>, Option<(Tensor<B, D>, Tensor<B, D>)>) {
    let last = D - 1;
    let total = x.clone().sum_dim(last);
    let multinomial = row_nll(
        total.clone(),
        (x.clone() * log_p.clone()).sum_dim(last),
        lgamma_value(x.clone() + 1.0).sum_dim(last),
    );
    let alpha = (log_p.clone() + log_a_sum.clone()).exp();
    let a_sum = log_a_sum.exp();
    let excess = ln_rising_excess(alpha.clone(), x.clone()).sum_dim(last);
    let nll = multinomial - excess + ln_rising_excess(a_sum.clone(), total.clone());
    let grads = grad.then(|| gradients(x, total, alpha, a_sum, log_p.exp(), last));
    (nll, grads)
}

/// `d log p / d log α` (`[.., L]`) and its row sum (`[.., 1]`), with `p = α/A`:
///
/// ```text
/// d log p / d log α_l = (x_l - N·p_l) + e(α_l, x_l) - p_l·e(A, N),   e(a, m) = a·[ψ(a + m) - ψ(a)] - m
/// Σ_l d log p / d log α_l = Σ_l e(α_l, x_l) - e(A, N)
/// ```
///
/// (the multinomial's gradient plus corrections that vanish as `A → ∞`). The row sum is the
/// derivative with respect to a shift of every `log α_l` (the profile variant's
/// `log_precision`); written this way it never subtracts the `O(N)` terms, which cancel
/// exactly.
fn gradients<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    total: Tensor<B, D>,
    alpha: Tensor<B, D>,
    a_sum: Tensor<B, D>,
    p: Tensor<B, D>,
    last: usize,
) -> (Tensor<B, D>, Tensor<B, D>) {
    let e = a_digamma_excess(alpha, x.clone());
    let e_sum = a_digamma_excess(a_sum, total.clone());
    let row = e.clone().sum_dim(last) - e_sum.clone();
    let grad = (x - total * p.clone()) + e - p * e_sum;
    (grad, row)
}
