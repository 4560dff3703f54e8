//! Two-component negative-binomial mixture NLL, totalVI's protein likelihood (scvi-tools'
//! `NegativeBinomialMixture` / `log_mixture_nb`).
//!
//! A protein count is background (`mu_1`) or foreground (`mu_2`, usually `mu_1·(1 + α)`),
//! with the weight of the background `w = sigmoid(pi_logits)`:
//!
//! ```text
//! p(x) = w·NB(x; mu_1, theta_1) + (1 - w)·NB(x; mu_2, theta_2)
//! ```
//!
//! `theta_2` is `theta_1` unless given (scvi-tools' shared or separate dispersion). In log
//! space, with `L_i = log NB(x; mu_i, theta_i)`, `a = L_1 - softplus(-l)`,
//! `b = L_2 - softplus(l)` (`l = pi_logits`):
//!
//! ```text
//! log p = max(a, b) + ln(1 + e^-|a - b|)
//! d log p/d L_1 = r = sigmoid(a - b),   d log p/d L_2 = 1 - r,   d log p/d l = r - w
//! ```
//!
//! `r` is the posterior probability of the background. Each `L_i` is the cancellation-free
//! NB of [`negative_binomial`](super::negative_binomial) with its closed-form derivatives;
//! `mu + eps` replaces `mu` inside the logarithms, as in scVI (no clamping).

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};

use super::negative_binomial::{Floor, check_inputs, d_mu, d_theta, log_prob};
use super::reduce;
use crate::Reduction;
use crate::dispatch::host_or;
use crate::real::{Real, sigmoid, sigmoid_pair, softplus};
use crate::special::{constant, is_autodiff, with_grad};
use crate::validate;

const NAME: &str = "NegativeBinomialMixtureLoss";

/// scVI's floor: `mu + eps` in the logarithms, no clamping.
const FLOOR: Floor = Floor::Shift;

/// Configuration for [`NegativeBinomialMixtureLoss`].
#[derive(Config, Debug)]
pub struct NegativeBinomialMixtureLossConfig {
    /// Added to `mu_1` and `mu_2` inside the logarithms, as scVI does. Must be positive.
    /// Default `1e-8`.
    #[config(default = 1e-8)]
    pub eps: f64,
    /// Check the value domain (finite counts `>= 0`, `mu_1`, `mu_2 >= 0`, `theta_1`,
    /// `theta_2 > 0`, finite `pi_logits`) and panic on the first violation. One device
    /// read-back per input. Default `true`.
    #[config(default = true)]
    pub validate: bool,
    /// Use the fused CPU kernel on backends that keep tensors in host memory (NdArray; see
    /// [`host`](crate::host)). `false` forces the generic tensor-op path, which every other
    /// backend takes; both agree to float32 rounding. Default `true`.
    #[config(default = true)]
    pub fast_path: bool,
}

impl NegativeBinomialMixtureLossConfig {
    /// Initialises a [`NegativeBinomialMixtureLoss`].
    ///
    /// # Panics
    /// If `eps` is not a positive finite number.
    pub fn init(&self) -> NegativeBinomialMixtureLoss {
        assert!(
            self.eps.is_finite() && self.eps > 0.0,
            "{NAME}: eps must be a positive finite number, got {}",
            self.eps
        );
        NegativeBinomialMixtureLoss {
            eps: self.eps,
            validate: self.validate,
            fast_path: self.fast_path,
        }
    }
}

