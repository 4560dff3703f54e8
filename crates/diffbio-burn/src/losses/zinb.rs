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

use super::negative_binomial::{check_inputs, nb_log_prob};
use super::{reduce, reduction_scale};
use crate::Reduction;
use crate::special::{constant, is_autodiff, softplus_value, with_grad};
use crate::validate;

const NAME: &str = "ZinbLoss";

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
        #[cfg(feature = "ndarray")]
        if self.fast_path && crate::host::on_host::<B>() {
            let scale = reduction_scale(&counts.dims(), reduction);
            let inputs = self.host_inputs(counts, mu, theta, pi_logits);
            return crate::host::nb::nll_reduced(inputs, scale);
        }
        reduce(
            self.forward_no_reduction(counts, mu, theta, pi_logits),
            reduction,
        )
    }

    /// Checks the inputs and packs them for the host kernel.
    #[cfg(feature = "ndarray")]
    fn host_inputs<B: Backend, const T: usize>(
        &self,
        counts: Tensor<B, 2>,
        mu: Tensor<B, 2>,
        theta: Tensor<B, T>,
        pi_logits: Tensor<B, 2>,
    ) -> crate::host::nb::NbInputs<B> {
        let theta = self.check(&counts, &mu, theta, &pi_logits);
        crate::host::nb::NbInputs {
            counts,
            mu,
            theta,
            pi_logits: Some(pi_logits),
            eps: self.eps,
            floor: crate::host::nb::Floor::Shift,
        }
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
        #[cfg(feature = "ndarray")]
        if self.fast_path && crate::host::on_host::<B>() {
            return crate::host::nb::nll(self.host_inputs(counts, mu, theta, pi_logits));
        }
        let theta = self.check(&counts, &mu, theta, &pi_logits);
        let x = constant(&counts);
        let logits = constant(&pi_logits);
        let is_zero = x.clone().lower_equal_elem(0.0);
        let nb = nb_log_prob(x, constant(&mu) + self.eps, constant(&theta));

        // Zero branch: softplus(a) - softplus(-l), a = -l + log NB(0).
        let a = nb.log_prob.clone() - logits.clone();
        let log_p_zero = softplus_value(a.clone()) - softplus_value(logits.clone().neg());
        // Positive branch: -softplus(l) + log NB(x).
        let log_p_pos = nb.log_prob - softplus_value(logits.clone());
        let nll = log_p_pos.mask_where(is_zero.clone(), log_p_zero).neg();
        if !is_autodiff(&mu) {
            return nll;
        }

        let sigmoid = |t: Tensor<B, 2>| softplus_value(t.neg()).neg().exp();
        // d log p / d log NB: sigmoid(a) at zero counts, 1 elsewhere.
        let weight = sigmoid(a.clone()).mask_where(is_zero.clone().bool_not(), a.ones_like());
        // d log p / d l: sigmoid(-l) - sigmoid(a) at zero counts, -sigmoid(l) elsewhere.
        let d_logits = sigmoid(logits.clone().neg()) - sigmoid(a);
        let d_logits = sigmoid(logits).neg().mask_where(is_zero, d_logits);

        let nll = with_grad(nll, mu, (nb.d_mu * weight.clone()).neg());
        let nll = with_grad(nll, theta, (nb.d_theta * weight).neg());
        with_grad(nll, pi_logits, d_logits.neg())
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
