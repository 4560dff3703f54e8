//! Zero-inflated negative-binomial negative log-likelihood (scVI's `log_zinb_positive`).
//!
//! With `pi = sigmoid(pi_logits)` the probability of a technical zero (dropout):
//!
//! ```text
//! p(x = 0) = pi + (1 - pi)·NB(0; mu, theta)
//! p(x > 0) = (1 - pi)·NB(x; mu, theta)
//! ```
//!
//! evaluated in log space with softplus identities (`log pi = -softplus(-l)`,
//! `log(1 - pi) = -softplus(l)`, `l = pi_logits`):
//!
//! ```text
//! log p(0) = softplus(-l + log NB(0)) - softplus(-l)
//! log p(x) = -softplus(l) + log NB(x)                      (x > 0)
//! ```
//!
//! The zero/non-zero split is hard (`x == 0`), as in scVI. DiffBio's own
//! `zinb_negative_log_likelihood` uses a soft mask that gives the zero branch ≈ 0.5 weight
//! at count 0; this loss does not reproduce that bug. `log NB` is the stable evaluation of
//! [`negative_binomial`](super::negative_binomial); `mu + eps` replaces `mu` inside its
//! logarithms as in scVI (no clamping).

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};

use super::negative_binomial::{Floor, check_inputs, d_mu, d_theta, log_prob};
use super::reduce;
use crate::Reduction;
use crate::dispatch::host_or;
use crate::real::{Logistic, Real, exp_m1_minus, logistic, positive_part, sigmoid_pair_of};
use crate::special::{constant, is_autodiff, with_grad};
use crate::validate;

const NAME: &str = "ZinbLoss";

/// scVI's floor: `mu + eps` in the logarithms, no clamping.
const FLOOR: Floor = Floor::Shift;

/// Configuration for [`ZinbLoss`].
#[derive(Config, Debug)]
pub struct ZinbLossConfig {
    /// Added to `mu` inside the logarithms, as scVI does (`log(mu + eps)`,
    /// `log(theta + mu + eps)`). Must be positive. Default `1e-8`.
    #[config(default = 1e-8)]
    pub eps: f64,
    /// Check the value domain (finite counts `>= 0`, `mu >= 0`, `theta > 0`, finite
    /// `pi_logits`) and panic on the first violation. One device read-back per input.
    /// Default `true`.
    #[config(default = true)]
    pub validate: bool,
    /// Use the fused CPU kernel on backends that keep tensors in host memory (NdArray; see
    /// [`host`](crate::host)). `false` forces the generic tensor-op path, which every other
    /// backend takes; both agree to float32 rounding. Default `true`.
    #[config(default = true)]
    pub fast_path: bool,
}

impl ZinbLossConfig {
    /// Initialises a [`ZinbLoss`].
    ///
    /// # Panics
    /// If `eps` is not a positive finite number.
    pub fn init(&self) -> ZinbLoss {
        assert!(
            self.eps.is_finite() && self.eps > 0.0,
            "{NAME}: eps must be a positive finite number, got {}",
            self.eps
        );
        ZinbLoss {
            eps: self.eps,
            validate: self.validate,
            fast_path: self.fast_path,
        }
    }
}

/// Zero-inflated negative-binomial negative log-likelihood (scVI convention).
///
/// See the [module documentation](self) for the formula.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use diffbio_burn::Reduction;
/// use diffbio_burn::losses::zinb::ZinbLossConfig;
///
/// let device = Default::default();
/// let counts = Tensor::<NdArray, 2>::from_floats([[0.0, 3.0]], &device);
/// let mu = Tensor::<NdArray, 2>::from_floats([[0.5, 2.0]], &device);
/// let theta = Tensor::<NdArray, 1>::from_floats([2.0, 10.0], &device);
/// let pi_logits = Tensor::<NdArray, 2>::from_floats([[-1.0, -2.0]], &device);
/// let nll = ZinbLossConfig::new().init().forward(counts, mu, theta, pi_logits, Reduction::Mean);
/// assert!(nll.into_scalar() > 0.0);
/// ```
#[derive(Module, Clone, Debug)]
pub struct ZinbLoss {
    /// See [`ZinbLossConfig::eps`].
    pub eps: f64,
    /// See [`ZinbLossConfig::validate`].
    pub validate: bool,
    /// See [`ZinbLossConfig::fast_path`].
    pub fast_path: bool,
}