/// Negative log-likelihood of a two-component NB mixture (totalVI).
///
/// See the [module documentation](self) for the formula.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use diffbio_burn::Reduction;
/// use diffbio_burn::losses::nb_mixture::NegativeBinomialMixtureLossConfig;
///
/// let device = Default::default();
/// let counts = Tensor::<NdArray, 2>::from_floats([[3.0, 250.0]], &device);
/// let mu_background = Tensor::<NdArray, 2>::from_floats([[4.0, 5.0]], &device);
/// let mu_foreground = Tensor::<NdArray, 2>::from_floats([[40.0, 200.0]], &device);
/// let theta = Tensor::<NdArray, 1>::from_floats([20.0, 20.0], &device); // shared, per protein
/// let pi_logits = Tensor::<NdArray, 2>::from_floats([[0.0, 0.0]], &device);
/// let nll = NegativeBinomialMixtureLossConfig::new().init().forward(
///     counts, mu_background, mu_foreground, theta, None, pi_logits, Reduction::Mean,
/// );
/// assert!(nll.into_scalar() > 0.0);
/// ```
#[derive(Module, Clone, Debug)]
pub struct NegativeBinomialMixtureLoss {
    /// See [`NegativeBinomialMixtureLossConfig::eps`].
    pub eps: f64,
    /// See [`NegativeBinomialMixtureLossConfig::validate`].
    pub validate: bool,
    /// See [`NegativeBinomialMixtureLossConfig::fast_path`].
    pub fast_path: bool,
}

impl NegativeBinomialMixtureLoss {
    /// The reduced NLL (`Mean`/`Auto`: over all elements, `Sum`, `BatchMean`: per cell).
    ///
    /// # Shapes
    /// - `counts`, `mu_1`, `mu_2`, `pi_logits`: `[B, G]`
    /// - `theta_1` and `theta_2` (if given): `[G]` (per protein) or `[B, G]`, the same
    /// - output: `[1]`
    ///
    /// # Panics
    /// See [`forward_no_reduction`](Self::forward_no_reduction).
    #[allow(clippy::too_many_arguments)]
    pub fn forward<B: Backend, const T: usize>(
        &self,
        counts: Tensor<B, 2>,
        mu_1: Tensor<B, 2>,
        mu_2: Tensor<B, 2>,
        theta_1: Tensor<B, T>,
        theta_2: Option<Tensor<B, T>>,
        pi_logits: Tensor<B, 2>,
        reduction: Reduction,
    ) -> Tensor<B, 1> {
        let scale = super::reduction_scale(&counts.dims(), reduction.clone());
        let inputs = self.check(counts, mu_1, mu_2, theta_1, theta_2, pi_logits);
        host_or!(
            B,
            self.fast_path,
            self.host(inputs, Some(scale)).total(),
            reduce(self.nll(inputs), reduction)
        )
    }

    /// The element-wise NLL `-log p(counts)`. Gradients flow to `mu_1`, `mu_2`, `theta_1`,
    /// `theta_2` (if given) and `pi_logits` (closed forms).
    ///
    /// # Shapes
    /// - `counts`, `mu_1`, `mu_2`, `pi_logits`: `[B, G]`
    /// - `theta_1` and `theta_2` (if given): `[G]` (per protein) or `[B, G]`, the same
    /// - output: `[B, G]`
    ///
    /// # Panics
    /// - If the shapes disagree, or `theta_1`/`theta_2` have rank other than 1 or 2.
    /// - With `validate` on: if a count is negative or not finite, `mu_1` or `mu_2` is
    ///   negative or not finite, `theta_1` or `theta_2` is not positive and finite, or a
    ///   `pi_logits` entry is not finite.
    pub fn forward_no_reduction<B: Backend, const T: usize>(
        &self,
        counts: Tensor<B, 2>,
        mu_1: Tensor<B, 2>,
        mu_2: Tensor<B, 2>,
        theta_1: Tensor<B, T>,
        theta_2: Option<Tensor<B, T>>,
        pi_logits: Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        let inputs = self.check(counts, mu_1, mu_2, theta_1, theta_2, pi_logits);
        host_or!(
            B,
            self.fast_path,
            self.host(inputs, None).elementwise(),
            self.nll(inputs)
        )
    }

