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
//! with the difference formed exactly (`theta·(x - mu)` and `x - mu`). Every term is then
//! bounded by the size of the result, and float32 stays within 1e-5 relative of the float64
//! truth for `theta` and counts up to 1e5 (see `tests/nb_accuracy.rs`).
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

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};

use super::{reduce, reduction_scale};
use crate::Reduction;
use crate::special::{
    DIGAMMA_SERIES_FROM, HALF_LN_2PI, constant, digamma, digamma_remainder, is_autodiff,
    log1p_minus, stirling_remainder, with_grad,
};
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
        #[cfg(feature = "ndarray")]
        if self.fast_path && crate::host::on_host::<B>() {
            let theta = check_inputs(NAME, self.validate, &counts, &mu, theta);
            let scale = reduction_scale(&counts.dims(), reduction);
            return crate::host::nb::nll_reduced(self.host_inputs(counts, mu, theta), scale);
        }
        reduce(self.forward_no_reduction(counts, mu, theta), reduction)
    }

    #[cfg(feature = "ndarray")]
    fn host_inputs<B: Backend>(
        &self,
        counts: Tensor<B, 2>,
        mu: Tensor<B, 2>,
        theta: Tensor<B, 2>,
    ) -> crate::host::nb::NbInputs<B> {
        crate::host::nb::NbInputs {
            counts,
            mu,
            theta,
            pi_logits: None,
            eps: self.eps,
            floor: crate::host::nb::Floor::Clamp,
        }
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
        #[cfg(feature = "ndarray")]
        if self.fast_path && crate::host::on_host::<B>() {
            return crate::host::nb::nll(self.host_inputs(counts, mu, theta));
        }
        let x = constant(&counts);
        let mu_c = constant(&mu).clamp_min(self.eps);
        let theta_c = constant(&theta).clamp_min(self.eps);
        let terms = nb_log_prob(x, mu_c + self.eps, theta_c);
        let nll = terms.log_prob.neg();
        if !is_autodiff(&mu) {
            return nll;
        }
        let mu_live = constant(&mu).greater_elem(self.eps).float();
        let theta_live = constant(&theta).greater_elem(self.eps).float();
        let nll = with_grad(nll, mu, terms.d_mu.neg() * mu_live);
        with_grad(nll, theta, terms.d_theta.neg() * theta_live)
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

/// The NB log-probability and its partial derivatives, all untracked.
pub(crate) struct NbTerms<B: Backend> {
    /// `log NB(x; mu, theta)`, `[B, G]`.
    pub log_prob: Tensor<B, 2>,
    /// `d log NB / d mu`.
    pub d_mu: Tensor<B, 2>,
    /// `d log NB / d theta`.
    pub d_theta: Tensor<B, 2>,
}

/// `log(num / den)` for positive `num`, `den` whose difference `diff = num - den` is known
/// exactly: `log1p(diff / den)` near 1 (no cancellation), `log num - log den` elsewhere
/// (no loss of the small `num / den` when the ratio is far from 1).
fn log_ratio<B: Backend>(
    log_num: impl FnOnce() -> Tensor<B, 2>,
    log_den: impl FnOnce() -> Tensor<B, 2>,
    diff: Tensor<B, 2>,
    den: Tensor<B, 2>,
) -> Tensor<B, 2> {
    let rel = diff / den;
    let near = rel.clone().abs().lower_elem(0.5);
    (log_num() - log_den()).mask_where(near, rel.log1p())
}

/// Log-probability and derivatives of NB(x; mu, theta) for untracked `x >= 0`, `mu > 0`,
/// `theta > 0` of broadcast-compatible shapes (see the module docs for the formulas).
pub(crate) fn nb_log_prob<B: Backend>(
    x: Tensor<B, 2>,
    mu: Tensor<B, 2>,
    theta: Tensor<B, 2>,
) -> NbTerms<B> {
    let dims = x.dims();
    let theta = theta.expand(dims);
    let is_zero = x.clone().lower_equal_elem(0.0);
    // Positive branch on x clamped away from 0 (the zero branch is selected there).
    let xp = x.clone().mask_fill(is_zero.clone(), 1.0);
    let x_minus_mu = xp.clone() - mu.clone();
    let theta_plus_x = theta.clone() + xp.clone();
    let theta_plus_mu = theta.clone() + mu.clone();
    let log_theta = theta.clone().log();
    let log_theta_plus_x = theta_plus_x.clone().log();
    let log_theta_plus_mu = theta_plus_mu.clone().log();
    let log_x = xp.clone().log();

    // L1 = log[x(θ+μ) / (μ(x+θ))], num - den = θ(x - μ).
    let l1 = log_ratio(
        || log_x.clone() + log_theta_plus_mu.clone(),
        || mu.clone().log() + log_theta_plus_x.clone(),
        theta.clone() * x_minus_mu.clone(),
        mu.clone() * theta_plus_x.clone(),
    );
    // L2 = log[(θ+x) / (θ+μ)], num - den = x - μ.
    let l2 = log_ratio(
        || log_theta_plus_x.clone(),
        || log_theta_plus_mu.clone(),
        x_minus_mu.clone(),
        theta_plus_mu.clone(),
    );
    let d = xp.clone() * l1 - theta.clone() * l2.clone();
    let half_log_det = (log_x + log_theta_plus_x - log_theta.clone()) * 0.5 + HALF_LN_2PI;
    let stirling = stirling_remainder(theta_plus_x.clone())
        - stirling_remainder(theta.clone())
        - stirling_remainder(xp.clone());
    let positive = d.neg() - half_log_det + stirling;
    let at_zero = theta.clone() * (mu.clone() / theta.clone()).log1p().neg();
    let log_prob = positive.mask_where(is_zero.clone(), at_zero);

    let d_mu = theta.clone() * (x.clone() - mu.clone()) / (mu.clone() * theta_plus_mu.clone());
    let d_theta = d_theta(x, mu, theta, is_zero, l2);
    NbTerms {
        log_prob,
        d_mu,
        d_theta,
    }
}

/// `d log NB / d theta`: the direct digamma form for `theta < 8`, the cancellation-free
/// rearrangement above (module docs). `l2_positive` is `log[(θ+x)/(θ+μ)]` on the positive
/// branch.
fn d_theta<B: Backend>(
    x: Tensor<B, 2>,
    mu: Tensor<B, 2>,
    theta: Tensor<B, 2>,
    is_zero: Tensor<B, 2, burn::tensor::Bool>,
    l2_positive: Tensor<B, 2>,
) -> Tensor<B, 2> {
    let large = theta.clone().greater_equal_elem(DIGAMMA_SERIES_FROM);

    // theta < 8: ψ(x+θ) - ψ(θ) - log1p(μ/θ) + (μ - x)/(θ + μ).
    let ts = theta.clone().clamp_max(DIGAMMA_SERIES_FROM);
    let direct =
        digamma(x.clone() + ts.clone()) - digamma(ts.clone()) - (mu.clone() / ts.clone()).log1p()
            + (mu.clone() - x.clone()) / (ts + mu.clone());

    // theta >= 8: log1p(r) - r + x/(2θ(θ+x)) + [c(θ+x) - c(θ)], r = (x - μ)/(θ + μ).
    let tl = theta.clamp_min(DIGAMMA_SERIES_FROM);
    let theta_plus_mu = tl.clone() + mu.clone();
    let r = (x.clone() - mu.clone()) / theta_plus_mu.clone();
    let l2 = l2_positive.mask_where(is_zero, (mu / tl.clone()).log1p().neg());
    let far = r.clone().abs().greater_equal_elem(0.1);
    let log1p_minus_r = log1p_minus(r.clone()).mask_where(far, l2 - r);
    let theta_plus_x = tl.clone() + x.clone();
    let rearranged = log1p_minus_r
        + x / (tl.clone() * theta_plus_x.clone() * 2.0)
        + digamma_remainder(theta_plus_x)
        - digamma_remainder(tl);

    direct.mask_where(large, rearranged)
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