impl ZinbLoss {
    /// The reduced negative log-likelihood (`Mean`/`Auto`: over all elements, `Sum`,
    /// `BatchMean`: per cell).
    ///
    /// # Shapes
    /// - `counts`, `mu`, `pi_logits`: `[B, G]`
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
        pi_logits: Tensor<B, 2>,
        reduction: Reduction,
    ) -> Tensor<B, 1> {
        let theta = self.check(&counts, &mu, theta, &pi_logits);
        host_or!(
            B,
            self.fast_path,
            {
                let scale = super::reduction_scale(&counts.dims(), reduction);
                let logits = Some(pi_logits);
                crate::host::nb::nll_reduced(counts, mu, theta, logits, self.eps, FLOOR, scale)
            },
            reduce(self.nll(counts, mu, theta, pi_logits), reduction)
        )
    }

    /// Shape checks (always) and value checks (with `validate`); `theta` as `[1|B, G]`.
    fn check<B: Backend, const T: usize>(
        &self,
        counts: &Tensor<B, 2>,
        mu: &Tensor<B, 2>,
        theta: Tensor<B, T>,
        pi_logits: &Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        let theta = check_inputs(NAME, self.validate, counts, mu, theta);
        validate::same_shape(
            NAME,
            ("counts", &counts.dims()),
            ("pi_logits", &pi_logits.dims()),
        );
        validate::same_dtype(NAME, ("mu", mu), ("pi_logits", pi_logits));
        if self.validate {
            validate::finite(NAME, "pi_logits", pi_logits);
        }
        theta
    }

    /// The element-wise negative log-likelihood `-log p(counts)`.
    ///
    /// Gradients flow to `mu`, `theta` and `pi_logits` (closed forms).
    ///
    /// # Shapes
    /// - `counts`, `mu`, `pi_logits`: `[B, G]`
    /// - `theta`: `[G]` (per gene) or `[B, G]`
    /// - output: `[B, G]`
    ///
    /// # Panics
    /// - If the shapes disagree, or `theta` has rank other than 1 or 2.
    /// - With `validate` on: if a count is negative or not finite, `mu` is negative or not
    ///   finite, `theta` is not positive and finite, or a `pi_logits` entry is not finite.
    pub fn forward_no_reduction<B: Backend, const T: usize>(
        &self,
        counts: Tensor<B, 2>,
        mu: Tensor<B, 2>,
        theta: Tensor<B, T>,
        pi_logits: Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        let theta = self.check(&counts, &mu, theta, &pi_logits);
        host_or!(
            B,
            self.fast_path,
            crate::host::nb::nll(counts, mu, theta, Some(pi_logits), self.eps, FLOOR),
            self.nll(counts, mu, theta, pi_logits)
        )
    }

    /// The generic path of [`forward_no_reduction`](Self::forward_no_reduction), inputs
    /// checked, `theta` as `[1 | B, G]`.
    fn nll<B: Backend>(
        &self,
        counts: Tensor<B, 2>,
        mu: Tensor<B, 2>,
        theta: Tensor<B, 2>,
        pi_logits: Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        let floor = FLOOR;
        let x = constant(&counts);
        let logits = constant(&pi_logits);
        let mu_c = floor.mu(constant(&mu), self.eps);
        let theta_c = floor.theta(constant(&theta), self.eps).expand(x.dims());
        let log_nb = log_prob(x.clone(), mu_c.clone(), theta_c.clone());
        let inflated = inflate(x.clone().le(0.0), log_nb, logits);
        let nll = inflated.log_p.neg();
        if !is_autodiff(&mu) {
            return nll;
        }
        let weight = inflated.weight;
        let d_mu = d_mu(x.clone(), mu_c.clone(), theta_c.clone()) * weight.clone();
        let d_theta = d_theta(x, mu_c, theta_c) * weight;
        let nll = with_grad(nll, mu, d_mu.neg());
        let nll = with_grad(nll, theta, d_theta.neg());
        with_grad(nll, pi_logits, inflated.d_logit.neg())
    }
}

/// `log p` of the zero-inflated count and its derivatives with respect to `log NB` and the
/// logit.
pub(crate) struct Inflated<R> {
    /// `log p(x)`.
    pub log_p: R,
    /// `d log p / d log NB`.
    pub weight: R,
    /// `d log p / d l`.
    pub d_logit: R,
}