    /// Shape checks (always) and value checks (with `validate`); thetas as `[1|B, G]`.
    fn check<B: Backend, const T: usize>(
        &self,
        counts: Tensor<B, 2>,
        mu_1: Tensor<B, 2>,
        mu_2: Tensor<B, 2>,
        theta_1: Tensor<B, T>,
        theta_2: Option<Tensor<B, T>>,
        pi_logits: Tensor<B, 2>,
    ) -> Inputs<B> {
        let theta_1 = check_inputs(NAME, self.validate, &counts, &mu_1, theta_1);
        let theta_2 = theta_2.map(|t2| {
            let t2 = check_inputs(NAME, false, &counts, &mu_2, t2);
            validate::same_shape(NAME, ("theta_1", &theta_1.dims()), ("theta_2", &t2.dims()));
            if self.validate {
                validate::positive(NAME, "theta_2", &t2);
            }
            t2
        });
        validate::same_shape(NAME, ("counts", &counts.dims()), ("mu_2", &mu_2.dims()));
        validate::same_dtype(NAME, ("mu_1", &mu_1), ("mu_2", &mu_2));
        validate::same_shape(
            NAME,
            ("counts", &counts.dims()),
            ("pi_logits", &pi_logits.dims()),
        );
        validate::same_dtype(NAME, ("mu_1", &mu_1), ("pi_logits", &pi_logits));
        if self.validate {
            validate::non_negative(NAME, "mu_2", &mu_2);
            validate::finite(NAME, "pi_logits", &pi_logits);
        }
        Inputs {
            counts,
            mu_1,
            mu_2,
            theta_1,
            theta_2,
            pi_logits,
        }
    }

    /// The generic path, inputs checked.
    fn nll<B: Backend>(&self, inputs: Inputs<B>) -> Tensor<B, 2> {
        let Inputs {
            counts,
            mu_1,
            mu_2,
            theta_1,
            theta_2,
            pi_logits,
        } = inputs;
        let x = constant(&counts);
        let dims = x.dims();
        let theta_1c = FLOOR.theta(constant(&theta_1), self.eps).expand(dims);
        let theta_2c = match &theta_2 {
            Some(t) => FLOOR.theta(constant(t), self.eps).expand(dims),
            None => theta_1c.clone(),
        };
        let mixture = mixture(
            x,
            FLOOR.mu(constant(&mu_1), self.eps),
            FLOOR.mu(constant(&mu_2), self.eps),
            theta_1c,
            theta_2c,
            constant(&pi_logits),
        );
        let nll = mixture.log_p.neg();
        if !is_autodiff(&mu_1) {
            return nll;
        }
        let [d_mu_1, d_mu_2, d_theta_1, d_theta_2, d_logit] = mixture.grads;
        let nll = with_grad(nll, mu_1, d_mu_1.neg());
        let nll = with_grad(nll, mu_2, d_mu_2.neg());
        let nll = with_grad(nll, pi_logits, d_logit.neg());
        match theta_2 {
            Some(theta_2) => {
                let nll = with_grad(nll, theta_1, d_theta_1.neg());
                with_grad(nll, theta_2, d_theta_2.neg())
            }
            None => with_grad(nll, theta_1, (d_theta_1 + d_theta_2).neg()),
        }
    }

    /// The host kernel (element-wise or reduced), inputs checked.
    #[cfg(feature = "ndarray")]
    fn host<B: Backend>(
        &self,
        inputs: Inputs<B>,
        scale: Option<f64>,
    ) -> crate::host::pointwise::Reduced<B, 2> {
        use crate::host::pointwise::map;
        let Inputs {
            counts,
            mu_1,
            mu_2,
            theta_1,
            theta_2,
            pi_logits,
        } = inputs;
        let dims = counts.dims();
        let eps = self.eps;
        let element = move |[x, m1, m2, t1, t2, l]: [f64; 6]| {
            let m = mixture(
                x,
                FLOOR.mu(m1, eps),
                FLOOR.mu(m2, eps),
                FLOOR.theta(t1, eps),
                FLOOR.theta(t2, eps),
                l,
            );
            (-m.log_p, m.grads.map(|g| -g))
        };
        let theta_1 = theta_1.expand(dims);
        match theta_2 {
            Some(theta_2) => {
                let inputs = [counts, mu_1, mu_2, theta_1, theta_2.expand(dims), pi_logits];
                map(inputs, [1, 2, 3, 4, 5], scale, element)
            }
            None => {
                let inputs = [counts, mu_1, mu_2, theta_1.clone(), theta_1, pi_logits];
                map(inputs, [1, 2, 3, 5], scale, move |v| {
                    let (nll, [d1, d2, t1, t2, l]) = element(v);
                    (nll, [d1, d2, t1 + t2, l])
                })
            }
        }
    }
}

/// The checked inputs of a forward pass.
struct Inputs<B: Backend> {
    counts: Tensor<B, 2>,
    mu_1: Tensor<B, 2>,
    mu_2: Tensor<B, 2>,
    theta_1: Tensor<B, 2>,
    theta_2: Option<Tensor<B, 2>>,
    pi_logits: Tensor<B, 2>,
}

/// `log p` of the mixture and its derivatives with respect to
/// `[mu_1, mu_2, theta_1, theta_2, pi_logits]` (`mu`s floored).
pub(crate) struct Mixture<R> {
    /// `log p(x)`.
    pub log_p: R,
    /// `d log p / d [mu_1, mu_2, theta_1, theta_2, l]`.
    pub grads: [R; 5],
}

/// The mixture of the [module docs](self), shared by both paths.
#[inline(always)]
pub(crate) fn mixture<R: Real>(x: R, mu_1: R, mu_2: R, theta_1: R, theta_2: R, l: R) -> Mixture<R> {
    let log_nb_1 = log_prob(x.clone(), mu_1.clone(), theta_1.clone());
    let log_nb_2 = log_prob(x.clone(), mu_2.clone(), theta_2.clone());
    let a = log_nb_1 - softplus(l.clone().neg());
    let b = log_nb_2 - softplus(l.clone());
    let diff = a.clone() - b.clone();
    // The larger of a, b plus ln(1 + e^-|a - b|): no large term cancels.
    let log_p = R::select(
        diff.ge(0.0),
        || a.clone() + softplus(diff.clone().neg()),
        || b.clone() + softplus(diff.clone()),
    );
    let (r, one_minus_r) = sigmoid_pair(diff);
    let grads = [
        r.clone() * d_mu(x.clone(), mu_1.clone(), theta_1.clone()),
        one_minus_r.clone() * d_mu(x.clone(), mu_2.clone(), theta_2.clone()),
        r.clone() * d_theta(x.clone(), mu_1, theta_1),
        one_minus_r * d_theta(x, mu_2, theta_2),
        r - sigmoid(l),
    ];
    Mixture { log_p, grads }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_components_give_the_nb_likelihood() {
        // mu_1 = mu_2: the mixture is that NB, whatever the weight, and d/dl = 0.
        for l in [-30.0, -2.0, 0.0, 3.0, 30.0] {
            let m = mixture(7.0, 4.0, 4.0, 2.5, 2.5, l);
            let nb = log_prob(7.0, 4.0, 2.5);
            assert!((m.log_p - nb).abs() < 1e-13, "l = {l}");
            assert!(m.grads[4].abs() < 1e-13);
        }
    }

    #[test]
    fn weights_mix_the_probabilities() {
        let (l1, l2) = (log_prob(3.0, 2.0, 5.0), log_prob(3.0, 30.0, 1.0));
        let w = 1.0 / (1.0 + (-0.7f64).exp());
        let want = (w * l1.exp() + (1.0 - w) * l2.exp()).ln();
        assert!((mixture(3.0, 2.0, 30.0, 5.0, 1.0, 0.7).log_p - want).abs() < 1e-13);
    }
}