/// scVI's zero inflation with `pi = sigmoid(l)`, `L = log NB`:
///
/// ```text
/// x > 0: log p = L - softplus(l),      d log p/dL = 1,        d log p/dl = -σ(l)
/// x = 0: log p = ln(π + (1 - π)·e^L) = ln_1p(z),   z = σ(-l)·expm1(L) ∈ [-1, 0]
///        d log p/dL = σ(a),   d log p/dl = -σ(l)·z / p = -z·σ(-a),   a = L - l
/// ```
///
/// At `x = 0` the forms without cancellation are used: `ln_1p(z)` while `p > 1/2` (where
/// scVI's `softplus(L - l) - softplus(-l)` subtracts two numbers near `|l|` to get one near
/// 0, losing everything in float32 for `μ ≈ 1e-6`), that softplus difference elsewhere;
/// `expm1(L)` by [`exp_m1_minus`]; `d log p/dl` as a product instead of scVI's
/// `σ(-l) - σ(L - l)` (`σ(l)/p = σ(-a)`, so no division by a `p` that may underflow).
/// Everything of `l` comes from one `exp` and one `ln_1p` ([`logistic`]), and so does
/// everything of `a`.
#[inline(always)]
pub(crate) fn inflate<R: Real>(is_zero: R::Mask, log_nb: R, l: R) -> Inflated<R> {
    let of_l = logistic(l.clone());
    // Both cases evaluated, on every executor: tensors evaluate both anyway, and the host
    // kernel runs this in a vectorised loop (`host::lane`), which must not call a closure.
    let zero = inflate_zero(log_nb.clone(), l.clone(), &of_l);
    let positive = inflate_positive(log_nb, l, &of_l);
    Inflated {
        log_p: R::select(is_zero.clone(), || zero.log_p, || positive.log_p),
        weight: R::select(is_zero.clone(), || zero.weight, || positive.weight),
        d_logit: R::select(is_zero, || zero.d_logit, || positive.d_logit),
    }
}

/// [`inflate`] at `x = 0`. Of `a` it needs `σ(±a)` (one `exp`) and `softplus(a)` only where
/// `p <= 1/2`, where `ln_1p(z)` is not: one `ln_1p` of the argument each case needs.
#[inline(always)]
fn inflate_zero<R: Real>(log_nb: R, l: R, of_l: &Logistic<R>) -> Inflated<R> {
    let a = log_nb.clone() - l;
    let e_a = a.clone().abs().neg().exp();
    let (sigmoid_a, sigmoid_minus_a) = sigmoid_pair_of(a.ge(0.0), e_a.clone());
    let expm1 = exp_m1_minus(log_nb.clone()) + log_nb;
    let z = of_l.sigmoid_minus.clone() * expm1;
    let high = z.gt(-0.5);
    let ln_1p_w = R::select(high.clone(), || z.clone(), || e_a).ln_1p();
    let log_p = R::select(
        high,
        || ln_1p_w.clone(),
        || positive_part(a) + ln_1p_w.clone() - of_l.softplus_minus.clone(),
    );
    Inflated {
        d_logit: (z * sigmoid_minus_a).neg(),
        weight: sigmoid_a,
        log_p,
    }
}

/// [`inflate`] at `x > 0`.
#[inline(always)]
fn inflate_positive<R: Real>(log_nb: R, l: R, of_l: &Logistic<R>) -> Inflated<R> {
    Inflated {
        log_p: log_nb - of_l.softplus.clone(),
        weight: l.full_like(1.0),
        d_logit: of_l.sigmoid.clone().neg(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::negative_binomial::NegativeBinomialLossConfig;
    use burn::backend::NdArray;

    // One float type per test process: Burn 0.21 keys the default dtype by device, so an
    // `NdArray<f32>` test would make the `NdArray<f64>` tests of `special` compute in f32.
    type B = NdArray<f64>;

    fn t2(v: [[f32; 2]; 1]) -> Tensor<B, 2> {
        Tensor::from_floats(v, &Default::default())
    }

    fn theta() -> Tensor<B, 1> {
        Tensor::from_floats([2.0, 0.5], &Default::default())
    }

    #[test]
    #[should_panic(expected = "ZinbLoss: eps must be a positive finite number, got -1")]
    fn negative_eps_is_rejected_at_init() {
        ZinbLossConfig::new().with_eps(-1.0).init();
    }

    #[test]
    fn very_negative_logits_recover_the_nb_likelihood() {
        // pi -> 0: ZINB -> NB, also at zero counts (hard split, no soft-mask weight).
        let counts = t2([[0.0, 3.0]]);
        let mu = t2([[1.5, 2.0]]);
        let zinb = ZinbLossConfig::new().init().forward_no_reduction(
            counts.clone(),
            mu.clone(),
            theta(),
            t2([[-40.0, -40.0]]),
        );
        let nb = NegativeBinomialLossConfig::new()
            .init()
            .forward_no_reduction(counts, mu, theta());
        zinb.into_data()
            .assert_approx_eq::<f32>(&nb.into_data(), burn::tensor::Tolerance::absolute(1e-6));
    }
}
